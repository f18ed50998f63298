"""Child processes the benchmarks start, always bounded in time and always
stopped: the pipeline under test, the two local stand-ins, helper pipelines.

Each child gets its own process, so that its CPU and memory are its own:
the peak RSS of a finished child comes from `os.wait4`, which reports the
rusage of that one child (and of the children it waited for).
"""
from __future__ import annotations

import dataclasses
import json
import os
import selectors
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Optional, Sequence

import requests

from bench.common import API_KEY, write_json

EVENTS_ROUTE = "POST /3.0/lists/{list_id}/members/{subscriber_hash}/events"
BATCH_SUBSCRIBE_ROUTE = "POST /3.0/lists/{list_id}"
PUT_MEMBER_ROUTE = "PUT /3.0/lists/{list_id}/members/{subscriber_hash}"


@dataclasses.dataclass(frozen=True)
class Finished:
    returncode: int
    wall_s: float
    peak_rss_bytes: int
    log: str  # the tail of what it printed

    def check(self, what: str) -> "Finished":
        if self.returncode != 0:
            raise RuntimeError(f"{what} exited {self.returncode}:\n{self.log}")
        return self


class Child:
    """`command` in its own process, output to `log_path`. Use as a context
    manager: leaving it kills the child if it is still running."""

    def __init__(self, command: Sequence[str], log_path: Path,
                 env: Optional[dict] = None):
        self._log_path = log_path
        self._log = open(log_path, "wb")
        self._finished: Optional[Finished] = None
        self.started = time.perf_counter()
        self._process = subprocess.Popen(
            list(command), stdout=self._log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})})

    @property
    def pid(self) -> int:
        return self._process.pid

    def running(self) -> bool:
        return self._reap(block=False) is None

    def wait(self, timeout_s: float) -> Finished:
        """Until the child exits; killed (and an error raised) after timeout_s."""
        deadline = time.perf_counter() + timeout_s
        while (finished := self._reap(block=False)) is None:
            if time.perf_counter() > deadline:
                self.kill()
                raise TimeoutError(f"{self._process.args[:4]} still running "
                                   f"after {timeout_s:.0f} s: killed\n"
                                   f"{self._finished.log}")
            time.sleep(0.02)
        return finished

    def stop(self, timeout_s: float = 60.0) -> Finished:
        """SIGTERM, then wait (the pipeline stops cleanly on SIGTERM)."""
        self._signal(signal.SIGTERM)
        return self.wait(timeout_s)

    def kill(self) -> None:
        if self._signal(signal.SIGKILL):
            self._reap(block=True)

    def _signal(self, signum: int) -> bool:
        """Signal the child unless it was reaped. os.kill, not Popen's
        send_signal: that may reap the child itself, and its rusage with it.
        (An exited child that is not reaped keeps its pid: no reuse.)"""
        if self._finished is not None:
            return False
        os.kill(self._process.pid, signum)
        return True

    def _reap(self, block: bool) -> Optional[Finished]:
        if self._finished is not None:
            return self._finished
        pid, status, usage = os.wait4(self._process.pid, 0 if block else os.WNOHANG)
        if pid == 0:
            return None
        self._process.returncode = os.waitstatus_to_exitcode(status)
        self._log.close()
        tail = self._log_path.read_bytes()[-4000:].decode("utf-8", "replace")
        # ru_maxrss is in KiB on Linux.
        self._finished = Finished(self._process.returncode,
                                  time.perf_counter() - self.started,
                                  usage.ru_maxrss * 1024, tail)
        return self._finished

    def __enter__(self) -> "Child":
        return self

    def __exit__(self, *exc) -> None:
        self.kill()
        self._log.close()


class _Service:
    """A local stand-in, `python -m MODULE ARGS`, which prints one line
    ending with its address once it listens."""

    def __init__(self, module: str, args: Sequence[str], log_path: Path,
                 start_timeout_s: float = 60.0):
        self._log = open(log_path, "wb")
        self._process = subprocess.Popen(
            [sys.executable, "-m", module, *args], stdout=subprocess.PIPE,
            stderr=self._log, stdin=subprocess.DEVNULL, text=True)
        selector = selectors.DefaultSelector()
        selector.register(self._process.stdout, selectors.EVENT_READ)
        ready = selector.select(start_timeout_s)
        selector.close()
        line = self._process.stdout.readline() if ready else ""
        if "listening on" not in line:
            self.stop()
            raise RuntimeError(f"{module} did not start: {line!r} "
                               f"(see {log_path})")
        self.address = line.rsplit(" ", 1)[-1].strip().rstrip("/")

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process.stdout.close()
        self._log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class MailchimpEmulator(_Service):
    """The Mailchimp emulator, seeded, with `latency_ms` added to each call."""

    def __init__(self, workdir: Path, seed: dict, latency_ms: float):
        seed_path = write_json(workdir / f"seed-{time.monotonic_ns()}.json", seed)
        super().__init__("pipeline.local.mailchimp_emulator", [
            "--port", "0", "--seed", str(seed_path), "--api-key", API_KEY,
            "--latency-ms", str(latency_ms)], workdir / "mailchimp-emulator.log")
        self.base_url = self.address  # http://127.0.0.1:PORT/3.0
        self._root = self.base_url.rsplit("/3.0", 1)[0]
        self._session = requests.Session()  # kept alive: polled often

    def stats(self) -> dict:
        return self._session.get(f"{self._root}/_emulator/stats", timeout=10).json()

    def requests_to(self, route: str) -> int:
        return self.stats()["requests"].get(route, 0)

    def reset_stats(self) -> None:
        self._session.post(f"{self._root}/_emulator/reset_stats", timeout=10)

    def state(self) -> dict:
        with urllib.request.urlopen(f"{self._root}/_emulator/state", timeout=60) as r:
            return json.load(r)

    def stop(self) -> None:
        self._session.close()
        super().stop()


class PubSubEmulator(_Service):

    def __init__(self, workdir: Path):
        super().__init__("pipeline.local.pubsub_emulator", ["--port", "0"],
                         workdir / "pubsub-emulator.log")
        self.host = self.address  # for PUBSUB_EMULATOR_HOST


def pipeline_command(sync_path: Path, output_dir: Path, base_url: str,
                     *source: str, extra: Sequence[str] = ()) -> list[str]:
    """`python -m pipeline` as a user runs it; `source` is `--input_files
    GLOB` or `--input_subscription S`."""
    return [sys.executable, "-m", "pipeline", "--sync_config", str(sync_path),
            *source, "--output_dir", str(output_dir),
            "--mailchimp_base_url", base_url, *extra]


PIPELINE_ENV = {"MAILCHIMP_API_KEY": API_KEY}
