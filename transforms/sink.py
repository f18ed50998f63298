"""WriteToMailchimp: batches of requests -> Mailchimp, with tagged outcomes.

Outputs: `delivered` (main), `skipped`, `unknown_merge_fields`, `dead_letter`.
"""
from __future__ import annotations

import dataclasses
import uuid
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor

import apache_beam as beam
from apache_beam.transforms.window import GlobalWindows

from transforms.delivery import BatchDelivery
from transforms.mailchimp.client import (MAX_CONNECTIONS, ConnectionLimiter,
                                         MailchimpClient, RetryPolicy)
from transforms.mailchimp.credentials import Credentials, Endpoint
from transforms.mailchimp.merge_fields import MergeFieldCatalog
from transforms.records import DeadLetter, Skipped, UnknownMergeFields
from transforms.routing import SKIPPED
from transforms.worker_cache import worker_object

DEAD_LETTER = "dead_letter"
UNKNOWN_MERGE_FIELDS = "unknown_merge_fields"
_MAX_WAITING = 1  # batches queued behind the one being sent


@dataclasses.dataclass(frozen=True)
class SinkSettings:
    max_connections: int = MAX_CONNECTIONS
    timeout_s: float = 130.0  # read timeout; Mailchimp gives up at 120 s
    retry: RetryPolicy = RetryPolicy()
    merge_fields_refresh_s: float = 300.0


class _WriteFn(beam.DoFn):

    def __init__(self, endpoint: Endpoint, settings: SinkSettings):
        self._endpoint, self._settings = endpoint, settings
        self._pipeline_key = uuid.uuid4().hex

    def _connect(self, credentials: Credentials) -> tuple[MailchimpClient, MergeFieldCatalog]:
        settings = self._settings
        # One limiter per credentials per process, whatever the DoFn count.
        limiter = worker_object(
            ("limiter", credentials.fingerprint, settings.max_connections),
            lambda: ConnectionLimiter(settings.max_connections))
        client = MailchimpClient(
            self._endpoint.root(credentials), credentials, limiter,
            timeout=(10.0, settings.timeout_s), retry=settings.retry)
        return client, MergeFieldCatalog(client, settings.merge_fields_refresh_s)

    def setup(self):
        credentials = self._endpoint.credentials()
        client, catalog = worker_object(
            ("mailchimp", self._pipeline_key, credentials.fingerprint),
            lambda: self._connect(credentials))
        self._pool = ThreadPoolExecutor(
            self._settings.max_connections, thread_name_prefix="mailchimp")
        self._delivery = BatchDelivery(client, catalog, self._pool)
        # Batches are sent one after another, in order (so a batch's members
        # and events keep their order with the next batch's), but on a thread
        # of their own: the bundle reads on while a batch is in flight.
        self._sender = ThreadPoolExecutor(1, thread_name_prefix="batches")

    def start_bundle(self):
        self._in_flight: deque[Future] = deque()

    def process(self, keyed_batch):
        (audience_id, _), requests = keyed_batch
        self._in_flight.append(self._sender.submit(
            self._delivery.deliver, audience_id, list(requests)))
        # One batch sending, one waiting: memory stays bounded.
        while self._in_flight and (self._in_flight[0].done()
                                   or len(self._in_flight) > _MAX_WAITING + 1):
            yield from _tagged(self._in_flight.popleft().result())

    def finish_bundle(self):
        while self._in_flight:
            for output in _tagged(self._in_flight.popleft().result()):
                if isinstance(output, beam.pvalue.TaggedOutput):
                    yield beam.pvalue.TaggedOutput(
                        output.tag, GlobalWindows.windowed_value(output.value))
                else:
                    yield GlobalWindows.windowed_value(output)

    def teardown(self):
        # The client stays: the next DoFn of this process reuses it.
        self._sender.shutdown(wait=True)
        self._pool.shutdown(wait=True)


def _tagged(outcomes):
    for outcome in outcomes:
        if isinstance(outcome, Skipped):
            yield beam.pvalue.TaggedOutput(SKIPPED, outcome)
        elif isinstance(outcome, DeadLetter):
            yield beam.pvalue.TaggedOutput(DEAD_LETTER, outcome)
        elif isinstance(outcome, UnknownMergeFields):
            yield beam.pvalue.TaggedOutput(UNKNOWN_MERGE_FIELDS, outcome)
        else:
            yield outcome


class WriteToMailchimp(beam.PTransform):
    """((audience_id, shard), [MemberUpsert | MemberEvent]) -> outcomes."""

    def __init__(self, endpoint: Endpoint, settings: SinkSettings = SinkSettings()):
        super().__init__()
        self._endpoint, self._settings = endpoint, settings

    def expand(self, batches):
        return batches | beam.ParDo(_WriteFn(self._endpoint, self._settings)
                                    ).with_outputs(SKIPPED, UNKNOWN_MERGE_FIELDS,
                                                   DEAD_LETTER, main="delivered")
