"""make demo: the whole job, end to end, on the embedded stand-ins.

Starts the Mailchimp emulator (seeded audiences) as its own process, runs
`python -m pipeline` on the bundled example data as a user would, then shows
the run summary and what the emulator received.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

DATA = Path(__file__).parent / "data"
DEMO_KEY = "demo0123456789abcdef-us1"  # the emulator's key; not a real one


class Emulator:
    """`python -m pipeline.local.mailchimp_emulator` in a child process."""

    def __init__(self, *args: str):
        env = {**os.environ, "MAILCHIMP_API_KEY": DEMO_KEY}
        self._process = subprocess.Popen(
            [sys.executable, "-m", "pipeline.local.mailchimp_emulator",
             "--port", "0", "--seed", str(DATA / "seed.json"), *args],
            stdout=subprocess.PIPE, text=True, env=env)
        line = self._process.stdout.readline()
        if "listening on" not in line:
            self._process.kill()
            raise RuntimeError(f"the Mailchimp emulator did not start: {line!r}")
        self.base_url = line.rsplit(" ", 1)[-1].strip().rstrip("/")

    def stats(self) -> dict:
        root = self.base_url.rsplit("/3.0", 1)[0]
        with urllib.request.urlopen(f"{root}/_emulator/stats") as answer:
            return json.load(answer)

    def stop(self) -> None:
        self._process.terminate()
        self._process.wait(timeout=10)


def run_pipeline(base_url: str, output_dir: Path, extra: list[str]) -> int:
    env = {**os.environ, "MAILCHIMP_API_KEY": DEMO_KEY}
    return subprocess.call(
        [sys.executable, "-m", "pipeline",
         "--sync_config", str(DATA / "sync.json"),
         "--input_files", str(DATA / "input" / "*"),
         "--output_dir", str(output_dir),
         "--mailchimp_base_url", base_url, *extra], env=env)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output_dir", default="demo-output")
    parser.add_argument("--latency_ms", default="0")
    args, extra = parser.parse_known_args(argv)
    output_dir = Path(args.output_dir)
    emulator = Emulator("--latency-ms", args.latency_ms)
    try:
        print(f"Mailchimp emulator at {emulator.base_url}; running the pipeline "
              f"on the records in {DATA / 'input'}\n", flush=True)
        status = run_pipeline(emulator.base_url, output_dir, extra)
        stats = emulator.stats()
    finally:
        emulator.stop()
    print(f"\nThe emulator answered {sum(stats['requests'].values())} API "
          f"requests, never more than {stats['max_in_flight']} at once "
          f"(Mailchimp's limit: 10):")
    for route, count in sorted(stats["requests"].items()):
        print(f"  {count:6d}  {route}")
    return status


if __name__ == "__main__":
    sys.exit(main())
