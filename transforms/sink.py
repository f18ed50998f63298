"""WriteToMailchimp: batches of requests -> Mailchimp, with tagged outcomes.

Outputs: `delivered` (main), `skipped`, `unknown_merge_fields`, `dead_letter`.

Two ways to send, one bound: every request holds one of the account's
`MachineSlots` (at most `max_connections` on this machine, whatever the
processes and threads).
- Local runners (every worker on this machine): a batch is sent with up to
  `max_connections` requests in parallel, on a thread of its own, so the
  bundle reads on while a batch is in flight.
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
import uuid
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Iterable, Optional

import apache_beam as beam
from apache_beam.transforms.window import GlobalWindows

from transforms.delivery import BatchDelivery
from transforms.mailchimp.client import MAX_CONNECTIONS, MailchimpClient, RetryPolicy
from transforms.mailchimp.credentials import Credentials, Endpoint
from transforms.mailchimp.merge_fields import MergeFieldCatalog
from transforms.mailchimp.slots import MachineSlots
from transforms.records import (DeadLetter, RecordRequests, Request, Skipped,
                                UnknownMergeFields)
from transforms.routing import tagged
from transforms.throttling import report_throttling
from transforms.worker_cache import worker_object

_MAX_WAITING = 1  # batches queued behind the one being sent


@dataclasses.dataclass(frozen=True)
class SinkSettings:
    max_connections: int = MAX_CONNECTIONS
    timeout_s: float = 130.0  # read timeout; Mailchimp gives up at 120 s
    retry: RetryPolicy = RetryPolicy()
    merge_fields_refresh_s: float = 300.0
    one_at_a_time: bool = False  # remote runners: see the module docstring


def _account(root: str, credentials: Credentials) -> str:
    """Names an account's slots: its credentials at its API root (so two
    emulators are two accounts), without the secret."""
    return hashlib.sha256(f"{root} {credentials.fingerprint}".encode()).hexdigest()[:16]


def _requests(batch: Iterable[RecordRequests]) -> list[Request]:
    return [request for packed in batch for request in packed.requests]


class _WriteFn(beam.DoFn):

    def __init__(self, endpoint: Endpoint, settings: SinkSettings, job: str):
        self._endpoint, self._settings, self._job = endpoint, settings, job
        self._client = self._delivery = self._pool = self._sender = None

    def _connect(self, credentials: Credentials) -> tuple[MailchimpClient, MergeFieldCatalog]:
        settings = self._settings
        root = self._endpoint.root(credentials)
        # One set of slots per account per process, whatever the DoFn count;
        # its files are shared with every process of the machine.
        account = _account(root, credentials)
        slots = worker_object(
            ("slots", account, settings.max_connections),
            lambda: MachineSlots(account, settings.max_connections))
        client = MailchimpClient(root, credentials, slots,
                                 timeout=(10.0, settings.timeout_s),
                                 retry=settings.retry)
        return client, MergeFieldCatalog(client, settings.merge_fields_refresh_s)

    def setup(self):
        credentials = self._endpoint.credentials()
        client, catalog = worker_object(
            ("mailchimp", self._job, credentials.fingerprint),
            lambda: self._connect(credentials))
        self._client = client
        if self._settings.one_at_a_time:
            self._delivery = BatchDelivery(client, catalog)
            return
        self._pool = ThreadPoolExecutor(
            self._settings.max_connections, thread_name_prefix="mailchimp")
        self._delivery = BatchDelivery(client, catalog, self._pool.map)
        # Batches are sent one after another, in order (so a user's requests
        # keep their order across batches), but on a thread of their own.
        self._sender = ThreadPoolExecutor(1, thread_name_prefix="batches")

    def start_bundle(self):
        self._in_flight: deque[Future] = deque()

    def process(self, keyed_batch):
        _, batch = keyed_batch  # the key chose the batch; the requests say where
        if self._sender is None:
            yield from map(tagged, self._delivery.deliver(_requests(batch)))
        else:
            self._in_flight.append(self._sender.submit(
                self._delivery.deliver, _requests(batch)))
            # One batch sending, one waiting: memory stays bounded.
            while self._in_flight and (self._in_flight[0].done()
                                       or len(self._in_flight) > _MAX_WAITING + 1):
                yield from map(tagged, self._in_flight.popleft().result())
        # Counted here: the sender threads have no Beam metrics context.
        report_throttling(self._client.stats.drain())

    def finish_bundle(self):
        while self._in_flight:
            for outcome in self._in_flight.popleft().result():
                # No element here to take a window from: the global one.
                yield tagged(outcome, GlobalWindows.windowed_value(outcome))
        report_throttling(self._client.stats.drain())

    def teardown(self):
        # After a finished bundle nothing is left to send. After a failed one
        # (the runner tears its DoFns down) what is queued must not go out:
        # the runner sends the bundle again.
        if self._delivery is not None:
            self._delivery.cancel()
        for executor in (self._sender, self._pool):
            if executor is not None:
                executor.shutdown(wait=True, cancel_futures=True)
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

    def expand(self, batches):
        return batches | beam.ParDo(
            _WriteFn(self._endpoint, self._settings, self._job)).with_outputs(
                Skipped.TAG, UnknownMergeFields.TAG, DeadLetter.TAG,
                main="delivered")
