"""Batching: RecordRequests -> (key, [RecordRequests]), for the sink.

In a stream every record's requests travel as one element (see
RecordRequests), so no flush or key splits a user's upsert from that
user's event; a bounded input batches its combined members, then its events
(transforms.rules), each request packed alone. `for_members()` is the
batching of a backfill's members: 500 a batch, one batch-subscribe call.

- BatchPerAudience (local runners): keyed by (audience, shard of subscriber
  hash).
  Streaming: `GroupIntoBatches` flushes by size or after
  `max_buffering_secs`, so a quiet stream still delivers within seconds.
  Batch: batches are cut within each bundle. A batch `GroupIntoBatches` sits
  behind a shuffle, and on the FnApiRunner a shuffle holds the whole input in
  memory before the first request; cutting within bundles keeps memory flat.
  The connection bound is then the machine's (MachineSlots, in the sink).
- BatchPerSlot (remote runners): keyed into exactly `slots` keys for the
  whole job, every sync and audience, by subscriber hash; `GroupIntoBatches`
  in streaming and batch. The runner processes one key's stateful work at a
  time, and the sink after it sends one request at a time, so at most
  `slots` requests are in flight however many workers there are.
"""
from __future__ import annotations

from typing import Any

import apache_beam as beam
from apache_beam.transforms.window import GlobalWindows

from transforms.delivery import BATCH_SUBSCRIBE_LIMIT
from transforms.records import RecordRequests


def shard_of(subscriber_hash: str, shards: int) -> int:
    return int(subscriber_hash[:8], 16) % shards


class _BatchWithinBundleFn(beam.DoFn):
    """Cuts a batch when it holds `batch_size` requests (a record brings
    one or two)."""

    def __init__(self, batch_size: int):
        self._batch_size = batch_size

    def start_bundle(self):
        self._buffers: dict[Any, list[RecordRequests]] = {}
        self._sizes: dict[Any, int] = {}

    def process(self, keyed):
        key, packed = keyed
        self._buffers.setdefault(key, []).append(packed)
        self._sizes[key] = self._sizes.get(key, 0) + len(packed.requests)
        if self._sizes[key] >= self._batch_size:
            del self._sizes[key]
            yield key, self._buffers.pop(key)

    def finish_bundle(self):
        for key, buffer in self._buffers.items():
            yield GlobalWindows.windowed_value((key, buffer))
        self._buffers, self._sizes = {}, {}


class BatchPerAudience(beam.PTransform):
    LABEL = "Batch per audience"

    def __init__(self, batch_size: int, shards: int = 1,
                 max_buffering_secs: float | None = None, streaming: bool = False):
        super().__init__()
        self._batch_size, self._shards = batch_size, shards
        self._max_buffering_secs, self.streaming = max_buffering_secs, streaming

    def for_members(self) -> "BatchPerAudience":
        """A backfill's combined members: one batch-subscribe call a batch."""
        return BatchPerAudience(BATCH_SUBSCRIBE_LIMIT)

    def expand(self, requests):
        shards = self._shards
        # A typed key, so GroupIntoBatches gets a deterministic key coder.
        keyed = requests | "Key by audience and shard" >> beam.Map(
            lambda r: ((r.audience_id, shard_of(r.subscriber_hash, shards)), r)
        ).with_output_types(tuple[tuple[str, int], Any])
        if self.streaming:
            return keyed | "Group into batches" >> beam.GroupIntoBatches(
                self._batch_size, self._max_buffering_secs)
        return keyed | "Batch within bundles" >> beam.ParDo(
            _BatchWithinBundleFn(self._batch_size))


class BatchPerSlot(beam.PTransform):
    """`slots` keys for the whole job: `--max_connections`."""
    LABEL = "Batch per slot"

    def __init__(self, batch_size: int, slots: int,
                 max_buffering_secs: float | None = None, streaming: bool = False):
        super().__init__()
        self._batch_size, self._slots, self.streaming = batch_size, slots, streaming
        # A processing-time flush only means something to a stream.
        self._max_buffering_secs = max_buffering_secs if streaming else None

    def for_members(self) -> "BatchPerSlot":
        """A backfill's combined members: one batch-subscribe call a batch."""
        return BatchPerSlot(BATCH_SUBSCRIBE_LIMIT, self._slots)

    def expand(self, requests):
        slots = self._slots
        return (requests
                | "Key by slot" >> beam.Map(
                    lambda r: (shard_of(r.subscriber_hash, slots), r)
                ).with_output_types(tuple[int, Any])
                | "Group into batches" >> beam.GroupIntoBatches(
                    self._batch_size, self._max_buffering_secs))
