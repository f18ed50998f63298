"""WriteToMailchimp: batches of requests -> Mailchimp, with tagged outcomes.

Outputs: `delivered` (main), `skipped`, `unknown_merge_fields`, `dead_letter`.
"""
from __future__ import annotations

import dataclasses
import uuid
from concurrent.futures import ThreadPoolExecutor

import apache_beam as beam

from transforms.delivery import BatchDelivery
from transforms.mailchimp.client import (MAX_CONNECTIONS, ConnectionLimiter,
                                         Credentials, Endpoint,
                                         MailchimpClient, RetryPolicy)
from transforms.mailchimp.merge_fields import MergeFieldCatalog
from transforms.records import DeadLetter, Skipped, UnknownMergeFields
from transforms.routing import SKIPPED
from transforms.worker_cache import worker_object

DEAD_LETTER = "dead_letter"
UNKNOWN_MERGE_FIELDS = "unknown_merge_fields"


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

    def process(self, keyed_batch):
        (audience_id, _), requests = keyed_batch
        for outcome in self._delivery.deliver(audience_id, list(requests)):
            if isinstance(outcome, Skipped):
                yield beam.pvalue.TaggedOutput(SKIPPED, outcome)
            elif isinstance(outcome, DeadLetter):
                yield beam.pvalue.TaggedOutput(DEAD_LETTER, outcome)
            elif isinstance(outcome, UnknownMergeFields):
                yield beam.pvalue.TaggedOutput(UNKNOWN_MERGE_FIELDS, outcome)
            else:
                yield outcome

    def teardown(self):
        # The client stays: the next DoFn of this process reuses it.
        self._pool.shutdown(wait=True)


class WriteToMailchimp(beam.PTransform):
    """((audience_id, shard), [MemberUpsert | MemberEvent]) -> outcomes."""

    def __init__(self, endpoint: Endpoint, settings: SinkSettings = SinkSettings()):
        super().__init__()
        self._endpoint, self._settings = endpoint, settings

    def expand(self, batches):
        return batches | beam.ParDo(_WriteFn(self._endpoint, self._settings)
                                    ).with_outputs(SKIPPED, UNKNOWN_MERGE_FIELDS,
                                                   DEAD_LETTER, main="delivered")
