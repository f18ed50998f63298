"""PlanActions: what one sync does with each record (its selection rules).

User forwarding applies to every event of the sync's records, identify calls
included; event forwarding only to selected, non-identify events that pass
every filter. A record a sync does not select is `Skipped(not_selected)`:
counted, never written.
"""
from __future__ import annotations

import functools
from typing import Any

from transforms.records import NOT_SELECTED, Action, Record, Skipped
from transforms.routing import RouteSkips
from transforms.sync import Filter, Sync

_MISSING = object()


def _same(a: Any, b: Any) -> bool:
    # Config values are typed by YAML; event values by the sender: compare
    # 42 with "42" as equal rather than surprise the user.
    return a == b or (not isinstance(a, (dict, list)) and str(a) == str(b))


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def holds(condition: Filter, record: Record) -> bool:
    """Whether one filter condition holds for a record."""
    value = record.lookup(condition.property, _MISSING)
    present = value is not _MISSING and value is not None and value != ""
    op, expected = condition.op, condition.value
    if op == "is_set":
        return present
    if op == "is_not_set":
        return not present
    if not present:
        return op in ("not_equals", "not_in")
    if op == "equals":
        return _same(value, expected)
    if op == "not_equals":
        return not _same(value, expected)
    if op == "in":
        return any(_same(value, e) for e in expected)
    if op == "not_in":
        return not any(_same(value, e) for e in expected)
    if op == "contains":
        if isinstance(value, list):
            return any(_same(v, expected) for v in value)
        return str(expected) in str(value)
    number = _number(value)
    if number is None:
        return False
    return number > expected if op == "greater_than" else number < expected


def _not_selected(sync: Sync, kind: str, record: Record) -> Skipped:
    return Skipped(sync.name, kind, NOT_SELECTED, event_type=record.event_type,
                   insert_id=record.insert_id)


def _cohort_plan(sync: Sync, record: Record) -> list[Action | Skipped]:
    """A cohort message: one action per user for a sync that takes the
    cohort. It is no event and no user's record: the sync's other parts
    skip it as not selected, so their counts still add up to the records."""
    planned: list[Action | Skipped] = [
        _not_selected(sync, kind, record)
        for kind, part in (("member", sync.send_users), ("event", sync.send_events))
        if part.enabled]
    cohort, rules = record.cohort, sync.send_cohorts
    if rules.enabled and rules.selects(cohort.name, cohort.cohort_id):
        planned += [Action(sync.name, sync.audience_id, "cohort", user)
                    for user in cohort.users]
    elif rules.enabled:
        planned.append(_not_selected(sync, "cohort", record))
    return planned


def plan(sync: Sync, record: Record) -> list[Action | Skipped]:
    """The member action and/or event action of one sync for one record."""
    if record.cohort is not None:
        return _cohort_plan(sync, record)
    planned: list[Action | Skipped] = []
    if sync.send_users.enabled:
        planned.append(Action(sync.name, sync.audience_id, "member", record))
    if sync.send_events.enabled:
        rules = sync.send_events
        if (not record.is_identify and rules.selects(record.event_type)
                and all(holds(f, record) for f in rules.filters)):
            planned.append(Action(sync.name, sync.audience_id, "event", record))
        else:  # most records of most syncs: no Action made just to skip it
            planned.append(_not_selected(sync, "event", record))
    return planned


class PlanActions(RouteSkips):
    """Record -> Action (main) | Skipped (`skipped`) for one sync."""

    def __init__(self, sync: Sync):
        super().__init__(functools.partial(plan, sync))
