"""WriteOutputs: the outcome files, the run summary and the Beam metrics.

Every outcome is counted here and only here, by its `counts()`: as Beam
metrics under `mailchimp_stream` (totals) and `mailchimp_stream/SYNC` (per
sync), and into summary.json, so both show the same numbers.

Each outcome collection is counted where it is made, and only per-bundle
counts and the lines that go to files travel on: a batch runner holds the
input of a Flatten in memory whole, so flattening every record and outcome
would cost memory in proportion to the input.
"""
from __future__ import annotations

import json
import os
import time
from collections import Counter

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.io.gcp.pubsub import PubsubMessage
from apache_beam.metrics import Metrics
from apache_beam.transforms.window import (FixedWindows, GlobalWindows,
                                           TimestampedValue)

from pipeline.progress import OutcomeTally
from pipeline.summary import WriteSummary
from transforms.records import (NAMESPACE, DeadLetter, Skipped, SkippedValue,
                                UnknownMergeFields, WouldSend)

# Which outcome goes to which file is each outcome type's `file()`.
SKIPPED_FILE = Skipped.FILE
UNKNOWN_MERGE_FIELDS_FILE = UnknownMergeFields.FILE
DEAD_LETTER_FILE = DeadLetter.FILE
FILES = (SKIPPED_FILE, UNKNOWN_MERGE_FIELDS_FILE, DEAD_LETTER_FILE,
         SkippedValue.FILE, WouldSend.FILE)
LINES = "lines"


class _CountAndSortFn(beam.DoFn):
    """Counts outcomes: Beam metrics for a runner's monitoring (a Dataflow
    job shows them live), and per-bundle counts for summary.json (main
    output; the local streaming runner keeps only its first bundle's
    metrics). Outcomes that go to a file leave as (file, JSON line). On a
    local batch run the counts also feed the progress line (pipeline.progress)."""

    def setup(self):
        self._metrics: dict[tuple, list] = {}  # per outcome count, its counters
        self._progress = OutcomeTally()

    def start_bundle(self):
        self._counts: Counter = Counter()

    def _counters(self, sync, name) -> list:
        if (sync, name) not in self._metrics:
            self._metrics[sync, name] = [Metrics.counter(NAMESPACE, name)] + (
                [Metrics.counter(f"{NAMESPACE}/{sync}", name)] if sync else [])
        return self._metrics[sync, name]

    def process(self, outcome):
        counts = outcome.counts()
        for sync, name, n in counts:
            self._counts[sync, name] += n
            for counter in self._counters(sync, name):
                counter.inc(n)
        self._progress.add(counts)
        file = outcome.file()
        if file:
            yield beam.pvalue.TaggedOutput(LINES, (file, outcome.to_json()))

    def finish_bundle(self):
        self._progress.flush()
        if self._counts:
            yield GlobalWindows.windowed_value(self._counts)


def dead_letter_message(line: str) -> PubsubMessage:
    """A dead letter's payload as data, the rest as attributes, so a second
    job can replay the data and route on the attributes."""
    dead = json.loads(line)
    attributes = {"stage": dead["stage"], "reason": dead["reason"],
                  # Pub/Sub caps an attribute value at 1024 bytes.
                  "error": dead["error"].encode()[:1024].decode(errors="ignore")}
    if dead.get("sync"):
        attributes["sync"] = dead["sync"]
    return PubsubMessage(dead["payload"].encode(), attributes)


class _LineSink(fileio.TextSink):
    """Writes the line of a (file, line) pair."""

    def write(self, record):
        super().write(record[1])


class _WriteJsonLines(beam.PTransform):
    """(file, line) pairs -> `output_dir/FILE*.jsonl`: one set of files per
    file name in a batch run; in a streaming run, one per file name and
    window of processing time, all through one WriteToFiles (on the
    DirectRunner every step costs per bundle; WriteToFiles is eight)."""

    def __init__(self, output_dir: str, window_secs: float | None):
        super().__init__()
        self._output_dir, self._window_secs = output_dir, window_secs

    def expand(self, lines):
        if self._window_secs is None:
            by_file = lines | "By file" >> beam.Partition(
                lambda line, _: FILES.index(line[0]), len(FILES))
            for name, pairs in zip(FILES, by_file):
                (pairs
                 | f"{name} lines" >> beam.Map(lambda pair: pair[1])
                 | f"Write {name}" >> beam.io.WriteToText(
                     os.path.join(self._output_dir, name),
                     file_name_suffix=".jsonl"))
            return
        # Lines are stamped with the time they were written: their records'
        # event times may lag the watermark by any amount.
        (lines
         | "Stamp processing time" >> beam.Map(
             lambda pair: TimestampedValue(pair, time.time()))
         | "Window" >> beam.WindowInto(FixedWindows(self._window_secs))
         | "Write" >> fileio.WriteToFiles(
             self._output_dir, shards=1, destination=lambda pair: pair[0],
             sink=lambda _: _LineSink(),
             file_naming=fileio.destination_prefix_naming(".jsonl")))


class WriteOutputs(beam.PTransform):
    """Collections of records and outcomes -> counted into summary.json, and
    JSON-lines files in `output_dir` (skips but not-selected events,
    merge-field reports, dead letters; the rest is only counted); dead
    letters also to `dead_letter_topic` when given. Streaming: files per
    window of `window_secs`, summary.json rewritten every
    `summary_refresh_secs`."""

    def __init__(self, output_dir: str, sync_names: list[str],
                 window_secs: float | None = None,
                 dead_letter_topic: str | None = None,
                 summary_refresh_secs: float | None = None):
        super().__init__()
        self._output_dir, self._sync_names = output_dir, sync_names
        self._window_secs = window_secs
        self._dead_letter_topic = dead_letter_topic
        self._summary_refresh_secs = summary_refresh_secs

    def expand(self, outcomes: dict):
        sorted_ = {label: pcoll | f"Count {label}" >> beam.ParDo(
                       _CountAndSortFn()).with_outputs(LINES, main="counts")
                   for label, pcoll in outcomes.items()}
        (tuple(s.counts for s in sorted_.values())
         | "All counts" >> beam.Flatten()
         | "Summarise" >> WriteSummary(
             self._output_dir, self._sync_names, self._summary_refresh_secs))
        lines = (tuple(s[LINES] for s in sorted_.values())
                 | "All lines" >> beam.Flatten())
        lines | "Write files" >> _WriteJsonLines(self._output_dir, self._window_secs)
        if self._dead_letter_topic:
            (lines
             | "Dead letters" >> beam.Filter(lambda pair: pair[0] == DEAD_LETTER_FILE)
             | "As messages" >> beam.Map(lambda pair: dead_letter_message(pair[1]))
             | "Publish dead letters" >> beam.io.WriteToPubSub(
                 self._dead_letter_topic, with_attributes=True))
