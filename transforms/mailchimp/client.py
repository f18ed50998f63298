"""MailchimpClient: one account's HTTP session, its limits and its retries.

Limits: at most the limiter's `max_connections` requests in flight
(Mailchimp allows 10 simultaneous connections per account), enforced twice:
the limiter, and a connection pool that blocks rather than open an 11th
socket. The sink passes the account's `MachineSlots` (shared by every
process of the machine; slots.py); a client on its own (the preflight
check, tests) bounds its own threads with a `ConnectionLimiter`. Requests
time out (Mailchimp gives up at 120 s).

Retries live here and nowhere else. urllib3's `Retry` is not used because
its policy is per pool, and ours is per request: a member event has no
idempotency key, so once the request may have reached Mailchimp (read timeout,
connection dropped mid-answer) retrying it could post the event twice; the
caller gets `DeliveryFailed` instead. 429 and 5xx are retried for every
request (Mailchimp refused before acting), connection failures before sending
too, with exponential backoff, full jitter and Retry-After honoured; the
connection slot is released while waiting.

Every answer ends as a value, `MailchimpError` or `DeliveryFailed`, never
another exception. The status decides, because it alone says whether
Mailchimp acted; the body is read after it (streamed) and may fail on its own:
- 4xx: `MailchimpError`, from problem+json, or from the status and reason
  when the body is empty, an HTML page from Mailchimp's edge or cut short;
  429 and 5xx are retried whatever their body.
- 2xx for a member event: delivered, whatever follows (HTML, empty, cut
  short, a read timeout mid-body): Mailchimp accepted it, and posting it
  again would duplicate it.
- 2xx for a call that needs the body (batch subscribe, PUT, merge fields,
  ping) but whose body is empty, not JSON, JSON of the wrong shape or cut
  short: we cannot tell which members were taken, so it is retried (these
  calls are idempotent as we make them) and ends as `DeliveryFailed` if it
  stays so.
What the retry loop went through is counted in `client.stats` (a `CallTally`:
throttled requests, seconds waited for 429s, retries by cause) for the sink
to report as Beam counters.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
import random
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Optional, Protocol

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import NewConnectionError

from transforms.mailchimp.errors import (RETRYABLE_STATUS, DeliveryFailed,
                                         MailchimpError)
from transforms.mailchimp.tally import CallTally

if TYPE_CHECKING:  # credentials live in their own module; only typed here
    from transforms.mailchimp.credentials import Credentials

MAX_CONNECTIONS = 10
_LOGGER = logging.getLogger(__name__)


class Limiter(Protocol):
    """Held around each request: ConnectionLimiter, or slots.MachineSlots."""
    max_connections: int

    def __enter__(self) -> Any: ...

    def __exit__(self, *exc: Any) -> Any: ...


class ConnectionLimiter:
    """A counting semaphore: bounds the threads of one process."""

    def __init__(self, max_connections: int = MAX_CONNECTIONS):
        self.max_connections = max_connections
        self._slots = threading.BoundedSemaphore(max_connections)

    def __enter__(self):
        self._slots.acquire()

    def __exit__(self, *exc):
        self._slots.release()


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6
    backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    max_retry_after_s: float = 120.0

    def delay(self, attempt: int, retry_after: Optional[float] = None) -> float:
        """Seconds to wait before retry number `attempt` (0-based)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after_s)
        cap = min(self.max_backoff_s, self.backoff_s * 2 ** attempt)
        return random.uniform(0, cap)  # full jitter: retries don't synchronise


# What a call needs of a 2xx answer: a check of the decoded JSON that says
# what is wrong with it ("" when nothing is).
Check = Callable[[Any], str]


_JSON_TYPES = {list: "array", str: "string", int: "number", float: "number",
               bool: "boolean", type(None): "null"}


def _an_object(value: Any) -> str:
    return "" if isinstance(value, dict) else (
        f"a JSON {_JSON_TYPES.get(type(value), 'value')}, not an object")


def _merge_field_page(value: Any) -> str:
    if not isinstance(value, dict):
        return _an_object(value)
    fields = value.get("merge_fields")
    if not isinstance(fields, list) or not all(
            isinstance(f, dict) and isinstance(f.get("tag"), str) for f in fields):
        return "no list of merge fields with tags"
    total = value.get("total_items", 0)
    if not isinstance(total, int) or isinstance(total, bool):
        return "a total_items that is not a number"
    return ""


def _members_page(value: Any) -> str:
    if not isinstance(value, dict):
        return _an_object(value)
    members = value.get("members")
    if not isinstance(members, list) or not all(isinstance(m, dict) for m in members):
        return "no list of members"
    return ""


def _retry_after(response: requests.Response) -> Optional[float]:
    value = response.headers.get("Retry-After")
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None  # an HTTP date: rare from Mailchimp; use our backoff
    return seconds if seconds is None or math.isfinite(seconds) else None


def _never_sent(error: requests.RequestException) -> bool:
    """True when the request cannot have reached the server."""
    if isinstance(error, requests.ConnectTimeout):
        return True
    reason = getattr(error.args[0], "reason", None) if error.args else None
    return isinstance(reason, NewConnectionError)


class MailchimpClient:
    """The Marketing API calls the sink makes. Safe to share between threads."""

    def __init__(self, api_root: str, credentials: Credentials,
                 limiter: Optional[Limiter] = None,
                 timeout: tuple[float, float] = (10.0, 130.0),
                 retry: RetryPolicy = RetryPolicy(),
                 sleep: Callable[[float], None] = time.sleep):
        self._root = api_root.rstrip("/")
        self._limiter = limiter or ConnectionLimiter()
        self._timeout, self._retry, self._sleep = timeout, retry, sleep
        self.stats = CallTally()  # drained by the sink into Beam counters
        self._session = requests.Session()
        self._session.headers.update({
            "Authorization": credentials.authorization,
            "User-Agent": "mailchimp-stream"})
        size = self._limiter.max_connections
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=size,
                              pool_block=True, max_retries=0)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)

    def close(self) -> None:
        self._session.close()

    @property
    def api_root(self) -> str:
        """Where the calls go (no secret in it): for messages."""
        return self._root

    def ping(self) -> dict:
        return self._call("GET", "/ping")

    def merge_fields(self, list_id: str) -> list[dict]:
        """Every merge field of an audience, all pages."""
        fields: list[dict] = []
        while True:
            page = self._call("GET", f"/lists/{list_id}/merge-fields",
                              params={"count": 1000, "offset": len(fields)},
                              expect=_merge_field_page)
            fields.extend(page["merge_fields"])
            if not page["merge_fields"] or len(fields) >= page.get(
                    "total_items", 0):
                return fields

    def list_info(self, list_id: str) -> dict:
        """GET /lists/{id}: the audience's name, whether it has marketing
        permissions (GDPR fields), ..."""
        return self._call("GET", f"/lists/{list_id}")

    def members_page(self, list_id: str, count: int = 10, offset: int = 0,
                     fields: Optional[list[str]] = None) -> dict:
        """One page of GET /lists/{id}/members; `fields` narrows each answer
        (e.g. ["members.marketing_permissions"])."""
        params: dict[str, Any] = {"count": count, "offset": offset}
        if fields:
            params["fields"] = ",".join(fields)
        return self._call("GET", f"/lists/{list_id}/members", params=params,
                          expect=_members_page)

    def create_merge_field(self, list_id: str, body: dict) -> dict:
        """POST /lists/{id}/merge-fields. Not retried once it may have
        arrived: a second one would be refused, the tag being taken."""
        return self._call("POST", f"/lists/{list_id}/merge-fields", json=body,
                          idempotent=False)

    def batch_subscribe(self, list_id: str, members: list[dict]) -> dict:
        """POST /lists/{id}: idempotent as we call it (update_existing and
        status_if_new only), so it is retried like a PUT. The answer is an
        object; which of its keys are there is the caller's business."""
        body = {"members": members, "update_existing": True}
        return self._call("POST", f"/lists/{list_id}", json=body)

    def upsert_member(self, list_id: str, subscriber_hash: str, body: dict) -> dict:
        return self._call(
            "PUT", f"/lists/{list_id}/members/{subscriber_hash}", json=body)

    def post_tags(self, list_id: str, subscriber_hash: str, body: dict) -> None:
        """POST .../tags: idempotent (a tag made active twice is active)."""
        self._call("POST", f"/lists/{list_id}/members/{subscriber_hash}/tags",
                   json=body, expect=None)

    def post_event(self, list_id: str, subscriber_hash: str, body: dict) -> None:
        """Not idempotent: see the module docstring. Any 2xx is success,
        whatever its body."""
        self._call("POST", f"/lists/{list_id}/members/{subscriber_hash}/events",
                   json=body, idempotent=False, expect=None)

    def _call(self, method: str, path: str, *, idempotent: bool = True,
              expect: Optional[Check] = _an_object, **kwargs: Any) -> Any:
        """The decoded answer (None when `expect` is None), or raise
        MailchimpError (a refusal) or DeliveryFailed (see the module
        docstring); nothing else escapes."""
        url = self._root + path
        why, failure, delay = "", "", 0.0
        throttled = False
        for attempt in range(self._retry.attempts):
            if attempt:
                _LOGGER.debug("%s %s: %s; retry %d in %.2f s", method, path,
                              failure, attempt, delay)
                self.stats.retry(why, delay, throttled=why == "429")
                self._sleep(delay)
            try:
                answer = self._exchange(method, url, kwargs)
            except requests.exceptions.InvalidJSONError as e:
                # Our body, not the network: no retry can help.
                raise DeliveryFailed(f"request body is not JSON: {e}") from None
            except requests.RequestException as e:
                if not idempotent and not _never_sent(e):
                    _LOGGER.warning("%s %s: %s after sending; not retried",
                                    method, path, type(e).__name__)
                    raise DeliveryFailed(
                        f"{type(e).__name__} after the request was sent; not "
                        f"retried, as a retry could post it twice") from None
                why = "timeout" if isinstance(e, requests.Timeout) else "connection"
                failure, delay = type(e).__name__, self._retry.delay(attempt)
                continue
            if answer.status in RETRYABLE_STATUS:
                if answer.status == 429 and not throttled:
                    throttled = True
                    self.stats.throttled()
                why, failure = str(answer.status), f"HTTP {answer.status}"
                delay = self._retry.delay(attempt, answer.retry_after)
                continue
            if answer.status >= 400:
                raise answer.error()
            if expect is None:  # the status says it all: Mailchimp acted
                return None
            value, problem = answer.decoded(expect)
            if not problem:
                return value
            failure = f"HTTP {answer.status} with {problem}"
            if not idempotent:
                raise DeliveryFailed(f"{failure}; not retried, as a retry "
                                     f"could post it twice")
            why, delay = "bad_answer", self._retry.delay(attempt)
        _LOGGER.warning("%s %s: gave up after %d attempts (last: %s)", method,
                        path, self._retry.attempts, failure)
        raise DeliveryFailed(
            f"gave up after {self._retry.attempts} attempts (last: {failure})")

    def _exchange(self, method: str, url: str, kwargs: dict) -> _Answer:
        """One request and its whole answer, read while holding the slot.
        Streamed, so that the status is known even when the body then fails
        (cut short, stalled, reset): the status alone says whether Mailchimp
        acted."""
        with self._limiter:
            self.stats.sent()
            response = self._session.request(
                method, url, timeout=self._timeout, stream=True, **kwargs)
            try:
                content, cut = response.content, ""
            except requests.RequestException as e:
                content, cut = b"", type(e).__name__
            finally:
                response.close()  # back to the pool, or closed if broken
        return _Answer(response.status_code, response.reason or "Error",
                       response.headers.get("Content-Type", ""),
                       _retry_after(response), content, cut)


@dataclasses.dataclass(frozen=True)
class _Answer:
    """An HTTP answer as read; `cut` names the error that ended its body
    early ("" when the body came whole)."""

    status: int
    reason: str
    content_type: str
    retry_after: Optional[float]
    content: bytes
    cut: str

    def error(self) -> MailchimpError:
        if self.cut:
            return MailchimpError(self.status, self.reason,
                                  f"the answer was cut short ({self.cut})")
        return MailchimpError.from_answer(self.status, self.reason,
                                          self.content, self.content_type)

    def decoded(self, expect: Check) -> tuple[Any, str]:
        """(the JSON value, "") or (None, what is wrong with the body)."""
        if self.cut:
            return None, f"its body cut short ({self.cut})"
        if not self.content.strip():
            return None, "an empty body"
        try:
            value = json.loads(self.content)
        except ValueError:  # JSONDecodeError and UnicodeDecodeError
            media = self.content_type.split(";")[0].strip() or "no content type"
            return None, f"a body that is not JSON ({media})"
        return value, expect(value)
