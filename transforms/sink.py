"""WriteToMailchimp: batches of requests -> Mailchimp, with tagged outcomes.

Outputs: `delivered` (main), `skipped`, `unknown_merge_fields`, `dead_letter`,
`dry_run` (the requests a dry run kept: transforms.mailchimp.dry_run).

Every request holds one of the account's `MachineSlots` (at most
`max_connections` on this machine, whatever the processes and threads).
- Local runners (every worker on this machine): a batch becomes units of
  work (transforms.delivery: its members' calls, then each member's events
  and cohort tags in order) that `max_connections` threads take as they
  come, so every connection is busy while work waits: no batch waits for
  the one before it. A member's events keep their order across batches (a
  unit per member, run after that member's previous one); in a stream
  (`in_order`) a key's member calls do too, while a backfill's combined
  members (each member in one batch) go in any order.
- Remote runners (`one_at_a_time`): batches come keyed into exactly
  `max_connections` slots (transforms.batching.BatchPerSlot) and each is
  sent on the bundle's thread, one request at a time: the runner processes
  one key at a time, so the job holds at most `max_connections` requests in
  flight across all its workers.
Nothing raises out of a delivery (see transforms.delivery), and when a
bundle fails (teardown) no request not yet sent is sent.
"""
from __future__ import annotations

import dataclasses
import hashlib
import threading
import uuid
from collections import deque
from concurrent import futures
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Hashable, Iterable, Optional

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

_MAX_PENDING = 2  # batches held per connection: sending, or queued


@dataclasses.dataclass(frozen=True)
class SinkSettings:
    max_connections: int = MAX_CONNECTIONS
    timeout_s: float = 130.0  # read timeout; Mailchimp gives up at 120 s
    retry: RetryPolicy = RetryPolicy()
    merge_fields_refresh_s: float = 300.0
    one_at_a_time: bool = False  # remote runners: see the module docstring
    in_order: bool = True  # a key's member calls in order; False: any order
    dry_run: bool = False  # nothing written: see transforms.mailchimp.dry_run


def _account(root: str, credentials: Credentials) -> str:
    """Names an account's slots: its credentials at its API root (so two
    emulators are two accounts), without the secret."""
    return hashlib.sha256(f"{root} {credentials.fingerprint}".encode()).hexdigest()[:16]


def _requests(batch: Iterable[RecordRequests]) -> list[Request]:
    return [request for packed in batch for request in packed.requests]


def _all_done(units: list[Future]) -> Future:
    """A future done once every one of `units` is (waiting on one future,
    not on each of thousands, keeps the bundle's thread cheap)."""
    done: Future = Future()
    remaining = [len(units)]
    lock = threading.Lock()

    def one(_):
        with lock:
            remaining[0] -= 1
            last = remaining[0] == 0
        if last:
            done.set_result(None)

    if not units:
        done.set_result(None)
    for unit in units:
        unit.add_done_callback(one)
    return done


class _Workers:
    """`count` threads running units of work (transforms.delivery). A unit
    with a key starts after the unit submitted before it with that key; a
    unit with `after` futures, once they are done. Nothing waits on a
    thread: a unit is handed to the pool when what it waits for is done."""

    def __init__(self, count: int):
        self._pool = ThreadPoolExecutor(count, thread_name_prefix="mailchimp")
        self._lock = threading.Lock()
        self._tails: dict[Hashable, Future] = {}
        self._closed = False

    def submit(self, unit, key: Optional[Hashable] = None,
               after: Iterable[Future] = ()) -> Future:
        result: Future = Future()
        waits = list(after)
        with self._lock:
            if key is not None:
                if key in self._tails:
                    waits.append(self._tails[key])
                self._tails[key] = result
        if key is not None:
            result.add_done_callback(lambda done: self._forget(key, done))

        def start(_):
            with self._lock:
                go = not self._closed and result.set_running_or_notify_cancel()
                if go:
                    self._pool.submit(self._run, unit, result)
            if not go:  # torn down: nothing more is sent. Outside the lock:
                result.cancel()  # cancelling runs the callbacks, which take it

        _all_done(waits).add_done_callback(start)
        return result

    @staticmethod
    def _run(unit, result: Future) -> None:
        try:
            result.set_result(unit())
        except BaseException as e:  # units return outcomes; this is a bug
            result.set_exception(e)

    def _forget(self, key: Hashable, done: Future) -> None:
        with self._lock:
            if self._tails.get(key) is done:
                del self._tails[key]

    def shutdown(self) -> None:
        with self._lock:
            self._closed = True
        self._pool.shutdown(wait=True, cancel_futures=True)


class _WriteFn(beam.DoFn):

    def __init__(self, endpoint: Endpoint, settings: SinkSettings, job: str):
        self._endpoint, self._settings, self._job = endpoint, settings, job
        self._client = self._delivery = self._workers = None

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
            self._workers = _Workers(self._settings.max_connections)

    def start_bundle(self):
        # Each batch's units, and a future done when they all are.
        self._pending: deque[tuple[Future, list[Future]]] = deque()

    def process(self, keyed_batch):
        key, batch = keyed_batch  # the key chose the batch; the requests say where
        if self._workers is None:
            yield from map(tagged, self._delivery.deliver(_requests(batch)))
        else:
            self._submit(key, _requests(batch))
            # Memory stays bounded: beyond that many batches the bundle waits.
            while len(self._pending) > _MAX_PENDING * self._settings.max_connections:
                self._pending[0][0].result()
                yield from map(tagged, self._finished())
            yield from map(tagged, self._finished())
        yield from map(tagged, self._drained())

    def _submit(self, key, requests: list[Request]) -> None:
        """A batch's units: its members' calls, then (after those) each
        member's events on that member's key, so they keep their order
        across batches. In order (streams), a key's member calls too."""
        members, chains = self._delivery.units(requests)
        in_order = self._settings.in_order
        submitted = [self._workers.submit(unit, ("members", key) if in_order else None)
                     for unit in members]
        members_done = [_all_done(submitted)]
        submitted += [self._workers.submit(unit, ("events", member), after=members_done)
                      for member, unit in chains]
        self._pending.append((_all_done(submitted), submitted))

    def _finished(self) -> list:
        """The outcomes of the batches that are done."""
        outcomes, waiting = [], deque()
        for done, units in self._pending:
            if done.done():
                outcomes += [o for unit in units if not unit.cancelled()
                             for o in unit.result()]
            else:
                waiting.append((done, units))
        self._pending = waiting
        return outcomes

    def finish_bundle(self):
        # Outcomes as batches finish, not at the end: if a step fused after
        # the sink fails on one, teardown stops what has not been sent.
        outcomes = self._drained()
        while outcomes or self._workers is not None and self._pending:
            for outcome in outcomes:
                # No element here to take a window from: the global one.
                yield tagged(outcome, GlobalWindows.windowed_value(outcome))
            if self._workers is not None and self._pending:
                futures.wait([done for done, _ in self._pending],
                             return_when=futures.FIRST_COMPLETED)
            outcomes = (self._finished() if self._workers is not None else []) + self._drained()

    def _drained(self) -> list[WouldSend]:
        """Counted here: the sink's threads have no Beam metrics context.
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
        if self._workers is not None:
            self._workers.shutdown()
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
