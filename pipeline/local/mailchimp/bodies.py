"""Request body checks mirroring the request schemas of Mailchimp's OpenAPI
document (../shared/mailchimp/marketing-subset.openapi.json).

What the document rejects the emulator rejects (types, enums, required
fields, PUT's "status or status_if_new, not both"), so that a body the
emulator accepts is one the real service documents. Limits the document
states only in prose (event names, 500 members a batch) are checked too, and so is the length of
tag names, which the document does not state (see tags.py).
"""
from __future__ import annotations

import datetime
import re
from typing import Callable, Mapping

from pipeline.local.mailchimp.merge_fields import MERGE_FIELD_TYPES
from pipeline.local.mailchimp.problems import FieldError, InvalidFields
from pipeline.local.mailchimp.tags import tag_name_problem

# A check takes the field's path and value and returns what is wrong with it.
Check = Callable[[str, object], list[FieldError]]

MEMBER_STATUSES = ("subscribed", "unsubscribed", "cleaned", "pending", "transactional")
MAX_BATCH_MEMBERS = 500

_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")
# The other timestamp forms the document's PUT/PATCH members schemas allow.
_MEMBER_TIMESTAMP_FORMS = (
    re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}(:\d{2})?"),
    re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{3})?[+-]\d{4}"),
    re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} [A-Z][A-Z0-9+\-]{1,4}"),
)
_EVENT_NAME = re.compile(r"[A-Za-z0-9_-]+")


def validate(check: Check, body: object) -> None:
    """InvalidFields listing everything wrong with `body`."""
    errors = check("", body)
    if errors:
        raise InvalidFields(errors)


# The Python types json.loads makes of each JSON type.
_PYTHON_TYPES = {"null": type(None), "boolean": bool, "integer": int, "number": float,
                 "string": str, "array": list, "object": dict}


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):  # before int: bool is an int in Python, not in JSON
        return "boolean"
    if isinstance(value, int):
        return "integer"
    return {float: "number", str: "string", list: "array", dict: "object"}[type(value)]


def of_type(*types: str) -> Check:
    accepted = set(types) | ({"integer"} if "number" in types else set())
    # Checks run for every property of 500 members a batch: a decoded
    # value's exact type settles most of them without naming its JSON type.
    exact = frozenset(_PYTHON_TYPES[name] for name in accepted)

    def check(path: str, value: object) -> list[FieldError]:
        if type(value) in exact:
            return []
        found = _json_type(value)
        if found in accepted:
            return []
        return [FieldError(path, f"Schema describes {' or '.join(types)}, {found} found instead")]
    return check


def nullable(check: Check) -> Check:
    return lambda path, value: [] if value is None else check(path, value)


def every(*checks: Check) -> Check:
    """All checks in order, stopping at the first that fails (a value of the
    wrong type is reported once)."""
    def check(path: str, value: object) -> list[FieldError]:
        for one in checks:
            errors = one(path, value)
            if errors:
                return errors
        return []
    return check


def one_of_values(values: tuple[str, ...]) -> Check:
    def check(path: str, value: object) -> list[FieldError]:
        if value in values:
            return []
        return [FieldError(path, f"Value must be one of: {', '.join(values)}")]
    return every(of_type("string"), check)


def array_of(item: Check) -> Check:
    def check(path: str, value: object) -> list[FieldError]:
        assert isinstance(value, list)
        return [error for index, element in enumerate(value)
                for error in item(f"{path}[{index}]", element)]
    return every(of_type("array"), check)


def obj(properties: Mapping[str, Check] | None = None, *,
        required: tuple[str, ...] = (), values: Check | None = None) -> Check:
    """An object: its known properties, its required ones, and for maps a
    check every value must pass."""
    known = properties or {}

    def check(path: str, value: object) -> list[FieldError]:
        assert isinstance(value, dict)
        errors = [FieldError(_join(path, name), "This value is required")
                  for name in required if name not in value]
        for name, element in value.items():
            element_check = known.get(name, values)
            if element_check is not None:
                errors.extend(element_check(_join(path, name), element))
        return errors
    return every(of_type("object"), check)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _date_time(path: str, value: object) -> list[FieldError]:
    if isinstance(value, str) and _RFC3339.fullmatch(value):
        try:
            datetime.datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
            return []
        except ValueError:
            pass
    return [FieldError(path, "Please provide an ISO 8601 date-time with a time zone.")]


def _member_timestamp(path: str, value: object) -> list[FieldError]:
    if isinstance(value, str) and any(form.fullmatch(value) for form in _MEMBER_TIMESTAMP_FORMS):
        return []
    return _date_time(path, value)


def _status_given(exactly_one: bool) -> Check:
    """PUT's schema is oneOf [email+status_if_new, email+status]: one of the
    two, not both; a batch member's is anyOf: at least one."""
    def check(path: str, value: object) -> list[FieldError]:
        assert isinstance(value, dict)
        given = [name for name in ("status", "status_if_new") if name in value]
        if not given:
            return [FieldError(_join(path, "status_if_new"),
                               "Either status or status_if_new is required")]
        if exactly_one and len(given) > 1:
            return [FieldError(_join(path, "status"),
                               "Send either status or status_if_new, not both")]
        return []
    return check


def _event_name(path: str, value: object) -> list[FieldError]:
    assert isinstance(value, str)
    if not 2 <= len(value) <= 30:
        return [FieldError(path, "Event name must be 2-30 characters in length")]
    if not _EVENT_NAME.fullmatch(value):
        return [FieldError(path, "Event name may use only letters, numbers, '_' and '-'")]
    return []


def _tag_name(path: str, value: object) -> list[FieldError]:
    assert isinstance(value, str)
    problem = tag_name_problem(value)
    return [FieldError(path, problem)] if problem else []


def _at_most_members(path: str, value: object) -> list[FieldError]:
    assert isinstance(value, list)
    if len(value) > MAX_BATCH_MEMBERS:
        return [FieldError(path, f"Up to {MAX_BATCH_MEMBERS} members may be added "
                                 "or updated with each API call")]
    return []


_STRING = of_type("string")
_BOOLEAN = of_type("boolean")
_NUMBER = of_type("number")
# Values are checked against the audience's merge field types (see merge_fields).
_MERGE_FIELDS = nullable(of_type("object"))

MEMBER_PERMISSIONS: Check = array_of(
    obj({"marketing_permission_id": _STRING, "enabled": _BOOLEAN}))

_MEMBER_COMMON: dict[str, Check] = {
    "email_address": _STRING,
    "email_type": _STRING,
    "interests": obj(values=_BOOLEAN),
    "ip_opt": _STRING,
    "ip_signup": _STRING,
    "language": _STRING,
    "location": obj({"latitude": _NUMBER, "longitude": _NUMBER}),
    "marketing_permissions": MEMBER_PERMISSIONS,
    "merge_fields": _MERGE_FIELDS,
    "timestamp_opt": _member_timestamp,
    "timestamp_signup": _member_timestamp,
    "vip": _BOOLEAN,
}

# A member's tags as batch subscribe and add member take them: names.
TAG_NAMES: Check = array_of(every(_STRING, _tag_name))

ADD_MEMBER: Check = obj({**_MEMBER_COMMON,
                         "status": one_of_values(MEMBER_STATUSES),
                         "tags": TAG_NAMES},
                        required=("email_address", "status"))

PUT_MEMBER: Check = every(
    obj({**_MEMBER_COMMON,
         "status": one_of_values(MEMBER_STATUSES),
         "status_if_new": one_of_values(MEMBER_STATUSES)},
        required=("email_address",)),
    _status_given(exactly_one=True))

PATCH_MEMBER: Check = obj({
    **_MEMBER_COMMON,
    "status": one_of_values(tuple(s for s in MEMBER_STATUSES if s != "transactional")),
})

# Every property of a batch member may be null, except the statuses: their
# enum does not list null.
_BATCH_MEMBER: Check = every(
    obj({
        "email_address": nullable(_STRING),
        "email_type": nullable(_STRING),
        "interests": nullable(obj(values=nullable(_BOOLEAN))),
        "ip_opt": nullable(_STRING),
        "ip_signup": nullable(_STRING),
        "language": nullable(_STRING),
        "location": nullable(obj({"latitude": nullable(_NUMBER),
                                  "longitude": nullable(_NUMBER)})),
        "merge_fields": _MERGE_FIELDS,
        "tags": nullable(array_of(_STRING)),
        "status": one_of_values(MEMBER_STATUSES),
        "status_if_new": one_of_values(MEMBER_STATUSES),
        "timestamp_opt": nullable(every(_STRING, _date_time)),
        "timestamp_signup": nullable(every(_STRING, _date_time)),
        "vip": nullable(_BOOLEAN),
    }),
    _status_given(exactly_one=False))

BATCH_SUBSCRIBE: Check = obj({
    "members": every(of_type("array"), _at_most_members, array_of(_BATCH_MEMBER)),
    "sync_tags": nullable(_BOOLEAN),
    "update_existing": nullable(_BOOLEAN),
}, required=("members",))

MEMBER_TAGS: Check = obj({
    "tags": array_of(obj({"name": every(_STRING, _tag_name),
                          "status": one_of_values(("inactive", "active"))},
                         required=("name", "status"))),
    "is_syncing": _BOOLEAN,
}, required=("tags",))

MEMBER_EVENT: Check = obj({
    "name": every(_STRING, _event_name),
    "properties": obj(values=_STRING),
    "is_syncing": _BOOLEAN,
    "occurred_at": _date_time,
}, required=("name",))

MERGE_FIELD: Check = obj({
    "name": _STRING,
    "type": one_of_values(MERGE_FIELD_TYPES),
    "tag": _STRING,
    "default_value": _STRING,
    "help_text": _STRING,
    "required": _BOOLEAN,
    "public": _BOOLEAN,
    "display_order": of_type("integer"),
    "options": obj({
        "choices": array_of(_STRING),
        "date_format": _STRING,
        "default_country": of_type("integer"),
        "phone_format": _STRING,
        "size": of_type("integer"),
    }),
}, required=("name", "type"))
