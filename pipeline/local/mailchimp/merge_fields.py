"""Audience merge fields, and the checks a member's value must pass for each
merge field type."""
from __future__ import annotations

import datetime
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from pipeline.local.mailchimp.problems import FieldError, InvalidFields

MERGE_FIELD_TYPES = ("text", "number", "address", "phone", "date", "url",
                     "imageurl", "radio", "dropdown", "birthday", "zip")
INVALID_MERGE_FIELDS = "Your merge fields were invalid."

_NUMERIC = re.compile(r"-?\d+(\.\d+)?")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_BIRTHDAY = re.compile(r"(\d{2})/(\d{2})")
_URL = re.compile(r"https?://\S+")
_ZIP = re.compile(r"\d{5}")
_ADDRESS_REQUIRED = ("addr1", "city", "state", "zip")
_ADDRESS_KEYS = ("addr1", "addr2", "city", "state", "zip", "country")


@dataclass
class MergeField:
    """One merge field of an audience: its tag, its type and the options
    (radio and dropdown choices) its values are checked against."""

    merge_id: int
    tag: str
    name: str
    type: str
    required: bool = False
    options: dict[str, Any] = field(default_factory=dict)

    def normalise(self, value: object) -> object:
        """The stored form of `value`; ValueError saying what is wrong.
        The empty string clears a field whatever its type."""
        if value == "":
            return ""
        return _CHECKS[self.type](self, value)

    def to_json(self, list_id: str) -> dict[str, Any]:
        return {"merge_id": self.merge_id, "tag": self.tag, "name": self.name,
                "type": self.type, "required": self.required,
                "options": dict(self.options), "list_id": list_id}


def default_tag(name: str, merge_id: int) -> str:
    """Mailchimp derives a tag from the name: upper case, at most 10
    characters; letters, digits and "_" only, so that it can sit in a
    *|TAG|* placeholder."""
    return re.sub(r"[^A-Z0-9_]", "", name.upper())[:10] or f"MMERGE{merge_id}"


def normalise_values(fields: Mapping[str, MergeField],
                     values: Mapping[str, object]) -> dict[str, object]:
    """Every value checked against its merge field; InvalidFields naming
    each bad value. A tag the audience lacks is dropped without a word, as
    Mailchimp does (recorded 2019-2021: the request is accepted)."""
    clean: dict[str, object] = {}
    errors: list[FieldError] = []
    for tag, value in values.items():
        merge_field = fields.get(tag)
        if merge_field is None:
            continue
        try:
            clean[tag] = merge_field.normalise(value)
        except ValueError as exc:
            errors.append(FieldError(tag, str(exc)))
    if errors:
        raise InvalidFields(errors, detail=INVALID_MERGE_FIELDS)
    return clean


def check_required(fields: Mapping[str, MergeField], values: Mapping[str, object]) -> None:
    """InvalidFields for each required merge field left empty on a new member."""
    missing = [FieldError(tag, "Please enter a value")
               for tag, merge_field in fields.items()
               if merge_field.required and values.get(tag, "") == ""]
    if missing:
        raise InvalidFields(missing, detail=INVALID_MERGE_FIELDS)


def _text(_: MergeField, value: object) -> str:
    if not isinstance(value, str):
        raise ValueError("Please enter text.")
    if len(value.encode("utf-8")) > 255:
        raise ValueError("Text is limited to 255 bytes.")
    return value


def _number(_: MergeField, value: object) -> int | float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _NUMERIC.fullmatch(value):
        return float(value) if "." in value else int(value)
    raise ValueError("Please enter a number")  # Mailchimp's words


def _address(_: MergeField, value: object) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ValueError("Please enter an address object (addr1, city, state, zip).")
    missing = [key for key in _ADDRESS_REQUIRED
               if not isinstance(value.get(key), str) or not value[key].strip()]
    if missing:
        raise ValueError(f"Please enter a complete address: missing {', '.join(missing)}.")
    if any(not isinstance(value.get(key, ""), str) for key in _ADDRESS_KEYS):
        raise ValueError("Address parts must be strings.")
    return {key: value.get(key, "") for key in _ADDRESS_KEYS}


def _phone(_: MergeField, value: object) -> str:
    if not isinstance(value, str):
        raise ValueError("Please enter a phone number as text.")
    return value


def _date(_: MergeField, value: object) -> str:
    if isinstance(value, str) and _DATE.fullmatch(value):
        try:
            datetime.date.fromisoformat(value)
            return value
        except ValueError:
            pass
    raise ValueError("Please enter a date as YYYY-MM-DD.")


def _birthday(_: MergeField, value: object) -> str:
    match = _BIRTHDAY.fullmatch(value) if isinstance(value, str) else None
    if match:
        try:
            datetime.date(2000, int(match[1]), int(match[2]))  # a leap year: 02/29 is a birthday
            return value
        except ValueError:
            pass
    raise ValueError("Please enter a birthday as MM/DD.")


def _url(_: MergeField, value: object) -> str:
    if isinstance(value, str) and _URL.fullmatch(value):
        return value
    raise ValueError("Please enter a URL starting with http:// or https://.")


def _choice(merge_field: MergeField, value: object) -> str:
    choices = merge_field.options.get("choices") or []
    if value in choices:
        return value
    raise ValueError(f"Please choose one of: {', '.join(choices)}.")


def _zip(_: MergeField, value: object) -> str:
    if isinstance(value, str) and _ZIP.fullmatch(value):
        return value
    raise ValueError("Please enter a 5-digit zip code.")


_CHECKS: dict[str, Callable[[MergeField, object], Any]] = {
    "text": _text, "number": _number, "address": _address, "phone": _phone,
    "date": _date, "birthday": _birthday, "url": _url, "imageurl": _url,
    "radio": _choice, "dropdown": _choice, "zip": _zip,
}
