"""python -m bench: every benchmark in one invocation, then one table.

    python -m bench                       # the full run (about 6 minutes)
    python -m bench --quick               # smaller inputs (about 2 minutes)
    python -m bench --profile-dir prof    # and where the time goes
    python -m bench --latency-ms 100 --only events,calls
    python -m bench --members-latency-ms 200 --only members
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
import time
import traceback
from pathlib import Path

from bench import calls, events, members, memory, report, streaming, transforms, workers
from bench import profile as profiling
from bench.common import Result, Settings

BENCHMARKS = {"events": events.run, "workers": workers.run, "members": members.run,
              "calls": calls.run, "transforms": transforms.run,
              "memory": memory.run, "streaming": streaming.run}
QUICK = Settings(events=1200, sdk_calls=50, members=10_000,
                 calls_records=10_000, calls_users=1_000,
                 transform_records=50_000, backfill_records=200_000,
                 stream_messages=1000, stream_members=20_000)


def _parse(argv: list[str]) -> tuple[Settings, list[str], argparse.Namespace]:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="smaller inputs everywhere (flags given still win)")
    parser.add_argument("--only", default=",".join(BENCHMARKS),
                        help=f"comma-separated subset of {','.join(BENCHMARKS)}")
    parser.add_argument("--json", type=Path, help="also write the results here")
    flags = {"latency_ms": "per-call latency the emulator adds (ms), "
                           "for every benchmark but members",
             "members_latency_ms": "per-call latency of the members benchmark (ms)",
             "events": "events through the pipeline",
             "sdk_calls": "calls of each official-SDK baseline",
             "members": "members through the pipeline, new then existing",
             "batch_size": "--batch_size passed to the pipeline",
             "calls_records": "records of the calls-per-backfill run",
             "calls_users": "users of the calls-per-backfill run (its "
                            "records come back to each in turn)",
             "transform_records": "records through the transform chain",
             "backfill_records": "records of the memory backfill (also run at 1/4)",
             "stream_messages": "events of new users pre-published for the "
                                "streaming events run",
             "stream_members": "new users pre-published for the streaming "
                               "members run (L = 500 ms)",
             "timeout_s": "bound on any one pipeline run (s)",
             "profile_dir": "profile the runs that miss their target (py-spy, "
                            "cProfile) into this directory"}
    for field in dataclasses.fields(Settings):
        parser.add_argument("--" + field.name.replace("_", "-"),
                            type=type(field.default),
                            help=f"{flags[field.name]} (default {field.default!r}, "
                                 f"--quick {getattr(QUICK, field.name)!r})")
    args = parser.parse_args(argv)
    base = QUICK if args.quick else Settings()
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(Settings)
             if getattr(args, f.name) is not None}
    only = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = set(only) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    return dataclasses.replace(base, **given), only, args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    settings, only, args = _parse(argv)
    print(f"python -m bench {shlex.join(argv)}".rstrip())
    print(f"machine: {report.machine()}; {settings}", flush=True)
    if settings.profile:
        profiling.py_spy()
    results: list[Result] = []
    failed = []
    for name in only:
        started = time.perf_counter()
        print(f"\n[{name}] running ...", flush=True)
        try:
            found = BENCHMARKS[name](settings)
        except Exception:  # one broken benchmark must not hide the others
            traceback.print_exc()
            failed.append(name)
            continue
        results += found
        print(report.table(found), flush=True)
        print(f"[{name}] {time.perf_counter() - started:.0f} s", flush=True)
    print("\n" + report.table(results))
    if report.notes(results):
        print("\n" + report.notes(results))
    if args.json:
        args.json.write_text(json.dumps({
            "command": f"python -m bench {shlex.join(argv)}".rstrip(),
            "machine": report.machine(), "settings": dataclasses.asdict(settings),
            "results": [r.as_dict() for r in results]}, indent=1) + "\n")
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
