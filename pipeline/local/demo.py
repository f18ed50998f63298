"""make demo: the whole job, end to end, on the embedded stand-ins.

Starts the Mailchimp emulator (seeded audiences) as its own process, runs
`python -m pipeline` on the bundled example data as a user would, then shows
the run summary and what the emulator received.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

DATA = Path(__file__).parent / "data"
DEMO_KEY = "demo0123456789abcdef-us1"  # the emulator's key; not a real one


class Service:
    """A stand-in (`python -m MODULE ...`) in a child process; `address` is
    the last word of the one line it prints when it listens."""

    def __init__(self, module: str, *args: str):
        self._process = subprocess.Popen(
            [sys.executable, "-m", module, "--port", "0", *args],
            stdout=subprocess.PIPE, text=True,
            env={**os.environ, "MAILCHIMP_API_KEY": DEMO_KEY})
        line = self._process.stdout.readline()
        if "listening on" not in line:
            self._process.kill()
            raise RuntimeError(f"{module} did not start: {line!r}")
        self.address = line.rsplit(" ", 1)[-1].strip().rstrip("/")

    def stop(self) -> None:
        self._process.terminate()
        self._process.wait(timeout=10)


def start_mailchimp(latency_ms: str = "0") -> Service:
    return Service("pipeline.local.mailchimp_emulator",
                   "--seed", str(DATA / "seed.json"), "--latency-ms", latency_ms)


def mailchimp_stats(mailchimp: Service) -> dict:
    root = mailchimp.address.rsplit("/3.0", 1)[0]
    with urllib.request.urlopen(f"{root}/_emulator/stats") as answer:
        return json.load(answer)


def show_mailchimp_stats(stats: dict) -> None:
    print(f"\nThe emulator answered {sum(stats['requests'].values())} API "
          f"requests, never more than {stats['max_in_flight']} at once "
          f"(Mailchimp's limit: 10):")
    for route, count in sorted(stats["requests"].items()):
        print(f"  {count:6d}  {route}")


def pipeline_command(base_url: str, output_dir: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "pipeline",
            "--sync_config", str(DATA / "sync.json"),
            "--output_dir", str(output_dir),
            "--mailchimp_base_url", base_url, *args]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output_dir", default="demo-output")
    parser.add_argument("--latency_ms", default="0")
    args, extra = parser.parse_known_args(argv)
    shutil.rmtree(args.output_dir, ignore_errors=True)  # files of an older run
    mailchimp = start_mailchimp(args.latency_ms)
    try:
        print(f"Mailchimp emulator at {mailchimp.address}; running the pipeline "
              f"on the records in {DATA / 'input'}\n", flush=True)
        status = subprocess.call(
            pipeline_command(mailchimp.address, Path(args.output_dir),
                             "--input_files", str(DATA / "input" / "*"), *extra),
            env={**os.environ, "MAILCHIMP_API_KEY": DEMO_KEY})
        show_mailchimp_stats(mailchimp_stats(mailchimp))
    finally:
        mailchimp.stop()
    return status


if __name__ == "__main__":
    sys.exit(main())
