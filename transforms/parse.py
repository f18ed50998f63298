"""ParseRecords: raw text (a line or a Pub/Sub message) -> Record | DeadLetter.

Accepted shapes (Amplitude): an HTTP API v2 event, an HTTP API body
`{"api_key", "events": [...]}`, an Identify API payload
`{"identification": [...]}` (a list or a JSON string of one), a bare identify
object (`user_id` and/or `device_id` with `user_properties`, no `event_type`)
an Export API row (`$insert_id`, `event_time`) and an Amplitude cohort
message (`cohort_name`, `in_cohort`, `users`, ...). Anything else is
dead-lettered with the original text and a reason that says what is wrong.
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import re
from typing import Any, Iterator, NamedTuple, Optional

import apache_beam as beam
from apache_beam.io.gcp.pubsub import PubsubMessage
from pydantic import (AliasChoices, Field, StrictBool, StrictInt, StrictStr,
                      TypeAdapter, ValidationError)
from pydantic_core import from_json
from typing_extensions import Annotated, Required, TypedDict

from transforms.records import Cohort, DeadLetter, Record
from transforms.routing import tagged

STAGE = "parse"
IDENTIFY = "$identify"
COHORT = "$cohort"
_SECRET_FIELD = re.compile(r'("api_key"\s*:\s*")(?:[^"\\]|\\.)*(")')
_EXPORT_TIME_FORMATS = ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S")
# Far beyond any real event; a value nested deeper would exhaust Python's
# recursion limit later (pickled between stages, stringified), crashing the
# job instead of dead-lettering one record.
MAX_DEPTH = 100
_TOO_DEEP = f"nested too deeply (more than {MAX_DEPTH} levels)"


# TypedDicts, not models: pydantic validates them without building an
# object per record (a model costs about twice as much).
class _AmplitudeEvent(TypedDict, total=False):
    """An HTTP API v2 event or an Export API row: the fields read here."""
    event_type: Required[Annotated[StrictStr, Field(min_length=1)]]
    user_id: Optional[StrictStr]
    device_id: Optional[StrictStr]
    time: Optional[StrictInt]
    event_time: Optional[StrictStr]
    insert_id: Annotated[Optional[StrictStr], Field(
        validation_alias=AliasChoices("insert_id", "$insert_id"))]
    event_properties: Optional[dict[str, Any]]
    user_properties: Optional[dict[str, Any]]


class _Identification(TypedDict, total=False):
    user_id: Optional[StrictStr]
    device_id: Optional[StrictStr]
    user_properties: Optional[dict[str, Any]]


class _CohortUser(TypedDict, total=False):
    user_id: Optional[StrictStr]
    user_properties: Optional[dict[str, Any]]


class _CohortMessage(TypedDict, total=False):
    """Amplitude's Pub/Sub cohort sync: one state for a batch of users."""
    cohort_name: Required[Annotated[StrictStr, Field(min_length=1)]]
    cohort_id: Required[StrictStr | StrictInt]
    in_cohort: Required[StrictBool]
    computed_time: Optional[StrictStr | StrictInt]  # epoch seconds
    message_id: Required[Annotated[StrictStr, Field(min_length=1)]]
    users: Required[list[_CohortUser]]


_EVENT = TypeAdapter(_AmplitudeEvent)
_COHORT = TypeAdapter(_CohortMessage)
_IDENTIFICATION = TypeAdapter(_Identification)
# For the common records, each field's key and the exact types with which
# pydantic accepts its value as it is (JSON object keys are always strings).
_STR, _NONE = (str,), type(None)
_OPTIONAL_STR, _OPTIONAL_DICT = (str, _NONE), (dict, _NONE)
_PLAIN_EVENT = (("event_type", "event_type", _STR),
                ("user_id", "user_id", _OPTIONAL_STR),
                ("device_id", "device_id", _OPTIONAL_STR),
                ("time", "time", (int, _NONE)),
                ("event_time", "event_time", _OPTIONAL_STR),
                ("insert_id", "insert_id", _OPTIONAL_STR),
                ("event_properties", "event_properties", _OPTIONAL_DICT),
                ("user_properties", "user_properties", _OPTIONAL_DICT))
_PLAIN_EXPORT_ROW = tuple(("insert_id", "$insert_id", types) if name == "insert_id"
                          else (name, key, types) for name, key, types in _PLAIN_EVENT)
_PLAIN_IDENTIFICATION = tuple(field for field in _PLAIN_EVENT
                              if field[0] in _Identification.__annotations__)
# The keys read as fields (the others are Record.fields). Of the two names
# of insert_id only the one read: with both, `$insert_id` is another field.
_EVENT_FIELDS = frozenset(_AmplitudeEvent.__annotations__)
_EXPORT_ROW_FIELDS = _EVENT_FIELDS | {"$insert_id"}
_IDENTIFICATION_FIELDS = frozenset(_Identification.__annotations__)


class RawRecord(NamedTuple):
    """The text of one input line and where it was read (`Record.origin`)."""
    origin: str
    data: bytes


class UnrecognisedRecord(ValueError):
    """A JSON value that is none of the accepted Amplitude shapes."""


def redact(text: str) -> str:
    """Hide an Amplitude api_key so a dead letter never carries it."""
    if "api_key" not in text:  # most texts: a search, not a regex pass
        return text
    return _SECRET_FIELD.sub(r"\1[redacted]\2", text)


def parse_payload(raw: str | bytes, attributes: Optional[dict] = None,
                  origin: Optional[str] = None) -> Iterator[Record | DeadLetter]:
    """Every record the payload holds, each a Record or a DeadLetter.
    `attributes` (of a Pub/Sub message) are kept on each Record; so is
    `origin`, with `#n` for the n-th of a payload holding several."""
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            yield DeadLetter(STAGE, "malformed_json", f"invalid UTF-8: {e}",
                             raw.decode("utf-8", "backslashreplace"))
            return
    else:
        text = raw
    text = text.removeprefix("\ufeff")  # a byte-order mark opening a file
    if not text.strip():
        yield DeadLetter(STAGE, "malformed_json", "empty record", text)
        return
    try:
        value = _loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as e:
        error = (_TOO_DEEP if isinstance(e, RecursionError)
                 else f"invalid JSON: {e}")
        yield DeadLetter(STAGE, "malformed_json", error, redact(text))
        return
    if _may_be_too_deep(text) and _too_deep(value):
        yield DeadLetter(STAGE, "malformed_json", _TOO_DEEP, redact(text))
        return
    if isinstance(value, dict) and "in_cohort" in value:
        try:
            yield _cohort_record(value, redact(text), attributes or {}, origin)
        except (UnrecognisedRecord, ValidationError) as e:
            yield DeadLetter(STAGE, "unrecognised_record", _describe(e), redact(text))
        return
    try:
        items = list(_items(value))
    except UnrecognisedRecord as e:
        yield DeadLetter(STAGE, "unrecognised_record", str(e), redact(text))
        return
    single = len(items) == 1 and items[0][0] is value
    for n, (item, is_identify) in enumerate(items):
        payload = redact(text) if single else redact(json.dumps(item))
        where = origin if origin is None or len(items) == 1 else f"{origin}#{n}"
        try:
            yield _to_record(item, is_identify, payload, attributes or {}, where)
        except (UnrecognisedRecord, ValidationError, RecursionError) as e:
            yield DeadLetter(STAGE, "unrecognised_record", _describe(e), payload)


def _loads(text: str, **stdlib_options) -> Any:
    """json.loads, three times faster where it matters: pydantic's parser
    (Rust) reads what it can, and gives the same values as json.loads
    (integers of any size included). What it refuses, json.loads decides:
    its error message (the one dead letters carry), or its value (lone
    surrogates, which json.loads accepts)."""
    try:
        return from_json(text, allow_inf_nan=False)
    except (ValueError, TypeError):  # TypeError: text not encodable as UTF-8
        return json.loads(text, **stdlib_options)


def _reject_constant(name: str) -> None:
    """NaN and Infinity: Python reads them, JSON (and Mailchimp) does not."""
    raise ValueError(f"{name} is not a JSON value")


def _json_type(value: Any) -> str:
    """The JSON name of a parsed value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return {str: "a string", list: "an array", dict: "an object"}.get(
        type(value), "a number")


def _may_be_too_deep(text: str) -> bool:
    """A cheap bound: fewer brackets than MAX_DEPTH cannot nest deeper."""
    return text.count("{") + text.count("[") > MAX_DEPTH


def _too_deep(value: Any) -> bool:
    """Whether lists and objects nest more than MAX_DEPTH levels (iterative:
    the check itself must not recurse)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > MAX_DEPTH:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return False


def _items(value: Any) -> Iterator[tuple[Any, bool]]:
    """(item, is_identify) for each record a JSON value holds."""
    if not isinstance(value, dict):
        raise UnrecognisedRecord(
            f"expected a JSON object, got {_json_type(value)}")
    if "events" in value:
        events = value["events"]
        if not isinstance(events, list):
            raise UnrecognisedRecord("'events' must be a list of events")
        if not events:
            raise UnrecognisedRecord("'events' is an empty list")
        for event in events:
            yield event, False
    elif "identification" in value:
        identification = value["identification"]
        if isinstance(identification, str):
            try:
                identification = _loads(identification)
            except RecursionError:
                raise UnrecognisedRecord(f"'identification' is {_TOO_DEEP}") from None
            except ValueError as e:
                raise UnrecognisedRecord(
                    f"'identification' is not valid JSON: {e}") from e
            if _may_be_too_deep(value["identification"]) and _too_deep(
                    identification):
                raise UnrecognisedRecord(f"'identification' is {_TOO_DEEP}")
        if isinstance(identification, dict):
            identification = [identification]
        if not isinstance(identification, list):
            raise UnrecognisedRecord("'identification' must be a list")
        if not identification:
            raise UnrecognisedRecord("'identification' is an empty list")
        for identify in identification:
            yield identify, True
    elif "event_type" in value:
        yield value, False
    elif "user_properties" in value and ("user_id" in value or "device_id" in value):
        yield value, True  # one identification, sent without its wrapper
    else:
        raise UnrecognisedRecord(
            "not an Amplitude record: no 'event_type', 'events', "
            "'identification' or identified 'user_properties'")


def _to_record(item: Any, is_identify: bool, payload: str,
               attributes: dict, origin: Optional[str]) -> Record:
    if not isinstance(item, dict):
        raise UnrecognisedRecord(
            f"expected a JSON object, got {_json_type(item)}")
    if is_identify:
        base = _identification_fields(item)
        event_type, time_ms, insert_id = IDENTIFY, None, None
        event_properties: dict[str, Any] = {}
        fields = _others(item, _IDENTIFICATION_FIELDS)
    else:
        base = _event_fields(item)
        event_type, insert_id = base["event_type"], base.get("insert_id")
        time_ms = base.get("time")
        if time_ms is None:
            time_ms = _export_time(base.get("event_time"))
        event_properties = base.get("event_properties") or {}
        fields = _others(item, _EVENT_FIELDS if "insert_id" in item
                         else _EXPORT_ROW_FIELDS)
        is_identify = event_type == IDENTIFY
    user_properties, unset = _user_properties(base.get("user_properties") or {})
    return Record(
        event_type=event_type,
        user_id=_blank_to_none(base.get("user_id")),
        device_id=_blank_to_none(base.get("device_id")),
        time_ms=time_ms,
        insert_id=insert_id,
        event_properties=event_properties,
        user_properties=user_properties,
        fields=fields,
        payload=payload,
        is_identify=is_identify,
        unset=unset,
        attributes=attributes,
        origin=origin)


def _event_fields(item: dict) -> dict:
    """_EVENT.validate_python(item), cheaper for most items."""
    plain = _PLAIN_EVENT if "insert_id" in item else _PLAIN_EXPORT_ROW
    return _validated(_EVENT, plain, item, required="event_type")


def _identification_fields(item: dict) -> dict:
    """_IDENTIFICATION.validate_python(item), cheaper for most items."""
    return _validated(_IDENTIFICATION, _PLAIN_IDENTIFICATION, item)


def _validated(adapter: TypeAdapter, plain: tuple, item: dict,
               required: Optional[str] = None) -> dict:
    """adapter.validate_python(item), several times cheaper for the common
    records: where each field read has a type pydantic accepts unchanged
    (`plain`: name, key, types) and the `required` one is a non-empty
    string, type checks give the same fields. Anything else (a value
    pydantic would coerce or refuse, a missing field) is pydantic's to
    decide, so values and error messages stay its own."""
    if required is not None and not _non_empty(item.get(required)):
        return adapter.validate_python(item)
    base = {}
    for name, key, types in plain:
        if key in item:
            value = item[key]
            if type(value) not in types:
                return adapter.validate_python(item)
            base[name] = value
    return base


def _non_empty(value: Any) -> bool:
    """What pydantic's min_length=1 accepts: a string of a character or
    more, none a lone surrogate (json.loads reads `"\\ud800"`; a string
    field with a length limit refuses it)."""
    if type(value) is not str or not value:
        return False
    if value.isascii():  # most strings: no copy made
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _cohort_record(value: dict, payload: str, attributes: dict,
                   origin: Optional[str]) -> Record:
    """One record for the message (its `message_id` the duplicate key),
    holding a record per user. A user's payload is the message with that
    user alone: what a replay of its dead letter must send."""
    message = _COHORT.validate_python(value)
    computed = message.get("computed_time")
    try:
        time_ms = int(computed) * 1000 if computed is not None else None
    except ValueError:
        raise UnrecognisedRecord(
            f"computed_time: {computed!r} is not epoch seconds") from None
    state = Cohort(message["cohort_name"], str(message["cohort_id"]),
                   message["in_cohort"], ())
    if not message["users"]:
        raise UnrecognisedRecord("users: an empty list")
    envelope = {k: v for k, v in value.items() if k != "users"}
    users = tuple(Record(
        event_type=COHORT, user_id=_blank_to_none(user.get("user_id")),
        device_id=None, time_ms=time_ms, insert_id=message["message_id"],
        event_properties={}, user_properties=user.get("user_properties") or {},
        fields={}, payload=redact(json.dumps({**envelope, "users": [raw]})),
        attributes=attributes, cohort=state,
        origin=None if origin is None else f"{origin}#{n}")
        for n, (user, raw) in enumerate(zip(message["users"], value["users"])))
    return Record(
        event_type=COHORT, user_id=None, device_id=None, time_ms=time_ms,
        insert_id=message["message_id"], event_properties={}, user_properties={},
        fields={}, payload=payload, attributes=attributes, origin=origin,
        cohort=dataclasses.replace(state, users=users))


def _others(item: dict, known: frozenset) -> dict[str, Any]:
    """The top-level fields that are not `known`: platform, country..."""
    return {k: v for k, v in item.items() if k not in known}


def _user_properties(props: dict[str, Any]) -> tuple[dict[str, Any], tuple]:
    """Plain properties, or identify operations: `$set` and `$setOnce` values
    become properties (`$set` wins), `$unset` names are cleared. Other
    operations ($add, $append...) need the member's current value, which the
    pipeline does not have, so they are not forwarded."""
    if not any(k.startswith("$") for k in props):
        return props, ()
    values = {k: v for k, v in props.items() if not k.startswith("$")}
    for op in ("$setOnce", "$set"):
        operand = props.get(op)
        if operand is not None and not isinstance(operand, dict):
            raise UnrecognisedRecord(f"user_properties.{op} must be an object")
        values.update(operand or {})
    unset = props.get("$unset")
    if unset is not None and not isinstance(unset, (dict, list)):
        raise UnrecognisedRecord("user_properties.$unset must be an object or list")
    if not all(isinstance(name, str) for name in unset or ()):
        raise UnrecognisedRecord("user_properties.$unset must list property names")
    return values, tuple(unset or ())


def _export_time(event_time: Optional[str]) -> Optional[int]:
    if event_time is None:
        return None
    for fmt in _EXPORT_TIME_FORMATS:
        try:
            parsed = datetime.datetime.strptime(event_time, fmt)
        except ValueError:
            continue
        return int(parsed.replace(tzinfo=datetime.timezone.utc).timestamp() * 1000)
    raise UnrecognisedRecord(
        f"event_time {event_time!r} is not 'YYYY-MM-DD HH:MM:SS[.ffffff]'")


def _blank_to_none(value: Optional[str]) -> Optional[str]:
    if value is None:
        return None
    return value.strip() or None


def _describe(error: Exception) -> str:
    if isinstance(error, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'record'}: {e['msg']}"
            for e in error.errors(include_url=False, include_input=False))
    if isinstance(error, RecursionError):
        return _TOO_DEEP
    return str(error)


class _ParseFn(beam.DoFn):

    def process(self, raw):
        if isinstance(raw, RawRecord):
            results = parse_payload(raw.data, origin=raw.origin)
        elif isinstance(raw, PubsubMessage):
            # A message redelivered or replayed keeps its id (None when the
            # source gives none: then any repeated insert_id is a duplicate).
            results = parse_payload(raw.data, raw.attributes, raw.message_id)
        else:
            results = parse_payload(raw)
        yield from map(tagged, results)


class ParseRecords(beam.PTransform):
    """Text, bytes, RawRecords or PubsubMessages -> Records (main) and
    DeadLetters (`dead_letter`)."""

    def expand(self, raw):
        return raw | beam.ParDo(_ParseFn()).with_outputs(
            DeadLetter.TAG, main="records")
