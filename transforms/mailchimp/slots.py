"""MachineSlots: a counting semaphore shared by every process of a machine.

Mailchimp allows 10 simultaneous connections per account, however many
processes a job runs: a local runner with `--direct_num_workers=4` runs four
SDK processes, each with its own threads. A `threading.Semaphore` bounds one
process; this bounds them all. Each slot is a lock file, held with `flock`
on a descriptor of its own, so the kernel frees a slot the moment its holder
exits or is killed: a crashed worker never leaks one.

Limits: one machine. Workers on other machines (Dataflow) are bounded
through the graph instead (see transforms/batching.py); this is then a
harmless per-machine cap. `flock` is POSIX: Linux and macOS.
"""
from __future__ import annotations

import fcntl
import os
import random
import tempfile
import threading
import time
from typing import Optional

_POLL_S = (0.0005, 0.005)  # first and longest wait between tries


class MachineSlots:
    """At most `size` holders at once among all threads and processes of this
    machine that use the same `name` (and `directory`)."""

    def __init__(self, name: str, size: int, directory: Optional[str] = None):
        self.max_connections = size
        folder = os.path.join(directory or tempfile.gettempdir(),
                              "mailchimp-stream-slots", name)
        os.makedirs(folder, exist_ok=True)
        self._paths = [os.path.join(folder, f"slot-{i}") for i in range(size)]
        # This process's own threads queue here rather than poll for files.
        self._local = threading.BoundedSemaphore(size)
        self._held = threading.local()

    def __enter__(self):
        self._local.acquire()
        try:
            self._held.fd = self._take_a_file()
        except BaseException:
            self._local.release()
            raise

    def __exit__(self, *exc):
        os.close(self._held.fd)  # closing the descriptor frees the slot
        self._local.release()

    def _take_a_file(self) -> int:
        wait = _POLL_S[0]
        while True:
            start = random.randrange(len(self._paths))
            for path in self._paths[start:] + self._paths[:start]:
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return fd
                except BlockingIOError:
                    os.close(fd)
                except BaseException:
                    os.close(fd)
                    raise
            # Every slot is held by other processes: wait, a little longer
            # each time, for one of them to finish a request.
            time.sleep(wait)
            wait = min(wait * 2, _POLL_S[1])
