"""Injected faults: what can go wrong with a request, drawn per request."""
from __future__ import annotations

import random
import threading
from dataclasses import dataclass

# Fault kinds, as counted in the stats.
SERVICE_UNAVAILABLE = "503"
TOO_MANY_REQUESTS = "429"
TOO_MANY_REQUESTS_EMPTY = "429_empty"
TIMEOUT = "timeout"
RESET = "reset"


@dataclass(frozen=True)
class Faults:
    """Probabilities of injected faults, each per request (they add up to at
    most 1): 503; 429 with problem+json; 429 with an empty body (as Mailchimp
    sends under heavy load); a stall of `timeout_stall_s` then a close without
    an answer; an abrupt connection reset. With `retry_after` (seconds) set,
    429s carry a Retry-After header."""

    p503: float = 0.0
    p429: float = 0.0
    p429_empty: float = 0.0
    retry_after: float | None = None
    p_timeout: float = 0.0
    timeout_stall_s: float = 2.0
    p_reset: float = 0.0

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
                RESET: self.p_reset}


class FaultPlan:
    """Draws each request's fault (or none) from a seeded generator, one draw
    per request in arrival order, so that a run can be replayed."""

    def __init__(self, faults: Faults, seed: int):
        self.faults = faults
        self._random = random.Random(seed)
        self._lock = threading.Lock()

    def draw(self) -> str | None:
        with self._lock:
            roll = self._random.random()
        threshold = 0.0
        for kind, probability in self.faults.probabilities().items():
            threshold += probability
            if roll < threshold:
                return kind
        return None
