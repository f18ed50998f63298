"""An audience's merge fields: the catalog (fetched, cached) and the
conversion of user property values to each field's type.

A value that cannot be converted is left out and reported with its reason;
the rest of the member still goes. A tag the audience does not have is never
sent. Empty string clears a field, whatever its type.
"""
from __future__ import annotations

import datetime
import json
import logging
import math
import re
import threading
import time
from typing import Any, Callable

from transforms.mailchimp.client import MailchimpClient
from transforms.mailchimp.errors import DeliveryFailed, MailchimpError

_TEXT_MAX_BYTES = 255
_DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%m/%d/%Y", "%d/%m/%Y",
                 "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S")
_BIRTHDAY = re.compile(r"^(\d{1,2})/(\d{1,2})$")
# Mailchimp's zip field takes five digits, not ZIP+4.
_ZIP = re.compile(r"^\d{5}$", re.ASCII)
_URL = re.compile(r"^(https?)(://\S+)$", re.IGNORECASE)
_ADDRESS_REQUIRED = ("addr1", "city", "state", "zip")
_ADDRESS_OPTIONAL = ("addr2", "country")
_LOGGER = logging.getLogger(__name__)


class Unconvertible(ValueError):
    """A value that does not fit its merge field's type; says why."""


def _text(value: Any) -> str:
    if isinstance(value, (dict, list)):
        raise Unconvertible("an object or list is not text")
    text = value if isinstance(value, str) else json.dumps(value)
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:  # a lone surrogate ("\ud800" in the JSON)
        raise Unconvertible("not valid Unicode text") from None
    if size > _TEXT_MAX_BYTES:
        raise Unconvertible(f"longer than {_TEXT_MAX_BYTES} bytes")
    return text


def _number(value: Any) -> int | float:
    if isinstance(value, bool) or isinstance(value, (dict, list)):
        raise Unconvertible("not a number")
    if isinstance(value, int):
        return value
    try:
        number = value if isinstance(value, float) else float(str(value).strip())
    except ValueError:
        raise Unconvertible("not a number") from None
    if not math.isfinite(number):  # NaN and Infinity are not JSON
        raise Unconvertible("not a finite number")
    return int(number) if number.is_integer() else number


def _date(value: Any) -> datetime.date:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        # Epoch milliseconds, as Amplitude sends times.
        try:
            return datetime.datetime.fromtimestamp(
                value / 1000, tz=datetime.timezone.utc).date()
        except (OverflowError, OSError, ValueError):
            raise Unconvertible("not a date") from None
    if isinstance(value, str):
        text = value.strip()
        try:
            return datetime.datetime.fromisoformat(text).date()
        except ValueError:
            pass
        for fmt in _DATE_FORMATS:
            try:
                return datetime.datetime.strptime(text, fmt).date()
            except ValueError:
                continue
    raise Unconvertible("not a date (use YYYY-MM-DD)")


def _birthday(value: Any) -> str:
    match = _BIRTHDAY.match(value.strip()) if isinstance(value, str) else None
    if match:
        month, day = int(match[1]), int(match[2])
        try:
            datetime.date(2000, month, day)  # a leap year: 02/29 is a birthday
        except ValueError:
            raise Unconvertible("not a month/day") from None
        return f"{month:02d}/{day:02d}"
    return _date(value).strftime("%m/%d")


def _address(value: Any) -> dict:
    if not isinstance(value, dict):
        raise Unconvertible("an address must be an object with addr1, city, "
                            "state and zip")
    for key in _ADDRESS_REQUIRED + _ADDRESS_OPTIONAL:
        if isinstance(value.get(key), (dict, list)):
            raise Unconvertible(f"address {key} is not text")
    missing = [k for k in _ADDRESS_REQUIRED
               if value.get(k) is None or not str(value[k]).strip()]
    if missing:
        raise Unconvertible(f"address lacks {', '.join(missing)}")
    return {k: str(value[k]) for k in _ADDRESS_REQUIRED + _ADDRESS_OPTIONAL
            if value.get(k) is not None}


def _url(value: Any) -> str:
    match = _URL.match(value.strip()) if isinstance(value, str) else None
    if not match:
        raise Unconvertible("not an http(s) URL")
    return match[1].lower() + match[2]  # Mailchimp wants http:// or https://


def _zip(value: Any) -> str:
    text = f"{value:05d}" if isinstance(value, int) and not isinstance(
        value, bool) else str(value).strip()
    if not _ZIP.match(text):
        raise Unconvertible("not a US ZIP code (five digits)")
    return text


def _choice(value: Any, field: dict) -> str:
    choices = (field.get("options") or {}).get("choices") or []
    text = _text(value)
    if text not in choices:
        raise Unconvertible(f"not one of the field's choices {choices}")
    return text


_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "text": _text,
    "phone": _text,
    "number": _number,
    "date": lambda v: _date(v).isoformat(),
    "birthday": _birthday,
    "address": _address,
    "url": _url,
    "imageurl": _url,
    "zip": _zip,
}


def convert(value: Any, field: dict) -> Any:
    """The value as the field's type wants it, or raise Unconvertible."""
    if value is None or value == "":
        return ""
    kind = field.get("type", "text")
    if kind in ("radio", "dropdown"):
        return _choice(value, field)
    return _CONVERTERS.get(kind, _text)(value)


def prepare(values: dict[str, Any], catalog: dict[str, dict]) -> tuple[
        dict[str, Any], list[str], dict[str, str]]:
    """(sendable merge fields, unknown tags, {tag: why not convertible})."""
    sendable, unknown, invalid = {}, [], {}
    for tag, value in values.items():
        field = catalog.get(tag)
        if field is None:
            unknown.append(tag)
            continue
        try:
            sendable[tag] = convert(value, field)
        except Unconvertible as e:
            invalid[tag] = str(e)
    return sendable, unknown, invalid


class MergeFieldCatalog:
    """Each audience's merge fields by tag, fetched once and refreshed after
    `refresh_s`, so fields added in Mailchimp are picked up by a long job.

    A failed refresh keeps the cached catalog (with a warning) and tries
    again at the next call: merge fields change rarely, and refusing a whole
    batch for a stale list would turn a blip into dead letters. One lock per
    audience, so a slow fetch for one audience holds up no other.
    """

    def __init__(self, client: MailchimpClient, refresh_s: float = 300.0,
                 clock: Callable[[], float] = time.monotonic):
        self._client, self._refresh_s, self._clock = client, refresh_s, clock
        self._locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()
        self._cache: dict[str, tuple[float, dict[str, dict]]] = {}

    def _lock(self, list_id: str) -> threading.Lock:
        with self._locks_lock:
            return self._locks.setdefault(list_id, threading.Lock())

    def fields(self, list_id: str) -> dict[str, dict]:
        with self._lock(list_id):
            fetched = self._cache.get(list_id)
            if fetched is not None and self._clock() - fetched[0] < self._refresh_s:
                return fetched[1]
            try:
                catalog = {f["tag"]: f for f in self._client.merge_fields(list_id)}
            except (MailchimpError, DeliveryFailed) as e:
                if fetched is None:
                    raise
                _LOGGER.warning("merge fields of %s: refresh failed (%s); "
                                "using the cached list", list_id, e)
                return fetched[1]
            self._cache[list_id] = (self._clock(), catalog)
            return catalog
