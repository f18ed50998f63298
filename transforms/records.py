"""The typed values that flow between the pipeline's steps.

Every input record ends in exactly one place per sync: a delivered request,
a `Skipped` with a reason, or a `DeadLetter` with a reason and the original
payload. Slotted dataclasses keep them cheap to pickle between stages.

They are not frozen, though nothing changes them once they are made:
several are built for each record, and a frozen dataclass's __init__
(object.__setattr__ per field) costs about four times a plain one's (about
a quarter of the rules' CPU time). Nothing hashes them or uses them as
grouping keys (those are tuples of strings: transforms.members, batching,
dedupe), the only uses that would need frozen. Beam keeps encoding them as
before: FastPrimitivesCoder, pickling; RowCoder is only chosen for a
non-frozen dataclass by schema-aware transforms, which the pipeline has none of.

Each type declares where its values go (`Routed`): the output a step sends
them to, the file their line is written to, what they count for. Steps read
these, never the type itself, so a new outcome is one class here.
"""
from __future__ import annotations

import dataclasses
import json
from typing import Any, ClassVar, Iterable, Literal, Optional

Kind = Literal["event", "member", "cohort"]
Count = tuple[Optional[str], str, int]  # (sync, or None for the run; name; n)
NAMESPACE = "mailchimp_stream"  # of every Beam metric the pipeline reports
NOT_SELECTED = "not_selected"  # the skip reason that is counted, never written
_SECTION = {"event": "events", "member": "members", "cohort": "cohorts"}  # of summary.json
_DONE = {"event": "events.delivered", "member": "members.upserted",
         "cohort": "cohorts.delivered"}
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


@dataclasses.dataclass(slots=True)
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
    cohort: Optional["Cohort"] = None  # an Amplitude cohort message's state
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
        return [(None, "records_in", 1)]


@dataclasses.dataclass(slots=True)
class Cohort:
    """What an Amplitude cohort message says: `users` are (or are no
    longer, `in_cohort` false) in the cohort. Each user is a Record of its
    own (`$cohort`, its user_id and user_properties), so the sync's rules
    find its email as they find an event's."""
    name: str
    cohort_id: str
    in_cohort: bool
    users: tuple[Record, ...]


@dataclasses.dataclass(slots=True)
class Duplicate(Routed):
    """A record dropped because its insert_id was seen before (it is also
    counted in records_in)."""
    TAG = "duplicates"
    insert_id: str

    def counts(self) -> list[Count]:
        return [(None, "duplicates", 1)]


@dataclasses.dataclass(slots=True)
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


@dataclasses.dataclass(slots=True)
class MemberUpsert(Routed):
    """One member's values, from one record or combined from several
    (transforms.members): `records` upserts, `stamps` saying for each merge
    field when its value was set and by how many of them."""
    kind: ClassVar[Kind] = "member"
    sync: str
    audience_id: str
    email: str
    subscriber_hash: str
    status_if_new: str
    merge_fields: dict[str, Any]  # tag -> value as found ("" clears)
    insert_id: Optional[str]
    event_type: str
    payload: Optional[str]  # None once combined: see dead_letter_payload
    order: tuple = ()  # when its values were set (transforms.members.order_of)
    records: int = 1
    stamps: Optional[dict[str, tuple[tuple, int]]] = None  # tag -> (order, upserts)
    tags: frozenset[str] = frozenset()  # made active after the upsert
    # GDPR: permission id -> (order, enabled); sent with PUT (the batch
    # subscribe body has no marketing_permissions).
    permissions: Optional[dict[str, tuple[tuple, bool]]] = None
    is_syncing: bool = False  # of the tags call: no automations (backfills)

    def stamp(self, tag: str) -> tuple[tuple, int]:
        return self.stamps[tag] if self.stamps is not None else (self.order, 1)

    def dead_letter_payload(self) -> str:
        """The record's text; for upserts combined from several records,
        the member they add up to, which is what a replay must send."""
        if self.payload is not None:
            return self.payload
        member = {"email_address": self.email, "status_if_new": self.status_if_new,
                  "merge_fields": self.merge_fields}
        if self.tags:
            member["tags"] = sorted(self.tags)
        if self.permissions:
            member["marketing_permissions"] = self.marketing_permissions()
        return json.dumps(member, ensure_ascii=False)

    def marketing_permissions(self) -> list[dict[str, Any]]:
        """As the PUT member body takes them."""
        return [{"marketing_permission_id": pid, "enabled": enabled}
                for pid, (_, enabled) in sorted((self.permissions or {}).items())]


@dataclasses.dataclass(slots=True)
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

    def dead_letter_payload(self) -> str:
        return self.payload

    def body(self) -> dict[str, Any]:
        """The request body of POST /lists/{id}/members/{hash}/events."""
        body: dict[str, Any] = {"name": self.name, "properties": self.properties}
        if self.is_syncing:
            body["is_syncing"] = True
        if self.occurred_at:
            body["occurred_at"] = self.occurred_at
        return body


@dataclasses.dataclass(slots=True)
class MemberTags(Routed):
    """A cohort user's tag, made active (in the cohort) or inactive."""
    kind: ClassVar[Kind] = "cohort"
    sync: str
    audience_id: str
    email: str
    subscriber_hash: str
    name: str
    active: bool
    is_syncing: bool
    insert_id: Optional[str]
    event_type: str
    payload: str

    def dead_letter_payload(self) -> str:
        return self.payload

    def body(self) -> dict[str, Any]:
        return tags_body([self.name], self.active, self.is_syncing)


def tags_body(names: Iterable[str], active: bool, is_syncing: bool) -> dict[str, Any]:
    """The request body of POST /lists/{id}/members/{hash}/tags."""
    status = "active" if active else "inactive"
    return {"tags": [{"name": name, "status": status} for name in names],
            "is_syncing": is_syncing}


Request = MemberUpsert | MemberEvent | MemberTags


@dataclasses.dataclass(slots=True)
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


@dataclasses.dataclass(slots=True)
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
    records: Optional[int] = None  # the records it stands for, if several

    def to_json(self) -> str:
        return json.dumps(
            {k: v for k, v in dataclasses.asdict(self).items() if v is not None})

    def file(self) -> Optional[str]:
        # Every record a sync does not select is one: too many to list.
        return None if self.reason == NOT_SELECTED else self.FILE

    def counts(self) -> list[Count]:
        return [(self.sync, f"{_SECTION[self.kind]}.skipped.{self.reason}",
                 self.records or 1)]

    @classmethod
    def of(cls, action_or_request: Action | Request, reason: str,
           detail: Optional[str] = None) -> "Skipped":
        what = action_or_request
        return cls(what.sync, what.kind, reason, what.email, what.event_type,
                   what.insert_id, detail, several(what))


@dataclasses.dataclass(slots=True)
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
    # tag -> the upserts that carried it, where several were combined
    upserts: Optional[dict[str, int]] = None

    def to_json(self) -> str:
        line = {"sync": self.sync, "audience_id": self.audience_id,
                "email": self.email, "fields": list(self.fields)}
        if self.invalid:
            line["invalid"] = self.invalid
        return json.dumps(line)

    def counts(self) -> list[Count]:
        upserts = self.upserts or {}
        return [(self.sync, f"unknown_merge_fields.{tag}", upserts.get(tag, 1))
                for tag in self.fields] + [
            (self.sync, f"invalid_merge_fields.{tag}", upserts.get(tag, 1))
            for tag in self.invalid]


@dataclasses.dataclass(slots=True)
class SkippedValue(Routed):
    """A tag name or marketing permission of a member that was not sent
    (the member was): `what` (tag | marketing_permission), why, the value."""
    TAG = "skipped"  # a rule's: it leaves with the rules' skips
    FILE = "skipped_values"
    sync: str
    email: str
    what: str
    reason: str  # empty | too_long | not_boolean
    value: str

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), ensure_ascii=False)

    def counts(self) -> list[Count]:
        return [(self.sync, f"skipped_values.{self.what}.{self.reason}", 1)]


@dataclasses.dataclass(slots=True)
class DeadLetter(Routed):
    TAG = "dead_letter"
    FILE = "dead_letter"
    stage: str  # read (a whole input file) | parse | members | events
    reason: str  # unreadable_file | malformed_json | unrecognised_record | mailchimp_rejected | retries_exhausted
    error: str
    payload: str
    sync: Optional[str] = None
    records: Optional[int] = None  # the records it stands for, if several

    def to_json(self) -> str:
        return json.dumps(
            {k: v for k, v in dataclasses.asdict(self).items() if v is not None})

    def counts(self) -> list[Count]:
        names = ["dead_letter", f"dead_letter.{self.reason}"]
        if self.stage in _BEFORE_RECORDS:  # an input that never became a Record
            return [(None, n, 1) for n in ["records_in"] + names]
        return [(self.sync, n, self.records or 1)
                for n in names + [f"{self.stage}.dead_letter"]]


@dataclasses.dataclass(slots=True)
class Delivered(Routed):
    sync: str
    kind: Kind
    insert_id: Optional[str] = None
    records: Optional[int] = None  # the records it stands for, if several

    def counts(self) -> list[Count]:
        return [(self.sync, _DONE[self.kind], self.records or 1)]


@dataclasses.dataclass(slots=True)
class WouldSend(Routed):
    """A request a dry run kept instead of sending (its delivery is counted
    by the Delivered it was answered with)."""
    TAG = "dry_run"
    FILE = "dry_run"
    method: str
    path: str
    body: Any

    def to_json(self) -> str:
        return json.dumps({"method": self.method, "path": self.path,
                           "body": self.body}, ensure_ascii=False)

    def counts(self) -> list[Count]:
        return []


def several(what: Any) -> Optional[int]:
    """How many records a request stands for, where it is more than one."""
    records = getattr(what, "records", 1)
    return records if records > 1 else None
