"""Transform cost: the product's rules on the local batch runner, without
Mailchimp. The chain is the one `python -m pipeline` applies (the same
ReadRecords, then `ParseRecords` and `ApplySync` for each sync) with the sink
replaced by a counter; the reference is a trivial pipeline over the same
file: the same ReadRecords, json.loads, a filter, the same counter.

Both run in this process on FnApiRunner. Each is timed on the file and on
its first 1,000 records; the difference is the marginal cost, free of
start-up (records/s = extra records / extra seconds).
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions

from bench import data
from bench import profile as profiling
from bench.common import Result, Settings, Workdir, write_jsonl
from pipeline.config import parse_config
from pipeline.sources import ReadRecords
from transforms.parse import ParseRecords
from transforms.rules import ApplySync

NAME = "transforms"
NAMESPACE = "bench"
SMALL = 1000
USERS = 100_000


class _CountFn(beam.DoFn):
    """Counts what reaches it; one metric update per bundle."""

    def __init__(self, name: str):
        self._name = name

    def start_bundle(self):
        self._count = 0

    def process(self, element):
        self._count += 1

    def finish_bundle(self):
        Metrics.counter(NAMESPACE, self._name).inc(self._count)


def _count(pcoll, name: str) -> None:
    pcoll | f"Count {name}" >> beam.ParDo(_CountFn(name))


def _rules(raw) -> None:
    """ParseRecords, then ApplySync per sync; every output counted."""
    config = parse_config(data.backfill_sync())
    parsed = raw | "Parse records" >> ParseRecords()
    _count(parsed.dead_letter, "dead letters")
    for sync in config.enabled:
        rules = parsed.records | f"Sync {sync.name}" >> ApplySync(sync)
        _count(rules.main, "requests")
        _count(rules.skipped, "skipped")


def _json_objects(line):
    try:
        yield json.loads(line.data)
    except ValueError:
        pass


def _trivial(raw) -> None:
    identified = (raw
                  | "json.loads" >> beam.FlatMap(_json_objects)
                  | "Identified" >> beam.Filter(
                      lambda r: isinstance(r, dict) and bool(r.get("user_id"))))
    _count(identified, "records")


def _timed(path: Path, build: Callable) -> tuple[float, dict[str, int]]:
    pipeline = beam.Pipeline(runner="FnApiRunner", options=PipelineOptions([]))
    build((pipeline | "Read records" >> ReadRecords(str(path))).records)
    started = time.perf_counter()
    result = pipeline.run()
    result.wait_until_finish()
    seconds = time.perf_counter() - started
    counters = result.metrics().query(
        MetricsFilter().with_namespace(NAMESPACE))["counters"]
    return seconds, {c.key.metric.name: c.committed for c in counters}


def run(settings: Settings) -> list[Result]:
    count = settings.transform_records
    rates, notes = {}, {}
    with Workdir(NAME) as workdir:
        # Record i is the same whatever the count: `small` is large's start.
        large = write_jsonl(workdir / "records.jsonl", data.backfill(count, USERS))
        small = write_jsonl(workdir / "first.jsonl", data.backfill(SMALL, USERS))
        for name, build in (("trivial", _trivial), ("rules", _rules)):
            base, _ = _timed(small, build)
            seconds, counters = _timed(large, build)
            if name == "rules" and settings.profile:  # a third run: cProfile slows it
                profiling.in_process(settings.profile, "transforms-rules",
                                     lambda: _timed(large, build))
            rates[name] = (count - SMALL) / (seconds - base)
            notes[name] = (f"{count:,} records: {seconds:.1f} s, of which "
                           f"start-up ~{base:.1f} s (the run on {SMALL:,}); "
                           f"counted {counters}")
    return [
        Result(NAME, "parse + rules, net of start-up", rates["rules"],
               "records/s", "trivial pipeline", rates["trivial"], target=0.5,
               note=notes["rules"]),
        Result(NAME, "trivial: json.loads + filter", rates["trivial"],
               "records/s", "", None, note=notes["trivial"]),
    ]
