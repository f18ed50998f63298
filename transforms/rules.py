"""ApplySync: one sync's rules, in the order the design card gives them."""
from __future__ import annotations

import apache_beam as beam

from transforms.identity import DropAnonymous, MapEmail
from transforms.plan import PlanActions
from transforms.project import ProjectProperties
from transforms.sync import Sync


class ApplySync(beam.PTransform):
    """Records -> {"requests": MemberUpsert | MemberEvent, "skipped": Skipped}."""

    def __init__(self, sync: Sync):
        super().__init__()
        self._sync = sync

    def expand(self, records):
        planned = records | "Plan actions" >> PlanActions(self._sync)
        identified = planned.main | "Drop anonymous" >> DropAnonymous()
        addressed = identified.main | "Map email" >> MapEmail(
            self._sync.email_property)
        projected = addressed.main | "Project properties" >> ProjectProperties(
            self._sync)
        skipped = (planned.skipped, identified.skipped, addressed.skipped,
                   projected.skipped) | "Gather skips" >> beam.Flatten()
        return {"requests": projected.main, "skipped": skipped}
