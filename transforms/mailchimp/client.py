"""MailchimpClient: one account's HTTP session, its limits and its retries.

Limits: at most `max_connections` requests in flight per credentials per
process (Mailchimp allows 10 simultaneous connections per user; on N worker
processes give each 10/N), enforced twice: a `ConnectionLimiter` shared by
every client of the same credentials, and a connection pool that blocks rather
than open an 11th socket. Requests time out (Mailchimp gives up at 120 s).

Retries live here and nowhere else. urllib3's `Retry` is not used because
its policy is per pool, and ours is per request: a member event has no
idempotency key, so once the request may have reached Mailchimp (read timeout,
connection dropped mid-answer) retrying it could post the event twice; the
caller gets `DeliveryFailed` instead. 429 and 5xx are retried for every
request (Mailchimp refused before acting), connection failures before sending
too, with exponential backoff, full jitter and Retry-After honoured; the
connection slot is released while waiting.
"""
from __future__ import annotations

import dataclasses
import logging
import random
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Optional

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import NewConnectionError

from transforms.mailchimp.errors import (RETRYABLE_STATUS, DeliveryFailed,
                                         MailchimpError)

if TYPE_CHECKING:  # credentials live in their own module; only typed here
    from transforms.mailchimp.credentials import Credentials

MAX_CONNECTIONS = 10
_LOGGER = logging.getLogger(__name__)


class ConnectionLimiter:
    """A counting semaphore, shared by the clients of one set of credentials."""

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


def _retry_after(response: requests.Response) -> Optional[float]:
    value = response.headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None  # an HTTP date: rare from Mailchimp; use our backoff


def _never_sent(error: requests.RequestException) -> bool:
    """True when the request cannot have reached the server."""
    if isinstance(error, requests.ConnectTimeout):
        return True
    reason = getattr(error.args[0], "reason", None) if error.args else None
    return isinstance(reason, NewConnectionError)


class MailchimpClient:
    """The Marketing API calls the sink makes. Safe to share between threads."""

    def __init__(self, api_root: str, credentials: Credentials,
                 limiter: Optional[ConnectionLimiter] = None,
                 timeout: tuple[float, float] = (10.0, 130.0),
                 retry: RetryPolicy = RetryPolicy(),
                 sleep: Callable[[float], None] = time.sleep):
        self._root = api_root.rstrip("/")
        self._limiter = limiter or ConnectionLimiter()
        self._timeout, self._retry, self._sleep = timeout, retry, sleep
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

    def ping(self) -> dict:
        return self._call("GET", "/ping")

    def merge_fields(self, list_id: str) -> list[dict]:
        """Every merge field of an audience, all pages."""
        fields: list[dict] = []
        while True:
            page = self._call("GET", f"/lists/{list_id}/merge-fields",
                              params={"count": 1000, "offset": len(fields)})
            fields.extend(page.get("merge_fields", []))
            if not page.get("merge_fields") or len(fields) >= page.get(
                    "total_items", 0):
                return fields

    def batch_subscribe(self, list_id: str, members: list[dict]) -> dict:
        """POST /lists/{id}: idempotent as we call it (update_existing and
        status_if_new only), so it is retried like a PUT."""
        body = {"members": members, "update_existing": True}
        return self._call("POST", f"/lists/{list_id}", json=body)

    def upsert_member(self, list_id: str, subscriber_hash: str, body: dict) -> dict:
        return self._call(
            "PUT", f"/lists/{list_id}/members/{subscriber_hash}", json=body)

    def post_event(self, list_id: str, subscriber_hash: str, body: dict) -> None:
        """Not idempotent: see the module docstring."""
        self._call("POST", f"/lists/{list_id}/members/{subscriber_hash}/events",
                   json=body, idempotent=False)

    def _call(self, method: str, path: str, *, idempotent: bool = True,
              **kwargs: Any) -> Any:
        url = self._root + path
        failure, delay = "", 0.0
        for attempt in range(self._retry.attempts):
            if attempt:
                _LOGGER.debug("%s %s: %s; retry %d in %.2f s", method, path,
                              failure, attempt, delay)
                self._sleep(delay)
            try:
                with self._limiter:
                    response = self._session.request(
                        method, url, timeout=self._timeout, **kwargs)
                    content = response.content  # read before freeing the slot
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
                failure = type(e).__name__
                delay = self._retry.delay(attempt)
            else:
                if response.status_code not in RETRYABLE_STATUS:
                    if response.status_code >= 400:
                        raise MailchimpError.from_response(response)
                    return response.json() if content else None
                failure = f"HTTP {response.status_code}"
                delay = self._retry.delay(attempt, _retry_after(response))
        _LOGGER.warning("%s %s: gave up after %d attempts (last: %s)", method,
                        path, self._retry.attempts, failure)
        raise DeliveryFailed(
            f"gave up after {self._retry.attempts} attempts (last: {failure})")
