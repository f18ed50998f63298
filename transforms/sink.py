"""WriteToMailchimp: batches of requests -> Mailchimp, with tagged outcomes.

Outputs: `delivered` (main), `skipped`, `unknown_merge_fields`, `dead_letter`.

A batch is sent one request at a time, on one of `max_connections` lanes,
so as many requests are in flight as lanes have work: no batch waits for
another to finish.
- Local runners (every worker on this machine): the lanes are threads of
  the sink. A batch goes to its key's lane, after that key's earlier
  batches, so a user's later requests never overtake earlier ones; batches
  whose order does not matter (`in_order=False`: a backfill's combined
  members, each member once) go to the least busy lane. Every request
  also holds one of the account's `MachineSlots`: at most
  `max_connections` on this machine, whatever the processes and threads.
- Remote runners (`one_at_a_time`): the lanes are the job's keys. Batches
  come keyed into exactly `max_connections` slots
  (transforms.batching.BatchPerSlot) and each is sent on the bundle's
  thread: the runner processes one key at a time, so the job holds at most
  `max_connections` requests in flight across all its workers.
Nothing raises out of a delivery (see transforms.delivery), and when a
bundle fails (teardown) no request not yet sent is sent.
"""
from __future__ import annotations

import dataclasses
import hashlib
import uuid
from collections import deque
from concurrent import futures
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Iterable, Iterator, Optional

import apache_beam as beam
from apache_beam.transforms.window import GlobalWindows

from transforms.delivery import BatchDelivery
from transforms.mailchimp.client import MAX_CONNECTIONS, MailchimpClient, RetryPolicy
from transforms.mailchimp.credentials import Credentials, Endpoint
from transforms.mailchimp.dry_run import DryRunClient
from transforms.mailchimp.merge_fields import MergeFieldCatalog
from transforms.mailchimp.slots import MachineSlots
from transforms.records import (DeadLetter, RecordRequests, Request, Skipped,
                                UnknownMergeFields, WouldSend)
from transforms.routing import tagged
from transforms.throttling import report_throttling
from transforms.worker_cache import worker_object

_MAX_WAITING = 1  # batches queued on a lane behind the one being sent


@dataclasses.dataclass(frozen=True)
class SinkSettings:
    max_connections: int = MAX_CONNECTIONS
    timeout_s: float = 130.0  # read timeout; Mailchimp gives up at 120 s
    retry: RetryPolicy = RetryPolicy()
    merge_fields_refresh_s: float = 300.0
    one_at_a_time: bool = False  # remote runners: see the module docstring
    in_order: bool = True  # a key's batches in order; False: any free lane
    dry_run: bool = False  # nothing written: see transforms.mailchimp.dry_run


def _account(root: str, credentials: Credentials) -> str:
    """Names an account's slots: its credentials at its API root (so two
    emulators are two accounts), without the secret."""
    return hashlib.sha256(f"{root} {credentials.fingerprint}".encode()).hexdigest()[:16]


def _requests(batch: Iterable[RecordRequests]) -> list[Request]:
    return [request for packed in batch for request in packed.requests]


class _Lanes:
    """`count` single-thread executors and what each has queued. A lane
    runs its batches in the order they were submitted."""

    def __init__(self, count: int):
        self._executors = [ThreadPoolExecutor(1, thread_name_prefix=f"mailchimp-{i}")
                           for i in range(count)]
        self._queued: list[deque[Future]] = [deque() for _ in range(count)]

    def lane_of(self, key) -> int:
        """The lane of a key's shard: the last part of BatchPerAudience's
        (audience, shard), or BatchPerSlot's slot (transforms.batching)."""
        shard = key[-1] if isinstance(key, tuple) else key
        return shard % len(self._executors)

    def least_busy(self) -> int:
        return min(range(len(self._queued)), key=lambda i: len(self._queued[i]))

    def full(self, lane: int) -> bool:
        return len(self._queued[lane]) > _MAX_WAITING

    def submit(self, lane: int, fn, *args) -> None:
        self._queued[lane].append(self._executors[lane].submit(fn, *args))

    def wait(self, lane: Optional[int] = None) -> None:
        """Until `lane`'s oldest batch is done; without a lane, any lane's."""
        oldest = [q[0] for q in (self._queued if lane is None else [self._queued[lane]]) if q]
        futures.wait(oldest, return_when=futures.FIRST_COMPLETED)

    def done(self, everything: bool = False) -> Iterator[list]:
        """The outcomes of finished batches (of every batch, waiting)."""
        for queued in self._queued:
            while queued and (everything or queued[0].done()):
                yield queued.popleft().result()

    def shutdown(self) -> None:
        for executor in self._executors:
            executor.shutdown(wait=True, cancel_futures=True)


class _WriteFn(beam.DoFn):

    def __init__(self, endpoint: Endpoint, settings: SinkSettings, job: str):
        self._endpoint, self._settings, self._job = endpoint, settings, job
        self._client = self._delivery = self._lanes = None

    def _connect(self, credentials: Credentials) -> tuple[MailchimpClient, MergeFieldCatalog]:
        settings = self._settings
        root = self._endpoint.root(credentials)
        # One set of slots per account per process, whatever the DoFn count;
        # its files are shared with every process of the machine.
        account = _account(root, credentials)
        slots = worker_object(
            ("slots", account, settings.max_connections),
            lambda: MachineSlots(account, settings.max_connections))
        make = DryRunClient if settings.dry_run else MailchimpClient
        client = make(root, credentials, slots, timeout=(10.0, settings.timeout_s),
                      retry=settings.retry)
        return client, MergeFieldCatalog(client, settings.merge_fields_refresh_s)

    def setup(self):
        credentials = self._endpoint.credentials()
        client, catalog = worker_object(
            ("mailchimp", self._job, credentials.fingerprint, self._settings.dry_run),
            lambda: self._connect(credentials))
        self._client = client
        self._delivery = BatchDelivery(client, catalog)
        if not self._settings.one_at_a_time:
            self._lanes = _Lanes(self._settings.max_connections)

    def process(self, keyed_batch):
        key, batch = keyed_batch  # the key chose the batch; the requests say where
        if self._lanes is None:
            yield from map(tagged, self._delivery.deliver(_requests(batch)))
        else:
            lanes, in_order = self._lanes, self._settings.in_order
            lane = lanes.lane_of(key) if in_order else lanes.least_busy()
            while lanes.full(lane):  # memory stays bounded: the bundle waits
                lanes.wait(lane if in_order else None)
                for outcomes in lanes.done():
                    yield from map(tagged, outcomes)
                lane = lane if in_order else lanes.least_busy()
            lanes.submit(lane, self._delivery.deliver, _requests(batch))
            for outcomes in lanes.done():
                yield from map(tagged, outcomes)
        yield from map(tagged, self._drained())

    def finish_bundle(self):
        outcomes = [o for batch in (self._lanes.done(everything=True)
                                    if self._lanes is not None else ()) for o in batch]
        for outcome in outcomes + self._drained():
            # No element here to take a window from: the global one.
            yield tagged(outcome, GlobalWindows.windowed_value(outcome))

    def _drained(self) -> list[WouldSend]:
        """Counted here: the lanes' threads have no Beam metrics context.
        A dry run's kept requests leave here too."""
        report_throttling(self._client.stats.drain())
        if not isinstance(self._client, DryRunClient):
            return []
        return [WouldSend(**kept) for kept in self._client.drain()]

    def teardown(self):
        # After a finished bundle nothing is left to send. After a failed one
        # (the runner tears its DoFns down) what is queued must not go out:
        # the runner sends the bundle again.
        if self._delivery is not None:
            self._delivery.cancel()
        if self._lanes is not None:
            self._lanes.shutdown()
        # The client stays: the next DoFn of this process reuses it.


class WriteToMailchimp(beam.PTransform):
    """(key, [RecordRequests]) -> outcomes."""

    def __init__(self, endpoint: Endpoint, settings: SinkSettings = SinkSettings(),
                 job: Optional[str] = None):
        super().__init__()
        self._endpoint, self._settings = endpoint, settings
        # What a worker process keeps (the client, its merge-field cache) is
        # per job: the runs of a local streaming job share it.
        self._job = job or uuid.uuid4().hex

    def for_members(self) -> "WriteToMailchimp":
        """The same sink for a backfill's combined members, whose batches
        may go in any order: each member is in one of them."""
        return WriteToMailchimp(
            self._endpoint, dataclasses.replace(self._settings, in_order=False),
            self._job)

    def expand(self, batches):
        return batches | beam.ParDo(
            _WriteFn(self._endpoint, self._settings, self._job)).with_outputs(
                Skipped.TAG, UnknownMergeFields.TAG, DeadLetter.TAG,
                WouldSend.TAG, main="delivered")
