"""DropDuplicates: a record seen twice (same insert_id) goes on once.

Mailchimp's member events have no idempotency key, so a Pub/Sub redelivery
or an overlapping backfill would post an event twice; Amplitude's own rule is
that insert_id names an event uniquely. The window: a record is dropped when
its insert_id is among the last `capacity` to `capacity / 2` distinct ids
this worker process has seen (two generations of sets, so memory is bounded
and no per-id bookkeeping is needed). On the DirectRunner that is the whole
run up to that many events; on several workers, a duplicate that lands on
another worker goes through. Records without insert_id are never dropped.
"""
from __future__ import annotations

import dataclasses
import threading
import uuid

import apache_beam as beam

from transforms.records import Record
from transforms.worker_cache import worker_object

DUPLICATES = "duplicates"
DEFAULT_CAPACITY = 200_000


@dataclasses.dataclass(frozen=True, slots=True)
class Duplicate:
    """A record dropped because its insert_id was seen before."""
    insert_id: str


class RecentIds:
    """The last `capacity / 2` to `capacity` distinct ids; thread-safe."""

    def __init__(self, capacity: int):
        self._half = max(1, capacity // 2)
        self._current: set[str] = set()
        self._previous: set[str] = set()
        self._lock = threading.Lock()

    def seen(self, key: str) -> bool:
        """Whether `key` was seen before; remembers it either way."""
        with self._lock:
            if key in self._current or key in self._previous:
                return True
            if len(self._current) >= self._half:
                self._previous, self._current = self._current, set()
            self._current.add(key)
            return False


class _DropDuplicatesFn(beam.DoFn):

    def __init__(self, capacity: int):
        self._capacity = capacity
        # One memory per process and pipeline, whichever DoFn sees the copy.
        self._key = ("recent_ids", uuid.uuid4().hex)

    def setup(self):
        capacity = self._capacity
        self._recent = worker_object(self._key, lambda: RecentIds(capacity))

    def process(self, record: Record):
        if record.insert_id and self._recent.seen(record.insert_id):
            yield beam.pvalue.TaggedOutput(DUPLICATES, Duplicate(record.insert_id))
        else:
            yield record


class DropDuplicates(beam.PTransform):
    """Records -> Records (main) | Duplicate (`duplicates`)."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY):
        super().__init__()
        self._capacity = capacity

    def expand(self, records):
        return records | beam.ParDo(_DropDuplicatesFn(self._capacity)).with_outputs(
            DUPLICATES, main="records")
