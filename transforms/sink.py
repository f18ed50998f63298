"""WriteToMailchimp: batches of requests -> Mailchimp, with tagged outcomes.

Outputs: `delivered` (main), `skipped`, `unknown_merge_fields`, `dead_letter`.
"""
from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor

import apache_beam as beam
from apache_beam.utils.shared import Shared

from transforms.delivery import BatchDelivery
from transforms.mailchimp.client import (MAX_CONNECTIONS, ConnectionLimiter,
                                         Endpoint, MailchimpClient, RetryPolicy)
from transforms.mailchimp.merge_fields import MergeFieldCatalog
from transforms.records import DeadLetter, Skipped, UnknownMergeFields
from transforms.routing import SKIPPED

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
        # One limiter per credentials per process, whatever the DoFn count.
        self._shared_limiter = Shared()

    def setup(self):
        settings = self._settings
        credentials = self._endpoint.credentials()
        limiter = self._shared_limiter.acquire(
            lambda: ConnectionLimiter(settings.max_connections),
            tag=credentials.fingerprint)
        self._client = MailchimpClient(
            self._endpoint.root(credentials), credentials, limiter,
            timeout=(10.0, settings.timeout_s), retry=settings.retry)
        self._pool = ThreadPoolExecutor(
            settings.max_connections, thread_name_prefix="mailchimp")
        self._delivery = BatchDelivery(
            self._client,
            MergeFieldCatalog(self._client, settings.merge_fields_refresh_s),
            self._pool)

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
        self._pool.shutdown(wait=True)
        self._client.close()


class WriteToMailchimp(beam.PTransform):
    """((audience_id, shard), [MemberUpsert | MemberEvent]) -> outcomes."""

    def __init__(self, endpoint: Endpoint, settings: SinkSettings = SinkSettings()):
        super().__init__()
        self._endpoint, self._settings = endpoint, settings

    def expand(self, batches):
        return batches | beam.ParDo(_WriteFn(self._endpoint, self._settings)
                                    ).with_outputs(SKIPPED, UNKNOWN_MERGE_FIELDS,
                                                   DEAD_LETTER, main="delivered")
