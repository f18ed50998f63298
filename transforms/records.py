"""The typed values that flow between the pipeline's steps.

Every input record ends in exactly one place per sync: a delivered request,
a `Skipped` with a reason, or a `DeadLetter` with a reason and the original
payload. Frozen slotted dataclasses keep them cheap to pickle between stages.

Each type declares where its values go (`Routed`): the output a step sends
them to, the file their line is written to, what they count for. Steps read
these, never the type itself, so a new outcome is one class here.
"""
from __future__ import annotations

import dataclasses
import json
from typing import Any, ClassVar, Literal, Optional

Kind = Literal["event", "member"]
Count = tuple[Optional[str], str]  # (sync, or None for the whole run; name)
NAMESPACE = "mailchimp_stream"  # of every Beam metric the pipeline reports
NOT_SELECTED = "not_selected"  # the skip reason that is counted, never written
_SECTION = {"event": "events", "member": "members"}  # of summary.json
_BEFORE_RECORDS = {"read", "parse"}  # dead-letter stages of a whole input


# Property paths that are a Record's own attributes.
_OWN_FIELDS = {"user_id": "user_id", "device_id": "device_id",
               "event_type": "event_type", "insert_id": "insert_id",
               "time": "time_ms"}


class Routed:
    """Where a type's values go, as data. `TAG`: the output a step sends
    them to (None: its main output; see transforms.routing.tagged).
    `file()`: the output file their JSON line goes to (None: not written).
    `counts()`: what each adds to in summary.json and the Beam metrics."""
    __slots__ = ()  # keeps the dataclasses below slotted
    TAG: ClassVar[Optional[str]] = None
    FILE: ClassVar[Optional[str]] = None

    def file(self) -> Optional[str]:
        return self.FILE

    def counts(self) -> list[Count]:
        raise TypeError(f"not an outcome: {self!r}")


@dataclasses.dataclass(frozen=True, slots=True)
class Record(Routed):
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

    def counts(self) -> list[Count]:
        return [(None, "records_in")]


@dataclasses.dataclass(frozen=True, slots=True)
class Duplicate(Routed):
    """A record dropped because its insert_id was seen before (it is also
    counted in records_in)."""
    TAG = "duplicates"
    insert_id: str

    def counts(self) -> list[Count]:
        return [(None, "duplicates")]


@dataclasses.dataclass(frozen=True, slots=True)
class Action(Routed):
    """What one sync will do with one record, before it becomes a request."""
    sync: str
    audience_id: str
    kind: Kind
    record: Record
    email: Optional[str] = None
    subscriber_hash: Optional[str] = None

    @property
    def event_type(self) -> str:
        return self.record.event_type

    @property
    def insert_id(self) -> Optional[str]:
        return self.record.insert_id


@dataclasses.dataclass(frozen=True, slots=True)
class MemberUpsert(Routed):
    kind: ClassVar[Kind] = "member"
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
class MemberEvent(Routed):
    kind: ClassVar[Kind] = "event"
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
class RecordRequests(Routed):
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
class Skipped(Routed):
    """`detail`: what Mailchimp said, for the skips it decided (for
    invalid_merge_fields the fields and its messages)."""
    TAG = "skipped"
    FILE = "skipped_members"
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

    def file(self) -> Optional[str]:
        # Every record a sync does not select is one: too many to list.
        return None if self.reason == NOT_SELECTED else self.FILE

    def counts(self) -> list[Count]:
        return [(self.sync, f"{_SECTION[self.kind]}.skipped.{self.reason}")]

    @classmethod
    def of(cls, action_or_request: Action | Request, reason: str,
           detail: Optional[str] = None) -> "Skipped":
        what = action_or_request
        return cls(what.sync, what.kind, reason, what.email, what.event_type,
                   what.insert_id, detail)


@dataclasses.dataclass(frozen=True, slots=True)
class UnknownMergeFields(Routed):
    """Merge fields of one member that were not sent: `fields`, tags the
    audience does not have; `invalid`, tag -> why its value did not fit the
    field's type."""
    TAG = "unknown_merge_fields"
    FILE = "unknown_merge_fields"
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

    def counts(self) -> list[Count]:
        return [(self.sync, f"unknown_merge_fields.{tag}")
                for tag in self.fields] + [
            (self.sync, f"invalid_merge_fields.{tag}") for tag in self.invalid]


@dataclasses.dataclass(frozen=True, slots=True)
class DeadLetter(Routed):
    TAG = "dead_letter"
    FILE = "dead_letter"
    stage: str  # read (a whole input file) | parse | members | events
    reason: str  # unreadable_file | malformed_json | unrecognised_record | mailchimp_rejected | retries_exhausted
    error: str
    payload: str
    sync: Optional[str] = None

    def to_json(self) -> str:
        return json.dumps(
            {k: v for k, v in dataclasses.asdict(self).items() if v is not None})

    def counts(self) -> list[Count]:
        names = ["dead_letter", f"dead_letter.{self.reason}"]
        if self.stage in _BEFORE_RECORDS:  # an input that never became a Record
            return [(None, "records_in")] + [(None, n) for n in names]
        return [(self.sync, n) for n in names + [f"{self.stage}.dead_letter"]]


@dataclasses.dataclass(frozen=True, slots=True)
class Delivered(Routed):
    sync: str
    kind: Kind
    insert_id: Optional[str] = None

    def counts(self) -> list[Count]:
        name = "events.delivered" if self.kind == "event" else "members.upserted"
        return [(self.sync, name)]
