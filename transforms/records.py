"""The typed values that flow between the pipeline's steps.

Every input record ends in exactly one place per sync: a delivered request,
a `Skipped` with a reason, or a `DeadLetter` with a reason and the original
payload. Frozen slotted dataclasses keep them cheap to pickle between stages.
"""
from __future__ import annotations

import dataclasses
import json
from typing import Any, Literal, Optional

Kind = Literal["event", "member"]
NAMESPACE = "mailchimp_stream"  # of every Beam metric the pipeline reports


# Property paths that are a Record's own attributes.
_OWN_FIELDS = {"user_id": "user_id", "device_id": "device_id",
               "event_type": "event_type", "insert_id": "insert_id",
               "time": "time_ms"}


@dataclasses.dataclass(frozen=True, slots=True)
class Record:
    """One Amplitude event or identify call, parsed.

    For an identify call `user_properties` holds the `$set` and `$setOnce`
    values and `unset` the names of `$unset`.
    """
    event_type: str
    user_id: Optional[str]
    device_id: Optional[str]
    time_ms: Optional[int]
    insert_id: Optional[str]
    event_properties: dict[str, Any]
    user_properties: dict[str, Any]
    fields: dict[str, Any]  # the other top-level fields: platform, country...
    payload: str  # the original text, for dead letters
    is_identify: bool = False
    unset: tuple[str, ...] = ()
    attributes: dict[str, str] = dataclasses.field(default_factory=dict)  # Pub/Sub
    # Where in the input the record was read (a file line's path and offset,
    # a Pub/Sub message id): a replayed bundle reads the same origins, so
    # DropDuplicates can tell a replay from a duplicate.
    origin: Optional[str] = None

    def lookup(self, path: str, default: Any = None) -> Any:
        """The value at a property path (see transforms.sync), or default
        where the record has no such property."""
        head, _, name = path.partition(".")
        if head == "event_properties" and name:
            return self.event_properties.get(name, default)
        if head == "user_properties" and name:
            return self.user_properties.get(name, default)
        if head == "attributes" and name:
            return self.attributes.get(name, default)
        attribute = _OWN_FIELDS.get(path)
        if attribute:
            value = getattr(self, attribute)
            return default if value is None else value
        return self.fields.get(path, default)


@dataclasses.dataclass(frozen=True, slots=True)
class Action:
    """What one sync will do with one record, before it becomes a request."""
    sync: str
    audience_id: str
    kind: Kind
    record: Record
    email: Optional[str] = None
    subscriber_hash: Optional[str] = None


@dataclasses.dataclass(frozen=True, slots=True)
class MemberUpsert:
    sync: str
    audience_id: str
    email: str
    subscriber_hash: str
    status_if_new: str
    merge_fields: dict[str, Any]  # tag -> value as found ("" clears)
    insert_id: Optional[str]
    event_type: str
    payload: str


@dataclasses.dataclass(frozen=True, slots=True)
class MemberEvent:
    sync: str
    audience_id: str
    email: str
    subscriber_hash: str
    name: str
    properties: dict[str, str]
    occurred_at: Optional[str]
    is_syncing: bool
    insert_id: Optional[str]
    event_type: str
    payload: str

    def body(self) -> dict[str, Any]:
        """The request body of POST /lists/{id}/members/{hash}/events."""
        body: dict[str, Any] = {"name": self.name, "properties": self.properties}
        if self.is_syncing:
            body["is_syncing"] = True
        if self.occurred_at:
            body["occurred_at"] = self.occurred_at
        return body


Request = MemberUpsert | MemberEvent


@dataclasses.dataclass(frozen=True, slots=True)
class RecordRequests:
    """One record's requests for one sync, its upsert before its event: one
    element from the rules to the sink, so that no batch flush, shard or
    slot can send the event before (or without) the upsert."""
    requests: tuple[Request, ...]

    @property
    def audience_id(self) -> str:
        return self.requests[0].audience_id

    @property
    def subscriber_hash(self) -> str:
        return self.requests[0].subscriber_hash


@dataclasses.dataclass(frozen=True, slots=True)
class Skipped:
    """`detail`: what Mailchimp said, for the skips it decided (for
    invalid_merge_fields the fields and its messages)."""
    sync: str
    kind: Kind
    reason: str
    email: Optional[str] = None
    event_type: Optional[str] = None
    insert_id: Optional[str] = None
    detail: Optional[str] = None

    def to_json(self) -> str:
        return json.dumps(
            {k: v for k, v in dataclasses.asdict(self).items() if v is not None})

    @classmethod
    def of(cls, action_or_request: Action | Request, reason: str,
           detail: Optional[str] = None) -> "Skipped":
        if isinstance(action_or_request, Action):
            record = action_or_request.record
            return cls(action_or_request.sync, action_or_request.kind, reason,
                       action_or_request.email, record.event_type,
                       record.insert_id, detail)
        kind: Kind = "member" if isinstance(
            action_or_request, MemberUpsert) else "event"
        return cls(action_or_request.sync, kind, reason,
                   action_or_request.email, action_or_request.event_type,
                   action_or_request.insert_id, detail)


@dataclasses.dataclass(frozen=True, slots=True)
class UnknownMergeFields:
    """Merge fields of one member that were not sent: `fields`, tags the
    audience does not have; `invalid`, tag -> why its value did not fit the
    field's type."""
    sync: str
    audience_id: str
    email: str
    fields: tuple[str, ...]
    invalid: dict[str, str] = dataclasses.field(default_factory=dict)

    def to_json(self) -> str:
        line = {"sync": self.sync, "audience_id": self.audience_id,
                "email": self.email, "fields": list(self.fields)}
        if self.invalid:
            line["invalid"] = self.invalid
        return json.dumps(line)


@dataclasses.dataclass(frozen=True, slots=True)
class DeadLetter:
    stage: str  # read (a whole input file) | parse | members | events
    reason: str  # unreadable_file | malformed_json | unrecognised_record | mailchimp_rejected | retries_exhausted
    error: str
    payload: str
    sync: Optional[str] = None

    def to_json(self) -> str:
        return json.dumps(
            {k: v for k, v in dataclasses.asdict(self).items() if v is not None})


@dataclasses.dataclass(frozen=True, slots=True)
class Delivered:
    sync: str
    kind: Kind
    insert_id: Optional[str] = None
