"""Memory of a backfill: the peak RSS of `python -m pipeline` (its own
process; the emulator runs in another, so its memory is not counted) on a
generated file of R records, and on R/4, to see whether it grows with the
input. No latency: the run goes as fast as this machine allows.

The backfill: 100,000 users in a scattered order, every one upserted as a
member with two merge fields, 1 in 40 records a purchase sent as an event,
1 in 50 anonymous.
"""
from __future__ import annotations

from bench import data
from bench.common import Result, Settings, Workdir, write_jsonl
from bench.processes import MailchimpEmulator
from bench.runs import BatchRun, run_batch

NAME = "memory"
USERS = 100_000
LIMIT_MIB = 1024.0
FLAT = 1.25  # peak growth allowed for 4x the input


def _backfill(settings: Settings, records: int) -> BatchRun:
    with Workdir(f"{NAME}-{records}") as workdir, MailchimpEmulator(
            workdir, data.seed(0), latency_ms=0) as emulator:
        path = write_jsonl(workdir / "backfill.jsonl",
                           data.backfill(records, min(USERS, records)))
        return run_batch(workdir, f"backfill-{records}", emulator,
                         data.backfill_sync(), path, settings.timeout_s)


def _mib(run: BatchRun) -> float:
    return run.finished.peak_rss_bytes / 2**20


def run(settings: Settings) -> list[Result]:
    large = settings.backfill_records
    small = large // 4
    runs = {n: _backfill(settings, n) for n in (small, large)}

    def note(n: int) -> str:
        summary = runs[n].summary
        return (f"{n:,} records in {runs[n].finished.wall_s:.0f} s "
                f"({n / runs[n].finished.wall_s:,.0f} records/s); "
                f"{summary['members']['upserted']:,} member upserts, "
                f"{summary['events']['delivered']:,} events delivered, "
                f"{sum(summary['members']['skipped'].values()):,} skipped")

    return [
        Result(NAME, f"peak RSS, {large:,} records", _mib(runs[large]), "MiB",
               "limit", LIMIT_MIB, at_most=LIMIT_MIB, note=note(large)),
        Result(NAME, f"peak RSS, {small:,} records", _mib(runs[small]), "MiB",
               "limit", LIMIT_MIB, at_most=LIMIT_MIB, note=note(small)),
        Result(NAME, "peak RSS growth for 4x the input",
               _mib(runs[large]) / _mib(runs[small]), "x", "flat", 1.0,
               at_most=FLAT),
    ]
