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

import base64
import dataclasses
import hashlib
import logging
import os
import random
import threading
import time
from typing import Any, Callable, Literal, Mapping, Optional

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import NewConnectionError

from transforms.mailchimp.errors import (RETRYABLE_STATUS, DeliveryFailed,
                                         MailchimpError)

API_KEY_ENV = "MAILCHIMP_API_KEY"
OAUTH_TOKEN_ENV = "MAILCHIMP_OAUTH_TOKEN"
OAUTH_METADATA_URL = "https://login.mailchimp.com/oauth2/metadata"
MAX_CONNECTIONS = 10
_LOGGER = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Credentials:
    """An API key (`...-us6`) or an OAuth access token. Never printed."""
    kind: Literal["api_key", "oauth_token"]
    secret: str = dataclasses.field(repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> "Credentials":
        if environ.get(API_KEY_ENV):
            return cls("api_key", environ[API_KEY_ENV].strip())
        if environ.get(OAUTH_TOKEN_ENV):
            return cls("oauth_token", environ[OAUTH_TOKEN_ENV].strip())
        raise ValueError(
            f"no Mailchimp credentials: set {API_KEY_ENV} (the API key with "
            f"its -dc suffix) or {OAUTH_TOKEN_ENV}")

    @property
    def authorization(self) -> str:
        if self.kind == "oauth_token":
            return f"Bearer {self.secret}"
        # Basic auth with any user name and the key as password.
        token = base64.b64encode(f"mailchimp-stream:{self.secret}".encode())
        return f"Basic {token.decode()}"

    @property
    def fingerprint(self) -> str:
        """Tells credentials apart without carrying the secret."""
        return hashlib.sha256(self.secret.encode()).hexdigest()[:16]

    def api_root(self, timeout: float = 10.0) -> str:
        """https://DC.api.mailchimp.com/3.0: from the key's suffix, or for a
        token from Mailchimp's OAuth metadata endpoint."""
        if self.kind == "api_key":
            _, sep, dc = self.secret.rpartition("-")
            if not sep or not dc.isalnum():
                raise ValueError(
                    f"{API_KEY_ENV} has no data-centre suffix (like -us6)")
            return f"https://{dc}.api.mailchimp.com/3.0"
        response = requests.get(OAUTH_METADATA_URL, timeout=timeout,
                                headers={"Authorization": f"OAuth {self.secret}"})
        if response.status_code != 200:
            raise ValueError(
                f"{OAUTH_TOKEN_ENV} was refused by the OAuth metadata "
                f"endpoint ({response.status_code})")
        return response.json()["api_endpoint"].rstrip("/") + "/3.0"


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


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """Where and as whom to call Mailchimp, resolved where it is used.

    It holds no secret, so it can travel inside a pickled pipeline: the
    credentials are read on the worker, from the environment or, on Dataflow,
    from Secret Manager (`api_key_secret`: projects/P/secrets/S/versions/V).
    """
    api_root: Optional[str] = None  # None: from the credentials
    api_key_secret: Optional[str] = None

    def credentials(self) -> Credentials:
        if self.api_key_secret:
            # Imported here: only Dataflow deployments need this package.
            from google.cloud import secretmanager
            client = secretmanager.SecretManagerServiceClient()
            secret = client.access_secret_version(name=self.api_key_secret)
            return Credentials("api_key", secret.payload.data.decode().strip())
        return Credentials.from_env()

    def root(self, credentials: Credentials) -> str:
        return self.api_root.rstrip("/") if self.api_root else credentials.api_root()
