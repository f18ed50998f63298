"""ParseRecords: raw text (a line or a Pub/Sub message) -> Record | DeadLetter.

Accepted shapes (Amplitude): an HTTP API v2 event, an HTTP API body
`{"api_key", "events": [...]}`, an Identify API payload
`{"identification": [...]}` (a list or a JSON string of one), a bare identify
object (`user_id` and/or `device_id` with `user_properties`, no `event_type`)
and an Export API row (`$insert_id`, `event_time`). Anything else is dead-lettered with the
original text and a reason that says what is wrong.
"""
from __future__ import annotations

import datetime
import json
import re
from typing import Any, Iterator, NamedTuple, Optional

import apache_beam as beam
from apache_beam.io.gcp.pubsub import PubsubMessage
from pydantic import (AliasChoices, BaseModel, ConfigDict, Field, StrictInt,
                      StrictStr, ValidationError)

from transforms.records import DeadLetter, Record
from transforms.routing import tagged

STAGE = "parse"
IDENTIFY = "$identify"
_SECRET_FIELD = re.compile(r'("api_key"\s*:\s*")(?:[^"\\]|\\.)*(")')
_EXPORT_TIME_FORMATS = ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S")
# Far beyond any real event; a value nested deeper would exhaust Python's
# recursion limit later (pickled between stages, stringified), crashing the
# job instead of dead-lettering one record.
MAX_DEPTH = 100
_TOO_DEEP = f"nested too deeply (more than {MAX_DEPTH} levels)"


class _AmplitudeEvent(BaseModel):
    """An HTTP API v2 event or an Export API row; unknown fields are kept."""
    model_config = ConfigDict(extra="allow")

    event_type: StrictStr = Field(min_length=1)
    user_id: Optional[StrictStr] = None
    device_id: Optional[StrictStr] = None
    time: Optional[StrictInt] = None
    event_time: Optional[StrictStr] = None
    insert_id: Optional[StrictStr] = Field(
        None, validation_alias=AliasChoices("insert_id", "$insert_id"))
    event_properties: Optional[dict[str, Any]] = None
    user_properties: Optional[dict[str, Any]] = None


class _Identification(BaseModel):
    model_config = ConfigDict(extra="allow")

    user_id: Optional[StrictStr] = None
    device_id: Optional[StrictStr] = None
    user_properties: Optional[dict[str, Any]] = None


class RawRecord(NamedTuple):
    """The text of one input line and where it was read (`Record.origin`)."""
    origin: str
    data: bytes


class UnrecognisedRecord(ValueError):
    """A JSON value that is none of the accepted Amplitude shapes."""


def redact(text: str) -> str:
    """Hide an Amplitude api_key so a dead letter never carries it."""
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
        value = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as e:
        error = (_TOO_DEEP if isinstance(e, RecursionError)
                 else f"invalid JSON: {e}")
        yield DeadLetter(STAGE, "malformed_json", error, redact(text))
        return
    if _may_be_too_deep(text) and _too_deep(value):
        yield DeadLetter(STAGE, "malformed_json", _TOO_DEEP, redact(text))
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
                identification = json.loads(identification)
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
        ident = _Identification.model_validate(item)
        event_type, time_ms, insert_id = IDENTIFY, None, None
        event_properties: dict[str, Any] = {}
        fields = ident.model_extra or {}
        base = ident
    else:
        event = _AmplitudeEvent.model_validate(item)
        event_type, insert_id = event.event_type, event.insert_id
        time_ms = event.time if event.time is not None else _export_time(
            event.event_time)
        event_properties = event.event_properties or {}
        fields = event.model_extra or {}
        is_identify = event_type == IDENTIFY
        base = event
    user_properties, unset = _user_properties(base.user_properties or {})
    return Record(
        event_type=event_type,
        user_id=_blank_to_none(base.user_id),
        device_id=_blank_to_none(base.device_id),
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
