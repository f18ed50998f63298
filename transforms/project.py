"""ProjectProperties: an addressed Action -> the request Mailchimp will get.

Events become MemberEvents (name from event_type, chosen properties as
strings); members become MemberUpserts carrying the chosen user properties as
merge fields, still untyped: the sink knows the audience's merge-field types.
"""
from __future__ import annotations

import datetime
import functools
import json
import re
from typing import Any, Iterator, Optional

from transforms.records import Action, MemberEvent, MemberUpsert, Skipped
from transforms.routing import RouteSkips
from transforms.sync import Sync, property_key

_WHITESPACE = re.compile(r"\s+")
_EVENT_NAME = re.compile(r"^[A-Za-z0-9_-]{2,30}$")  # Mailchimp: 2-30 chars
_MISSING = object()


def stringify(value: Any) -> str:
    """A property value as Mailchimp's string-only event properties take it."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def event_name(event_type: str) -> Optional[str]:
    """event_type with runs of whitespace as `_`, or None if Mailchimp would
    refuse it (2-30 letters, digits, `_` or `-`)."""
    name = _WHITESPACE.sub("_", event_type.strip())
    return name if _EVENT_NAME.match(name) else None


def _iso(time_ms: Optional[int]) -> Optional[str]:
    if time_ms is None:
        return None
    try:
        moment = datetime.datetime.fromtimestamp(
            time_ms / 1000, tz=datetime.timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None
    return moment.isoformat(timespec="seconds")


def _project(sync: Sync, action: Action) -> Iterator[Any]:
    record = action.record
    if action.kind == "member":
        tags = sync.send_users.properties
        merge_fields = {tag: "" for tag in tags if tag in record.unset}
        merge_fields.update(
            (tag, record.user_properties[tag]) for tag in tags
            if tag in record.user_properties and tag not in merge_fields)
        yield MemberUpsert(
            sync.name, sync.audience_id, action.email, action.subscriber_hash,
            sync.status_if_new, merge_fields, record.insert_id,
            record.event_type, record.payload)
        return
    name = event_name(record.event_type)
    if name is None:
        yield Skipped.of(action, "invalid_event_name")
        return
    rules = sync.send_events
    properties = {}
    for path in rules.properties:
        value = record.lookup(path, _MISSING)
        if value is not _MISSING:
            properties[property_key(path)] = stringify(value)
    occurred_at = _iso(record.time_ms) if rules.occurred_at == "event_time" else None
    yield MemberEvent(
        sync.name, sync.audience_id, action.email, action.subscriber_hash,
        name, properties, occurred_at, rules.is_syncing, record.insert_id,
        record.event_type, record.payload)


class ProjectProperties(RouteSkips):
    """Action -> MemberUpsert | MemberEvent | Skipped(invalid_event_name)."""

    def __init__(self, sync: Sync):
        super().__init__(functools.partial(_project, sync))
