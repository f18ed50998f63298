"""Throughput as seen from outside: a count sampled often, in a background
thread, while a pipeline runs.

Two rates come out of the samples:
- wall-clock: the target count over the time from the start (the moment the
  pipeline process was launched) to the first sample at the target; it
  includes the pipeline's start-up (Python and Beam imports, preflight,
  graph construction);
- steady state: (count at the last sample - count at the first non-zero
  sample) / the time between those two samples, i.e. from the first request
  (or record) observed to the last. Counts are exact at each sample, so the
  sampling interval only blurs the end points, not the rate.
"""
from __future__ import annotations

import dataclasses
import threading
import time
from typing import Callable, Optional


@dataclasses.dataclass(frozen=True)
class Throughput:
    count: int
    wall_s: float  # start -> target reached
    first_s: float  # start -> first non-zero sample
    steady_per_s: float
    wall_per_s: float


class Progress:
    """Samples `count()` every `interval_s` from start() until it reaches
    `target`, stop() is called, or `timeout_s` passes."""

    def __init__(self, count: Callable[[], int], target: int,
                 interval_s: float = 0.02, timeout_s: float = 1800.0):
        self._count, self._target = count, target
        self._interval_s, self._timeout_s = interval_s, timeout_s
        self._samples: list[tuple[float, int]] = []
        self._stopping = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name="bench-progress")
        self.started = 0.0

    def start(self, started: Optional[float] = None) -> "Progress":
        self.started = started if started is not None else time.perf_counter()
        self._thread.start()
        return self

    def _run(self) -> None:
        deadline = self.started + self._timeout_s
        try:
            while not self._stopping.is_set() and time.perf_counter() < deadline:
                value = self._count()
                self._samples.append((time.perf_counter(), value))
                if value >= self._target:
                    return
                self._stopping.wait(self._interval_s)
        finally:
            self._done.set()

    def wait(self, timeout_s: float, alive: Callable[[], bool] = lambda: True) -> bool:
        """True once the target is reached; False on timeout or when
        `alive()` turns false (the process producing the count died)."""
        deadline = time.perf_counter() + timeout_s
        while not self._done.wait(0.1):
            if time.perf_counter() > deadline or not alive():
                return False
        return self.reached

    @property
    def reached(self) -> bool:
        return bool(self._samples) and self._samples[-1][1] >= self._target

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def throughput(self) -> Throughput:
        samples = list(self._samples)
        moving = [s for s in samples if s[1] > 0]
        if not moving:
            raise RuntimeError("nothing was counted")
        (t_first, c_first), (t_last, c_last) = moving[0], moving[-1]
        span = t_last - t_first
        wall = t_last - self.started
        return Throughput(
            count=c_last, wall_s=wall, first_s=t_first - self.started,
            steady_per_s=(c_last - c_first) / span if span > 0 else float("nan"),
            wall_per_s=c_last / wall)
