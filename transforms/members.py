"""A member's upserts combined into one: the values the member ends with.

Per merge field (and marketing permission) the later value wins: later by event time where records have
one (a record without a time is taken as the newest: it was sent "now"),
then by place in the input (file, offset, n-th record of a payload). An
`$unset` is the value "" and wins the same way. Tags add up: each is made
active. The combination is a max per
field, so it is commutative and associative: a runner may combine in any
order, on any worker (combiner lifting), and get the same member.

Batch runs combine over the whole input (CombineMemberUpserts), so a
backfill sends each member once; the sink combines what one batch holds
(a stream's buffering window) with the same `combined`.
"""
from __future__ import annotations

import functools
from typing import Iterable, Optional

import apache_beam as beam

from transforms.records import MemberUpsert, Record

_NO_TIME = 2 ** 63  # after every real epoch-ms time


def _position(origin: Optional[str]) -> tuple[str, int, int]:
    """`path:offset#n` or `path!member:offset#n` (transforms.parse), or a
    Pub/Sub message id, as something that sorts in input order."""
    if not origin:
        return ("", 0, 0)
    head, _, n = origin.partition("#")
    source, sep, offset = head.rpartition(":")
    if not sep or not offset.isdigit():
        source, offset = head, "0"
    return (source, int(offset), int(n) if n.isdigit() else 0)


def order_of(record: Record) -> tuple:
    """When a record's values were set, as a sortable key."""
    time_ms = record.time_ms if record.time_ms is not None else _NO_TIME
    return (time_ms, *_position(record.origin))


def combined(a: MemberUpsert, b: MemberUpsert) -> MemberUpsert:
    """One upsert holding both's values, each field's later one."""
    later, earlier = (b, a) if b.order >= a.order else (a, b)
    values, stamps = dict(a.merge_fields), {t: a.stamp(t) for t in a.merge_fields}
    for tag, value in b.merge_fields.items():
        order, upserts = b.stamp(tag)
        if tag in stamps:
            kept, kept_upserts = stamps[tag]
            upserts += kept_upserts
            if order < kept:
                value, order = values[tag], kept
        values[tag], stamps[tag] = value, (order, upserts)
    return MemberUpsert(
        # The address as first given: the one a new member is created with.
        later.sync, later.audience_id, earlier.email, later.subscriber_hash,
        later.status_if_new, values, later.insert_id, later.event_type,
        payload=None, order=later.order, records=a.records + b.records,
        stamps=stamps, tags=a.tags | b.tags,
        permissions=_later_of(a.permissions, b.permissions),
        is_syncing=later.is_syncing)


def _later_of(a: Optional[dict], b: Optional[dict]) -> Optional[dict]:
    """Per key of two {key: (order, value)}, the later value."""
    if not a or not b:
        return a or b
    return {key: max((v for v in (a.get(key), b.get(key)) if v is not None),
                     key=lambda v: v[0])
            for key in a.keys() | b.keys()}


def combine_all(upserts: Iterable[MemberUpsert]) -> MemberUpsert:
    return functools.reduce(combined, upserts)


class _CombineUpsertsFn(beam.CombineFn):
    """A CombineFn (not a plain callable) so the accumulator may be None:
    Beam's CombineFn.from_callable would run `combine_all` on empty
    accumulators of lifted combines."""

    def create_accumulator(self) -> Optional[MemberUpsert]:
        return None

    def add_input(self, accumulator, upsert):
        return upsert if accumulator is None else combined(accumulator, upsert)

    def merge_accumulators(self, accumulators):
        present = [a for a in accumulators if a is not None]
        return combine_all(present) if present else None

    def extract_output(self, accumulator):
        return accumulator


class CombineMemberUpserts(beam.PTransform):
    """MemberUpserts -> one MemberUpsert per (sync, audience, member).

    Holds one upsert per distinct member, wherever the runner combines:
    Beam lifts the combine before its shuffle."""

    def expand(self, upserts):
        return (upserts
                | "Key by member" >> beam.Map(
                    lambda u: ((u.sync, u.audience_id, u.subscriber_hash), u)
                ).with_output_types(tuple[tuple[str, str, str], MemberUpsert])
                | "Combine per member" >> beam.CombinePerKey(_CombineUpsertsFn())
                | "Drop keys" >> beam.Values())
