"""One batch run of `python -m pipeline` against the emulator, timed from
outside: its wall clock, its peak RSS and, when given a count to watch (a
route's requests on the emulator), the rate of that count."""
from __future__ import annotations

import contextlib
import dataclasses
import json
from pathlib import Path
from typing import Callable, Optional, Sequence

from bench import profile as profiling
from bench.common import write_json
from bench.processes import (PIPELINE_ENV, Child, Finished, MailchimpEmulator,
                             pipeline_command)
from bench.progress import Progress, Throughput


@dataclasses.dataclass(frozen=True)
class BatchRun:
    finished: Finished
    summary: dict
    throughput: Optional[Throughput]  # of the watched count


def run_batch(workdir: Path, name: str, emulator: MailchimpEmulator,
              sync: dict, input_path: Path, timeout_s: float, *,
              watch: Optional[Callable[[], int]] = None, target: int = 0,
              extra: Sequence[str] = (), profile: Optional[Path] = None) -> BatchRun:
    """Run the pipeline on `input_path` to completion (exit 0 expected);
    with `profile` (a directory), sampled by py-spy while it runs."""
    sync_path = write_json(workdir / f"{name}-sync.json", sync)
    output_dir = workdir / f"{name}-output"
    command = pipeline_command(sync_path, output_dir, emulator.base_url,
                               "--input_files", str(input_path), extra=extra)
    with contextlib.ExitStack() as stack:
        child = stack.enter_context(
            Child(command, workdir / f"{name}.log", PIPELINE_ENV))
        spy = stack.enter_context(profiling.attach(
            child.pid, profile, name)) if profile else None
        progress = (Progress(watch, target, timeout_s=timeout_s).start(child.started)
                    if watch else None)
        try:
            finished = child.wait(timeout_s).check(f"the pipeline ({name})")
        finally:
            if progress:
                progress.stop()
        if spy:
            profiling.summarise(profile, name, spy)
    summary = json.loads((output_dir / "summary.json").read_text())
    return BatchRun(finished, summary,
                    progress.throughput() if progress else None)
