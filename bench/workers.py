"""Member events with four worker processes (`--direct_num_workers=4
--direct_running_mode=multi_processing`) on eight input files: the job's
ten connections are shared by the processes (MachineSlots), so the best
possible rate is still 10/L, and the emulator must never see an 11th
request in flight (it would answer 429).
"""
from __future__ import annotations

from bench import data
from bench.common import (MAILCHIMP_CONNECTIONS, Result, Settings,
                          Workdir, write_jsonl)
from bench.processes import EVENTS_ROUTE, MailchimpEmulator
from bench.runs import run_batch

NAME = "workers"
MEMBERS = 1000
PROCESSES, FILES = 4, 8


def run(settings: Settings) -> list[Result]:
    per_file = settings.events // FILES
    with Workdir(NAME) as workdir, MailchimpEmulator(
            workdir, data.seed(MEMBERS), settings.latency_ms) as emulator:
        inputs = workdir / "in"
        inputs.mkdir()
        purchases = list(data.purchases(per_file * FILES, MEMBERS))
        for n in range(FILES):
            write_jsonl(inputs / f"part-{n}.jsonl",
                        purchases[n * per_file:(n + 1) * per_file])
        pipeline_run = run_batch(
            workdir, NAME, emulator, data.events_sync(), inputs / "*.jsonl",
            settings.timeout_s, watch=lambda: emulator.requests_to(EVENTS_ROUTE),
            target=per_file * FILES,
            extra=["--batch_size", str(settings.batch_size),
                   f"--direct_num_workers={PROCESSES}",
                   "--direct_running_mode=multi_processing"])
        stats = emulator.stats()
    delivered = pipeline_run.summary["events"]["delivered"]
    ceiling = MAILCHIMP_CONNECTIONS / settings.latency_s
    note = (f"{delivered}/{per_file * FILES} delivered; peak in flight "
            f"{stats['max_in_flight']}, {stats['rejected_429_limit']} refused "
            f"over the limit")
    return [Result(NAME, f"pipeline, {PROCESSES} processes, steady state",
                   pipeline_run.throughput.steady_per_s, "events/s",
                   f"ceiling 10/L, L={settings.latency_ms:g} ms", ceiling,
                   target=0.8, note=note)]
