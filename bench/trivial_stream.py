"""python -m bench.trivial_stream: the streaming benchmark's reference.

ReadFromPubSub -> `--steps` no-op Map steps -> a counter, on the same runner
as `python -m pipeline` streaming (BundleBasedDirectRunner), until SIGTERM.
The counter appends each bundle's count, one number a line, to
`--count_file`, which the benchmark reads while it runs.
"""
from __future__ import annotations

import argparse
import signal
import sys
import threading

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions


class _AppendCountFn(beam.DoFn):

    def __init__(self, path: str):
        self._path = path

    def start_bundle(self):
        self._count = 0

    def process(self, message):
        self._count += 1

    def finish_bundle(self):
        if self._count:
            with open(self._path, "a", encoding="utf-8") as f:
                f.write(f"{self._count}\n")


def _same(message):
    return message


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscription", required=True)
    parser.add_argument("--count_file", required=True)
    parser.add_argument("--steps", type=int, default=0)
    parser.add_argument("--max_seconds", type=float, default=3600.0,
                        help="stop by itself after this long")
    args = parser.parse_args(argv)
    pipeline = beam.Pipeline(options=PipelineOptions(
        ["--runner=BundleBasedDirectRunner", "--streaming"]))
    messages = pipeline | "Read" >> beam.io.ReadFromPubSub(
        subscription=args.subscription, with_attributes=True)
    for step in range(args.steps):
        messages = messages | f"Step {step}" >> beam.Map(_same)
    messages | "Count" >> beam.ParDo(_AppendCountFn(args.count_file))
    result = pipeline.run()
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait(args.max_seconds)
    result.cancel()
    return 0


if __name__ == "__main__":
    sys.exit(main())
