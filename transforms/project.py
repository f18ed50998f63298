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
from typing import Any, Optional

from transforms.members import order_of
from transforms.records import (Action, MemberEvent, MemberTags, MemberUpsert,
                                Skipped, SkippedValue)
from transforms.routing import RouteSkips
from transforms.sync import TAG_MAX_CHARS, Sync, property_key

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


def _project(sync: Sync, action: Action) -> tuple[Any]:
    record = action.record
    if action.kind == "member":
        users = sync.send_users
        tags = users.properties
        props = record.user_properties
        merge_fields = {tag: "" for tag in tags if tag in record.unset}
        merge_fields.update({tag: props[tag] for tag in tags
                             if tag in props and tag not in merge_fields})
        order = order_of(record)
        names, skipped = _tag_names(sync, action, props)
        permissions, refused = _permissions(sync, action, props, order)
        return (MemberUpsert(
            sync.name, sync.audience_id, action.email, action.subscriber_hash,
            sync.status_if_new, merge_fields, record.insert_id,
            record.event_type, record.payload, order,
            tags=frozenset(users.tags) | names, permissions=permissions,
            is_syncing=sync.send_events.is_syncing), *skipped, *refused)
    if action.kind == "cohort":
        return _cohort_requests(sync, action)
    name = event_name(record.event_type)
    if name is None:
        return (Skipped.of(action, "invalid_event_name"),)
    rules = sync.send_events
    properties = {}
    for path in rules.properties:
        value = record.lookup(path, _MISSING)
        if value is not _MISSING:
            properties[property_key(path)] = stringify(value)
    occurred_at = _iso(record.time_ms) if rules.occurred_at == "event_time" else None
    return (MemberEvent(
        sync.name, sync.audience_id, action.email, action.subscriber_hash,
        name, properties, occurred_at, rules.is_syncing, record.insert_id,
        record.event_type, record.payload),)


def _cohort_requests(sync: Sync, action: Action) -> tuple[Any, ...]:
    """A cohort user's tag; first the member itself, where the sync
    creates the users that are not in the audience yet."""
    record, cohort = action.record, action.record.cohort
    tags = MemberTags(
        sync.name, sync.audience_id, action.email, action.subscriber_hash,
        cohort.name, cohort.in_cohort, sync.send_events.is_syncing,
        record.insert_id, record.event_type, record.payload)
    if not sync.send_cohorts.create_members:
        return (tags,)
    member = MemberUpsert(
        sync.name, sync.audience_id, action.email, action.subscriber_hash,
        sync.status_if_new, {}, record.insert_id, record.event_type,
        record.payload, order_of(record))
    return member, tags


def _tag_names(sync: Sync, action: Action, props: dict
               ) -> tuple[frozenset[str], list[SkippedValue]]:
    """The tag names in the sync's `tags_property` (a name or a list of
    names), trimmed; empty or over-long ones skipped and reported."""
    prop = sync.send_users.tags_property
    value = props.get(prop) if prop else None
    if value is None:
        return frozenset(), []
    names, skipped = set(), []
    for raw in value if isinstance(value, list) else [value]:
        name = stringify(raw).strip()
        reason = ("empty" if not name else
                  "too_long" if len(name) > TAG_MAX_CHARS else None)
        if reason:
            skipped.append(SkippedValue(sync.name, action.email, "tag", reason,
                                        stringify(raw)))
        else:
            names.add(name)
    return frozenset(names), skipped


_BOOLEANS = {"true": True, "false": False, "yes": True, "no": False,
             "1": True, "0": False}


def _permissions(sync: Sync, action: Action, props: dict, order: tuple
                 ) -> tuple[Optional[dict], list[SkippedValue]]:
    """GDPR: each configured permission whose property the record has, as
    (order, enabled); a value that is not a boolean is reported."""
    permissions, refused = {}, []
    for permission_id, prop in sync.send_users.marketing_permissions.items():
        if prop not in props:
            continue
        value = props[prop]
        enabled = value if isinstance(value, bool) else _BOOLEANS.get(
            stringify(value).strip().lower())
        if enabled is None:
            refused.append(SkippedValue(sync.name, action.email,
                                        "marketing_permission", "not_boolean",
                                        f"{permission_id}={stringify(value)}"))
        else:
            permissions[permission_id] = (order, enabled)
    return permissions or None, refused


class ProjectProperties(RouteSkips):
    """Action -> MemberUpsert | MemberEvent | Skipped(invalid_event_name)."""

    def __init__(self, sync: Sync):
        super().__init__(functools.partial(_project, sync))
