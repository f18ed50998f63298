"""--profile DIR: where the time goes, written next to the figures.

A pipeline process is sampled from outside by py-spy (all threads, only
samples holding the GIL, i.e. Python CPU time), installed for the benchmark
when missing like the SDK; an in-process run is profiled with cProfile.
Each profile is written raw and as a short text: the functions with the
most samples of their own, and the most samples in total.
"""
from __future__ import annotations

import cProfile
import collections
import io
import pstats
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable, Optional, TypeVar

from bench.processes import Child

T = TypeVar("T")
TOP = 25


def py_spy() -> str:
    """The py-spy executable beside this interpreter, installed if missing."""
    found = shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if not found:
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet",
                        "py-spy"], check=True, timeout=600)
        found = shutil.which("py-spy", path=str(Path(sys.executable).parent))
    return found


def attach(pid: int, directory: Path, name: str) -> Child:
    """py-spy sampling `pid` until it exits; see `summarise`."""
    directory.mkdir(parents=True, exist_ok=True)
    return Child([py_spy(), "record", "--pid", str(pid), "--gil",
                  "--nolineno", "--rate", "200", "--format", "raw",
                  "--output", str(directory / f"{name}.raw")],
                 directory / f"{name}.py-spy.log")


def summarise(directory: Path, name: str, spy: Child) -> Path:
    """Once the profiled process has exited: the top functions, as text."""
    spy.wait(120)
    own: collections.Counter = collections.Counter()
    total: collections.Counter = collections.Counter()
    samples = 0
    for line in (directory / f"{name}.raw").read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        samples += int(count)
        own[frames[-1]] += int(count)
        for frame in set(frames):
            total[frame] += int(count)

    def block(title: str, counter: collections.Counter) -> list[str]:
        return [title] + [f"{n / samples:6.1%}  {frame}"
                          for frame, n in counter.most_common(TOP)]

    text = "\n".join([f"{name}: {samples} samples holding the GIL"]
                     + block("-- own time", own) + block("-- total time", total))
    path = directory / f"{name}.txt"
    path.write_text(text + "\n")
    return path


def in_process(directory: Optional[Path], name: str, call: Callable[[], T]) -> T:
    """`call()`, under cProfile when `directory` is given."""
    if directory is None:
        return call()
    directory.mkdir(parents=True, exist_ok=True)
    profiler = cProfile.Profile()
    result = profiler.runcall(call)
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(TOP)
    stats.sort_stats("cumulative").print_stats(TOP)
    (directory / f"{name}.txt").write_text(out.getvalue())
    return result
