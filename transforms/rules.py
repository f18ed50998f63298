"""ApplySync: one sync's rules, in the order the design card gives them;
SendSync: those rules, then batching and the Mailchimp sink, per sync;
SendSyncsTogether: every sync's rules, then one batching and one sink."""
from __future__ import annotations

from typing import Any, Callable, Iterable, Sequence

import apache_beam as beam

from transforms.batching import BatchPerAudience, BatchPerSlot
from transforms.identity import DropAnonymous, MapEmail
from transforms.plan import PlanActions
from transforms.project import ProjectProperties
from transforms.records import Record, RecordRequests
from transforms.routing import RouteSkips
from transforms.sink import WriteToMailchimp
from transforms.sync import Sync


class _OneElementPerRecord:
    """A record's requests packed into one `RecordRequests` (upsert first, as
    the rules make them); its skips stay separate elements."""

    def __init__(self, rules: Callable[[Record], Iterable[Any]]):
        self._rules = rules

    def __call__(self, record: Record) -> list[Any]:
        results, requests = [], []
        for result in self._rules(record):
            (results if result.TAG else requests).append(result)
        if requests:
            results.append(RecordRequests(tuple(requests)))
        return results


class ApplySync(beam.PTransform):
    """Records -> `main`: RecordRequests, `skipped`: Skipped.

    The four rules run as one step (RouteSkips.chain): each is its own
    PTransform, tested alone, but chaining them avoids a Flatten of their
    skips, which a batch runner would hold in memory whole. A record's
    upsert and event leave it as one element: see RecordRequests."""

    def __init__(self, sync: Sync):
        super().__init__()
        self._sync = sync

    def expand(self, records):
        sync = self._sync
        rules = RouteSkips.chain(
            PlanActions(sync), DropAnonymous(), MapEmail(sync.email_property),
            ProjectProperties(sync))
        return records | "Plan, identify, address, project" >> RouteSkips(
            _OneElementPerRecord(rules.step))


def _outcomes(written, prefix: str = "") -> dict:
    return {f"{prefix}delivered": written.delivered,
            f"{prefix}skipped": written.skipped,
            f"{prefix}merge field reports": written.unknown_merge_fields,
            f"{prefix}dead letters": written.dead_letter}


class SendSync(beam.PTransform):
    """One sync, records to Mailchimp: its rules, batches per audience (and
    shard of subscriber hash), the sink. Returns its outcome collections,
    by label. For local runners: no Flatten of every sync's requests, which
    the FnApiRunner would hold in memory whole."""

    def __init__(self, sync: Sync, batching: BatchPerAudience,
                 sink: WriteToMailchimp):
        super().__init__()
        self._sync, self._batching, self._sink = sync, batching, sink

    def expand(self, records):
        rules = records | "Apply rules" >> ApplySync(self._sync)
        written = (rules.main
                   | "Batch per audience" >> self._batching
                   | "Write to Mailchimp" >> self._sink)
        return {"rule skips": rules.skipped, **_outcomes(written)}


class SendSyncsTogether(beam.PTransform):
    """Every sync, records to Mailchimp through one set of slots: each sync's
    rules, then all their requests keyed into the job's connection slots
    and one sink. For remote runners: the syncs share one account's
    connections, and only a bound on the keys bounds every worker at once.
    Returns outcome collections by label, as SendSync does."""

    def __init__(self, syncs: Sequence[Sync], batching: BatchPerSlot,
                 sink: WriteToMailchimp):
        super().__init__()
        self._syncs, self._batching, self._sink = list(syncs), batching, sink

    def expand(self, records):
        outcomes, requests = {}, []
        for sync in self._syncs:
            rules = records | f"Sync {sync.name}" >> ApplySync(sync)
            outcomes[f"{sync.name} rule skips"] = rules.skipped
            requests.append(rules.main)
        written = (requests | "Every sync's requests" >> beam.Flatten()
                   | "Batch per slot" >> self._batching
                   | "Write to Mailchimp" >> self._sink)
        # A fusion break after the sink: a failure downstream (counting,
        # files, the dead-letter topic) retries those steps from the
        # shuffled outcomes, never the sink's requests. Remote runners only:
        # FnApiRunner does not retry, and would hold every outcome in memory.
        settled = {label: pcoll | f"Settle {label}" >> beam.Reshuffle()
                   for label, pcoll in _outcomes(written, "all syncs ").items()}
        return {**outcomes, **settled}
