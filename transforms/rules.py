"""ApplySync: one sync's rules, in the order the design card gives them;
SendSync: those rules, then batching and the Mailchimp sink, per sync;
SendSyncsTogether: every sync's rules, then one batching and one sink.

Sending depends on the input. A stream sends its batches as they come, a
record's upsert before its event (RecordRequests). A bounded input (a
backfill, a local streaming job's run) combines each member's upserts over
the whole input and sends every member once, with its final values; then
the events, which wait for every member's outcome (a side input), so a new
member's events never come first."""
from __future__ import annotations

from typing import Any, Callable, Iterable, Sequence

import apache_beam as beam

from transforms.batching import BatchPerAudience, BatchPerSlot
from transforms.identity import DropAnonymous, MapEmail
from transforms.members import CombineMemberUpserts
from transforms.plan import PlanActions
from transforms.project import ProjectProperties
from transforms.records import MemberUpsert, Record, RecordRequests, Request
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
            f"{prefix}dead letters": written.dead_letter,
            f"{prefix}dry runs": written.dry_run}


_EVENTS = "events"


class _SplitFn(beam.DoFn):
    """RecordRequests -> its upserts (main) and what needs the member to
    exist first, events and cohort tags (`events`)."""

    def process(self, packed: RecordRequests):
        for request in packed.requests:
            if isinstance(request, MemberUpsert):
                yield request
            else:
                yield beam.pvalue.TaggedOutput(_EVENTS, request)


def _packed(request) -> RecordRequests:
    return RecordRequests((request,))


def _after_members(request: Request, _members_sent: int) -> Request:
    """The side input is there to be waited for: a runner starts this step
    once every member's outcome is in."""
    return request


def _settled(written, prefix: str, settle: bool) -> dict:
    """A sink's outcome collections by label; with `settle`, each behind a
    fusion break: a failure downstream (counting, files, the dead-letter
    topic) retries those steps from the shuffled outcomes, never the sink's
    requests. Remote runners only: FnApiRunner does not retry, and would
    hold every outcome in memory."""
    outcomes = _outcomes(written, prefix)
    if not settle:
        return outcomes
    return {label: pcoll | f"Settle {label}" >> beam.Reshuffle()
            for label, pcoll in outcomes.items()}


def _send(requests, batching: BatchPerAudience | BatchPerSlot,
          sink: WriteToMailchimp, prefix: str = "", settle: bool = False) -> dict:
    """RecordRequests -> outcome collections by label (see the module
    docstring). A function, not a PTransform, so that a stream's steps keep
    the labels they had in the caller ("Batch per ...", "Write to
    Mailchimp"): Dataflow's --update matches steps by label."""
    if batching.streaming:
        return _settled(requests | batching.LABEL >> batching
                        | "Write to Mailchimp" >> sink, prefix, settle)
    split = requests | "Upserts apart from events" >> beam.ParDo(
        _SplitFn()).with_outputs(_EVENTS, main="upserts")
    members = _settled(
        split.upserts
        | "Combine each member's upserts" >> CombineMemberUpserts()
        | "Pack members" >> beam.Map(_packed)
        | f"{batching.LABEL}, members" >> batching.for_members()
        | "Send members" >> sink.for_members(), f"{prefix}members ", settle)
    members_sent = beam.pvalue.AsSingleton(
        members[f"{prefix}members delivered"]
        | "Count members sent" >> beam.combiners.Count.Globally())
    events = (split[_EVENTS]
              | "Wait for every member" >> beam.Map(_after_members, members_sent)
              | "Pack events" >> beam.Map(_packed)
              | f"{batching.LABEL}, events" >> batching
              | "Send events" >> sink)
    return {**members, **_settled(events, f"{prefix}events ", settle)}


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
        return {"rule skips": rules.skipped,
                **_send(rules.main, self._batching, self._sink)}


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
        settled = _send(requests | "Every sync's requests" >> beam.Flatten(),
                        self._batching, self._sink, "all syncs ", settle=True)
        return {**outcomes, **settled}
