"""BatchPerAudience: requests -> ((audience_id, shard), [requests]).

The shard comes from the subscriber hash, so one user's upsert and events
share a key and the sink sends them in order (members first) in one call.

Two strategies, same output:
- streaming: `GroupIntoBatches` flushes by size or after
  `max_buffering_secs`, so a quiet stream still delivers within seconds;
- batch: batches are cut within each bundle. A batch `GroupIntoBatches` sits
  behind a shuffle, and on the DirectRunner a shuffle holds the whole input in
  memory before the first request; cutting within bundles keeps a backfill's
  memory flat and starts delivering at once. Order still holds: a record's
  member upsert reaches the buffer before its event (one fused stage, one
  element at a time), and the sink sends members first.
"""
from __future__ import annotations

from typing import Any

import apache_beam as beam
from apache_beam.transforms.window import GlobalWindows

from transforms.records import Request


def shard_of(subscriber_hash: str, shards: int) -> int:
    return int(subscriber_hash[:8], 16) % shards


class _BatchWithinBundleFn(beam.DoFn):

    def __init__(self, batch_size: int):
        self._batch_size = batch_size

    def start_bundle(self):
        self._buffers: dict[tuple, list[Request]] = {}

    def process(self, keyed):
        key, request = keyed
        buffer = self._buffers.setdefault(key, [])
        buffer.append(request)
        if len(buffer) >= self._batch_size:
            yield key, self._buffers.pop(key)

    def finish_bundle(self):
        for key, buffer in self._buffers.items():
            yield GlobalWindows.windowed_value((key, buffer))
        self._buffers = {}


class BatchPerAudience(beam.PTransform):

    def __init__(self, batch_size: int, shards: int = 1,
                 max_buffering_secs: float | None = None, streaming: bool = False):
        super().__init__()
        self._batch_size, self._shards = batch_size, shards
        self._max_buffering_secs, self._streaming = max_buffering_secs, streaming

    def expand(self, requests):
        shards = self._shards
        # A typed key, so GroupIntoBatches gets a deterministic key coder.
        keyed = requests | "Key by audience and shard" >> beam.Map(
            lambda r: ((r.audience_id, shard_of(r.subscriber_hash, shards)), r)
        ).with_output_types(tuple[tuple[str, int], Any])
        if self._streaming:
            return keyed | "Group into batches" >> beam.GroupIntoBatches(
                self._batch_size, self._max_buffering_secs)
        return keyed | "Batch within bundles" >> beam.ParDo(
            _BatchWithinBundleFn(self._batch_size))
