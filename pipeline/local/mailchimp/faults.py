"""Injected faults: what can go wrong with a request, drawn per request, or
aimed at the first requests of a route.

Two sorts. Refusals come before the API, so the request changes nothing:
503 and 429 (problem+json or empty), an HTML page from the edge (502, 503),
a stall then a close, a reset. Spoiled answers come after it: the API acted
and answered 2xx, and only the answer is spoiled, as by Mailchimp's edge or a
proxy: an HTML page instead (200), an empty 200, a 200 whose JSON is `{}`
or `[]` (an object without the keys, not an object), a body cut short (its
Content-Length promised more, then the connection closes) or a body that
stalls half-way for `timeout_stall_s` before the close. A spoiled fault drawn
for a request the API refused is not applied: the refusal goes out as it is.
"""
from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field

# Fault kinds, as counted in the stats.
SERVICE_UNAVAILABLE = "503"
TOO_MANY_REQUESTS = "429"
TOO_MANY_REQUESTS_EMPTY = "429_empty"
TIMEOUT = "timeout"
RESET = "reset"
EDGE_502 = "502_html"
EDGE_503 = "503_html"
HTML_200 = "200_html"
EMPTY_200 = "200_empty"
EMPTY_OBJECT_200 = "200_empty_object"
ARRAY_200 = "200_array"
CUT_BODY = "cut_body"
STALLED_BODY = "stalled_body"
SPOILED = frozenset({HTML_200, EMPTY_200, EMPTY_OBJECT_200, ARRAY_200,
                     CUT_BODY, STALLED_BODY})
KINDS = (SERVICE_UNAVAILABLE, TOO_MANY_REQUESTS, TOO_MANY_REQUESTS_EMPTY,
         TIMEOUT, RESET, EDGE_502, EDGE_503, HTML_200, EMPTY_200,
         EMPTY_OBJECT_200, ARRAY_200, CUT_BODY, STALLED_BODY)


@dataclass(frozen=True)
class Aimed:
    """The first `count` requests to `route` get fault `kind`; `route` is
    "METHOD TEMPLATE" as the stats count requests, e.g.
    "POST /3.0/lists/{list_id}"."""

    kind: str
    route: str
    count: int = 1

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault {self.kind!r}; one of {', '.join(KINDS)}")
        if self.count < 0:
            raise ValueError("an aimed fault's count must not be negative")


@dataclass(frozen=True)
class Faults:
    """Probabilities of injected faults, each per request (they add up to at
    most 1): 503; 429 with problem+json; 429 with an empty body (as Mailchimp
    sends under heavy load); a stall of `timeout_stall_s` then a close without
    an answer; an abrupt connection reset; the edge's HTML 502 and 503 pages;
    and the spoiled answers (see the module docstring). With `retry_after`
    (seconds) set, 429s carry a Retry-After header. `aimed` faults come
    first, whatever the probabilities."""

    p503: float = 0.0
    p429: float = 0.0
    p429_empty: float = 0.0
    retry_after: float | None = None
    p_timeout: float = 0.0
    timeout_stall_s: float = 2.0
    p_reset: float = 0.0
    p502_html: float = 0.0
    p503_html: float = 0.0
    p200_html: float = 0.0
    p200_empty: float = 0.0
    p200_empty_object: float = 0.0
    p200_array: float = 0.0
    p_cut_body: float = 0.0
    p_stalled_body: float = 0.0
    aimed: tuple[Aimed, ...] = field(default=())

    def __post_init__(self) -> None:
        probabilities = self.probabilities()
        for kind, value in probabilities.items():
            if not 0.0 <= value <= 1.0:
                raise ValueError(
                    f"the probability of fault {kind} must be between 0 and 1, not {value}")
        if sum(probabilities.values()) > 1.0 + 1e-9:
            raise ValueError("fault probabilities add up to more than 1")
        if (self.retry_after is not None and self.retry_after < 0) or self.timeout_stall_s < 0:
            raise ValueError("retry_after and timeout_stall_s must not be negative")

    def probabilities(self) -> dict[str, float]:
        """Fault kind → probability, in the order faults are drawn."""
        return {SERVICE_UNAVAILABLE: self.p503, TOO_MANY_REQUESTS: self.p429,
                TOO_MANY_REQUESTS_EMPTY: self.p429_empty, TIMEOUT: self.p_timeout,
                RESET: self.p_reset, EDGE_502: self.p502_html,
                EDGE_503: self.p503_html, HTML_200: self.p200_html,
                EMPTY_200: self.p200_empty, EMPTY_OBJECT_200: self.p200_empty_object,
                ARRAY_200: self.p200_array, CUT_BODY: self.p_cut_body,
                STALLED_BODY: self.p_stalled_body}


class FaultPlan:
    """Each request's fault (or none): an aimed fault while its count lasts,
    else a draw from a seeded generator, one per request in arrival order,
    so that a run can be replayed."""

    def __init__(self, faults: Faults, seed: int):
        self.faults = faults
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._aimed_left = [aimed.count for aimed in faults.aimed]

    def draw(self, route: str) -> str | None:
        with self._lock:
            for i, aimed in enumerate(self.faults.aimed):
                if aimed.route == route and self._aimed_left[i]:
                    self._aimed_left[i] -= 1
                    return aimed.kind
            roll = self._random.random()
        threshold = 0.0
        for kind, probability in self.faults.probabilities().items():
            threshold += probability
            if roll < threshold:
                return kind
        return None
