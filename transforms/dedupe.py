"""DropDuplicates: a record seen twice (same insert_id) goes on once.

Mailchimp's member events have no idempotency key, so a Pub/Sub redelivery
or an overlapping backfill would post an event twice; Amplitude's own rule is
that insert_id names an event uniquely. Records without insert_id are never
dropped. The memory of ids must survive a bundle the runner runs again (a
retry, or FnApiRunner's `--direct_runner_bundle_repeat`): its records are not
duplicates of themselves. Which memory depends on the runner:

- Local runners, `DropRecentDuplicates`: each worker process remembers the
  last `capacity / 2` to `capacity` distinct ids, each with where it was
  first seen (`Record.origin`). A repeated id is a duplicate only when it
  comes from another origin; a replayed bundle re-reads the same origins.
  No Beam state: FnApiRunner would hold a stateful step's input in memory
  whole and run it on one worker.
- Remote runners, `DropDuplicatesPerKey`: Beam state keyed by insert_id, as
  Beam's `DeduplicatePerKey` keeps it, for `window_secs` of processing time.
  The runner commits it with the bundle and shares it per key across
  workers, so a duplicate that lands on another worker is caught too.
"""
from __future__ import annotations

import threading
import uuid
from typing import NamedTuple, Optional

import apache_beam as beam
from apache_beam.coders import BooleanCoder
from apache_beam.pvalue import PCollection, TaggedOutput
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import (ReadModifyWriteStateSpec,
                                              TimerSpec, on_timer)
from apache_beam.utils.timestamp import Timestamp

from transforms.records import Duplicate, Record
from transforms.routing import tagged
from transforms.worker_cache import worker_object

DEFAULT_CAPACITY = 200_000
DEFAULT_WINDOW_SECS = 3600.0
_NO_ID = "no_insert_id"
_UNSEEN = object()


class Deduplicated(NamedTuple):
    records: PCollection  # Records
    duplicates: PCollection  # Duplicates


class RecentIds:
    """The last `capacity / 2` to `capacity` distinct ids, each with a digest
    of the origin it was first seen at; thread-safe."""

    def __init__(self, capacity: int):
        self._half = max(1, capacity // 2)
        # id -> hash of its first origin (None: unknown). Two generations:
        # memory is bounded without per-id bookkeeping. A 64-bit hash, not
        # the origin itself: same process, so the same hash, and small.
        self._current: dict[str, Optional[int]] = {}
        self._previous: dict[str, Optional[int]] = {}
        self._lock = threading.Lock()

    def seen(self, key: str, origin: Optional[str] = None) -> bool:
        """Whether `key` was seen before at another origin, or where either
        origin is unknown; remembers its first origin either way."""
        where = None if origin is None else hash(origin)
        with self._lock:
            first = self._current.get(key, _UNSEEN)
            if first is _UNSEEN:
                first = self._previous.get(key, _UNSEEN)
            if first is not _UNSEEN:
                return first is None or first != where
            if len(self._current) >= self._half:
                self._previous, self._current = self._current, {}
            self._current[key] = where
            return False


class _DropRecentFn(beam.DoFn):

    def __init__(self, capacity: int, job: Optional[str]):
        self._capacity = capacity
        # One memory per process and job, whichever DoFn sees the copy.
        self._key = ("recent_ids", job or uuid.uuid4().hex)

    def setup(self):
        capacity = self._capacity
        self._recent = worker_object(self._key, lambda: RecentIds(capacity))

    def process(self, record: Record):
        if record.insert_id and self._recent.seen(record.insert_id, record.origin):
            yield tagged(Duplicate(record.insert_id))
        else:
            yield record


class DropRecentDuplicates(beam.PTransform):
    """Records -> Deduplicated, by each worker process's RecentIds (one per
    `job`: the runs of one local streaming job share it)."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY, job: Optional[str] = None):
        super().__init__()
        self._capacity, self._job = capacity, job

    def expand(self, records) -> Deduplicated:
        out = records | "Drop recent ids" >> beam.ParDo(
            _DropRecentFn(self._capacity, self._job)).with_outputs(
                Duplicate.TAG, main="records")
        return Deduplicated(out.records, out.duplicates)


def _keyed_by_insert_id(record: Record):
    if record.insert_id:
        yield record.insert_id, record
    else:
        yield TaggedOutput(_NO_ID, record)


class _DropSeenFn(beam.DoFn):
    """(insert_id, Record) -> the Record the first time, a Duplicate after,
    until the id is forgotten. Beam's DeduplicatePerKey drops duplicates
    silently; ours are counted."""
    SEEN = ReadModifyWriteStateSpec("seen", BooleanCoder())
    FORGET = TimerSpec("forget", TimeDomain.REAL_TIME)

    def __init__(self, window_secs: float):
        self._window_secs = window_secs

    def process(self, keyed, seen=beam.DoFn.StateParam(SEEN),
                forget=beam.DoFn.TimerParam(FORGET)):
        insert_id, record = keyed
        if seen.read():
            yield tagged(Duplicate(insert_id))
            return
        seen.write(True)
        forget.set(Timestamp.now() + self._window_secs)
        yield record

    @on_timer(FORGET)
    def forget(self, seen=beam.DoFn.StateParam(SEEN)):
        seen.clear()


class DropDuplicatesPerKey(beam.PTransform):
    """Records -> Deduplicated, by state the runner keeps per insert_id for
    `window_secs` of processing time."""

    def __init__(self, window_secs: float = DEFAULT_WINDOW_SECS):
        super().__init__()
        self._window_secs = window_secs

    def expand(self, records) -> Deduplicated:
        keyed = records | "Key by insert_id" >> beam.FlatMap(
            _keyed_by_insert_id).with_output_types(
                tuple[str, Record]).with_outputs(_NO_ID, main="keyed")
        seen = keyed.keyed | "Drop seen ids" >> beam.ParDo(
            _DropSeenFn(self._window_secs)).with_outputs(
                Duplicate.TAG, main="records")
        unique = ((seen.records, keyed[_NO_ID])
                  | "With records without insert_id" >> beam.Flatten())
        return Deduplicated(unique, seen.duplicates)


class DropDuplicates(beam.PTransform):
    """Records -> Deduplicated: Records (`records`) | Duplicate
    (`duplicates`). `shared_state`: by Beam state (remote runners), else by
    each process's recent ids (local runners); see the module's doc."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY,
                 shared_state: bool = False,
                 window_secs: float = DEFAULT_WINDOW_SECS,
                 job: Optional[str] = None):
        super().__init__()
        self._capacity, self._shared_state = capacity, shared_state
        self._window_secs, self._job = window_secs, job

    def expand(self, records) -> Deduplicated:
        if self._shared_state:
            return records | "Per insert_id" >> DropDuplicatesPerKey(
                self._window_secs)
        return records | "Recent ids" >> DropRecentDuplicates(
            self._capacity, self._job)
