"""ApplySync: one sync's rules, in the order the design card gives them;
SendSync: those rules, then batching and the Mailchimp sink."""
from __future__ import annotations

import apache_beam as beam

from transforms.batching import BatchPerAudience
from transforms.identity import DropAnonymous, MapEmail
from transforms.plan import PlanActions
from transforms.project import ProjectProperties
from transforms.routing import RouteSkips
from transforms.sink import WriteToMailchimp
from transforms.sync import Sync


class ApplySync(beam.PTransform):
    """Records -> `main`: MemberUpsert | MemberEvent, `skipped`: Skipped.

    The four rules run as one step (RouteSkips.chain): each is its own
    PTransform, tested alone, but chaining them avoids a Flatten of their
    skips, which a batch runner would hold in memory whole."""

    def __init__(self, sync: Sync):
        super().__init__()
        self._sync = sync

    def expand(self, records):
        sync = self._sync
        return records | "Plan, identify, address, project" >> RouteSkips.chain(
            PlanActions(sync), DropAnonymous(), MapEmail(sync.email_property),
            ProjectProperties(sync))


class SendSync(beam.PTransform):
    """One sync, records to Mailchimp: its rules, batches per audience (and
    shard of subscriber hash), the sink. Returns its outcome collections,
    by label. Each sync has its own batches: a user's upsert precedes that
    user's events of the same sync, which is the order the rules need."""

    def __init__(self, sync: Sync, batching: BatchPerAudience,
                 sink: WriteToMailchimp):
        super().__init__()
        self._sync, self._batching, self._sink = sync, batching, sink

    def expand(self, records):
        rules = records | "Apply rules" >> ApplySync(self._sync)
        written = (rules.main
                   | "Batch per audience" >> self._batching
                   | "Write to Mailchimp" >> self._sink)
        return {"rule skips": rules.skipped, "delivered": written.delivered,
                "skipped": written.skipped,
                "merge field reports": written.unknown_merge_fields,
                "dead letters": written.dead_letter}
