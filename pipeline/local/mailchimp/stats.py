"""Counters behind /_emulator/stats."""
from __future__ import annotations

import threading
from collections import Counter
from typing import Any


class Gauge:
    """A level that goes up and down (requests in flight, open connections)
    and the highest it has been."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.current = 0
        self.peak = 0

    def try_raise(self, limit: int | None = None) -> bool:
        """One up, unless that would exceed `limit`."""
        with self._lock:
            if limit is not None and self.current >= limit:
                return False
            self.current += 1
            self.peak = max(self.peak, self.current)
            return True

    def lower(self) -> None:
        with self._lock:
            self.current -= 1

    def reset_peak(self) -> None:
        with self._lock:
            self.peak = self.current


class Stats:
    """Requests by route, injected faults, connection-limit rejections and
    the peaks of requests in flight and of open connections."""

    def __init__(self) -> None:
        self.in_flight = Gauge()
        self.connections = Gauge()
        self._lock = threading.Lock()
        self._requests: Counter[str] = Counter()
        self._faults: Counter[str] = Counter()
        self._rejected = 0

    def count_request(self, label: str) -> None:
        with self._lock:
            self._requests[label] += 1

    def count_fault(self, kind: str) -> None:
        with self._lock:
            self._faults[kind] += 1

    def count_rejected(self) -> None:
        with self._lock:
            self._rejected += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"max_in_flight": self.in_flight.peak,
                    "max_open_connections": self.connections.peak,
                    "requests": dict(self._requests),
                    "faults": dict(self._faults),
                    "rejected_429_limit": self._rejected}

    def reset(self) -> None:
        """Counters to zero; peaks to the present levels."""
        with self._lock:
            self._requests.clear()
            self._faults.clear()
            self._rejected = 0
        self.in_flight.reset_peak()
        self.connections.reset_peak()
