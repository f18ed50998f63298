"""CallTally: what a client's retry loop went through, for the runner to see.

The retry loop runs on the sink's thread-pool threads, which have no Beam
metrics context, so it counts here (thread-safe, no Beam) and the sink drains
the tally into Beam counters from its own thread (transforms/throttling.py).

Counter names are those of Beam's `apache_beam/io/requestresponse.py`:
`throttled_requests` (requests Mailchimp answered 429 at least once) and
`cumulativeThrottlingSeconds` (seconds waited because of those 429s; Dataflow's
autoscaler reads a counter of that name, so it does not add workers that would
only be throttled too), plus `retries_<why>` per retry: `retries_429`,
`retries_503`, ..., `retries_timeout`, `retries_connection`, `retries_bad_answer`;
and `requests_sent`, every HTTP request made, retries included (a local
run's progress line shows it: pipeline/progress.py).
"""
from __future__ import annotations

import threading
from collections import Counter

THROTTLED_REQUESTS = "throttled_requests"
THROTTLING_SECONDS = "cumulativeThrottlingSeconds"
REQUESTS_SENT = "requests_sent"


class CallTally:
    """Counts since the last drain()."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._throttled_s = 0.0

    def sent(self) -> None:
        """A request is going out."""
        with self._lock:
            self._counts[REQUESTS_SENT] += 1

    def throttled(self) -> None:
        """A request got its first 429."""
        with self._lock:
            self._counts[THROTTLED_REQUESTS] += 1

    def retry(self, why: str, wait_s: float, throttled: bool) -> None:
        """A retry after `wait_s` seconds, because of `why` (a status code,
        "timeout", "connection" or "bad_answer")."""
        with self._lock:
            self._counts[f"retries_{why}"] += 1
            if throttled:
                self._throttled_s += wait_s

    def drain(self) -> dict[str, int]:
        """Counts since the last drain, then zero. Beam counters take whole
        numbers: the seconds' fraction is kept for the next drain."""
        with self._lock:
            counts, self._counts = dict(self._counts), Counter()
            whole = int(self._throttled_s)
            self._throttled_s -= whole
        if whole:
            counts[THROTTLING_SECONDS] = whole
        return counts
