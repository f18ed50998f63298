"""A progress line on stderr while a local batch run goes on.

    progress: 12,000 records read, 130 requests sent, 9,800 delivered,
    2,150 skipped, 50 dead-lettered; 2,400 records/s, 0:05 elapsed

Where the numbers come from: `pipeline.run()` blocks this process until the
run ends, Beam's metrics are read once it has ended, and with
`--direct_running_mode multi_processing` the DoFns run in other processes.
So each worker process keeps running totals (`_ProcessTotals`) and writes
them, whole, to a file of its own in a directory this process made; the
reporter thread here sums the files every few seconds. Into the totals go
what the counting step of WriteOutputs counts (`OutcomeTally`, in
pipeline/outputs.py: each outcome's `counts()`, as summary.json has them)
and the sink's requests (`requests_sent` of the client's tally, heard through
transforms.throttling.listen, since transforms/ knows nothing of this).

The directory travels in the environment (PROGRESS_DIR_ENV), not in a flag
or the graph: a local runner's worker processes are this process's children
and inherit it, a remote runner's workers and a local streaming job's runs
never see it, and there every hook is a no-op.

The figures are a running view: a bundle the runner runs again is counted
again here; summary.json stays the exact account.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from typing import Callable, Iterable, Iterator, Mapping, Optional, TextIO

from pipeline.summary import summarise
from transforms import throttling
from transforms.mailchimp.tally import REQUESTS_SENT

PROGRESS_DIR_ENV = "MAILCHIMP_STREAM_PROGRESS_DIR"
INTERVAL_SECS = 5.0  # between two progress lines
WRITE_SECS = 1.0  # a worker process rewrites its file at most this often...
# ...and at the end of every bundle, so the last line has every count.
Clock = Callable[[], float]


# --- in the worker processes ---------------------------------------------------

class _ProcessTotals:
    """This process's counts so far, written whole to `DIR/PID.json`
    (replaced atomically, so a reader never sees half a file)."""

    def __init__(self, directory: str, clock: Clock = time.monotonic):
        self._directory, self._clock = directory, clock
        self._lock = threading.Lock()  # DoFns on several threads add here
        self._counts: Counter = Counter()
        self._written_at = -float("inf")

    def add(self, counts: Mapping[str, int], write: bool = False) -> None:
        with self._lock:
            self._counts.update(counts)
            if write or self._clock() - self._written_at >= WRITE_SECS:
                self._written_at = self._clock()
                self._write()

    def _write(self) -> None:
        path = os.path.join(self._directory, f"{os.getpid()}.json")
        try:
            with open(path + ".tmp", "w") as f:
                json.dump(self._counts, f)
            os.replace(path + ".tmp", path)
        except OSError:
            pass  # the progress line is never worth failing a run for


_totals_lock = threading.Lock()
_totals: dict[str, _ProcessTotals] = {}


def _process_totals() -> Optional[_ProcessTotals]:
    """This process's totals for the run that set PROGRESS_DIR_ENV, if any."""
    directory = os.environ.get(PROGRESS_DIR_ENV)
    if not directory:
        return None
    with _totals_lock:
        if directory not in _totals:
            _totals[directory] = _ProcessTotals(directory)
        return _totals[directory]


def _add_requests(counts: Mapping[str, int]) -> None:
    """A throttling listener: the sink's drained tally."""
    sent = counts.get(REQUESTS_SENT)
    totals = _process_totals() if sent else None
    if totals is not None:
        totals.add({REQUESTS_SENT: sent})


class OutcomeTally:
    """What one counting DoFn adds to its process's totals: each count's
    name, summed over syncs, passed on at most every WRITE_SECS and at the
    end of a bundle (`flush`), so the DoFn takes no lock per element."""

    def __init__(self, clock: Clock = time.monotonic):
        self._totals = _process_totals()
        if self._totals is not None:
            throttling.listen(_add_requests)
        self._clock = clock
        self._pending: Counter = Counter()
        self._due = -float("inf")

    def add(self, counts: Iterable[tuple]) -> None:
        """An outcome's `counts()`: (sync, name, n) triples."""
        if self._totals is None:
            return
        for _, name, n in counts:
            self._pending[name] += n
        if self._clock() >= self._due:
            self._pass_on(write=False)

    def flush(self) -> None:
        if self._totals is not None:
            self._pass_on(write=True)

    def _pass_on(self, write: bool) -> None:
        self._totals.add(self._pending, write=write)
        self._pending = Counter()
        self._due = self._clock() + WRITE_SECS


# --- in this process -------------------------------------------------------------

def read_totals(directory: str) -> Counter:
    """Every worker process's counts, summed."""
    total: Counter = Counter()
    for name in os.listdir(directory):
        if name.endswith(".json"):
            try:
                with open(os.path.join(directory, name)) as f:
                    total.update(json.load(f))
            except (OSError, ValueError):
                continue  # being replaced: next time
    return total


@dataclasses.dataclass(frozen=True)
class Figures:
    records: int
    requests: int
    delivered: int
    skipped: int
    dead_letter: int

    @classmethod
    def of(cls, counts: Mapping[str, int]) -> "Figures":
        """From counts by name, read as summary.json reads them."""
        summary = summarise(Counter({(None, name): n for name, n in counts.items()}), [])
        events, members, cohorts = (summary[k] for k in ("events", "members", "cohorts"))
        return cls(records=summary["records_in"],
                   requests=counts.get(REQUESTS_SENT, 0),
                   delivered=events["delivered"] + members["upserted"] + cohorts["delivered"],
                   skipped=sum(sum(s["skipped"].values()) for s in (events, members, cohorts)),
                   dead_letter=summary["dead_letter"])


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def progress_line(figures: Figures, elapsed_s: float) -> str:
    rate = figures.records / elapsed_s if elapsed_s > 0 else 0.0
    return (f"progress: {figures.records:,} records read, "
            f"{figures.requests:,} requests sent, {figures.delivered:,} delivered, "
            f"{figures.skipped:,} skipped, {figures.dead_letter:,} dead-lettered; "
            f"{rate:,.0f} records/s, {_duration(elapsed_s)} elapsed")


class ProgressReporter:
    """Writes the progress line to `stream`: on a terminal one line,
    rewritten in place (carriage return, erase the line); otherwise a line
    each time, as a log file wants them."""

    def __init__(self, directory: str, stream: TextIO, clock: Clock = time.monotonic,
                 in_place: Optional[bool] = None):
        self._directory, self._stream, self._clock = directory, stream, clock
        self._in_place = stream.isatty() if in_place is None else in_place
        self._started = clock()
        self._shown = False

    def report(self) -> None:
        line = progress_line(Figures.of(read_totals(self._directory)),
                             self._clock() - self._started)
        self._stream.write(f"\r\x1b[K{line}" if self._in_place else f"{line}\n")
        self._stream.flush()
        self._shown = True

    def end(self) -> None:
        """The last line stays; what is printed next starts below it."""
        if self._in_place and self._shown:
            self._stream.write("\n")
            self._stream.flush()


@contextlib.contextmanager
def show_progress(quiet: bool = False, stream: Optional[TextIO] = None,
                  interval_s: float = INTERVAL_SECS) -> Iterator[None]:
    """While the block runs a local batch run (in this process and its
    children), a progress line every `interval_s`, and a last one at the
    end; nothing when `quiet`."""
    if quiet:
        yield
        return
    with tempfile.TemporaryDirectory(prefix="mailchimp-stream-progress-") as directory:
        reporter = ProgressReporter(directory, stream or sys.stderr)
        stop = threading.Event()

        def every_interval():
            while not stop.wait(interval_s):
                reporter.report()

        thread = threading.Thread(target=every_interval, name="progress", daemon=True)
        previous = os.environ.get(PROGRESS_DIR_ENV)
        os.environ[PROGRESS_DIR_ENV] = directory
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()
            if previous is None:
                del os.environ[PROGRESS_DIR_ENV]
            else:
                os.environ[PROGRESS_DIR_ENV] = previous
            reporter.report()
            reporter.end()
