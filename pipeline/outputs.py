"""WriteOutputs: the outcome files, the run summary and the Beam metrics.

Every outcome is counted here and only here, by `outcome_counts`: as Beam
metrics under `mailchimp_stream` (totals) and `mailchimp_stream/SYNC` (per
sync), and into summary.json, so both show the same numbers.
"""
from __future__ import annotations

import os
import time

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.io.gcp.pubsub import PubsubMessage
from apache_beam.metrics import Metrics
from apache_beam.transforms.window import FixedWindows, TimestampedValue

from pipeline.summary import WriteSummary, outcome_counts
from transforms.plan import NOT_SELECTED
from transforms.records import NAMESPACE, DeadLetter, Skipped, UnknownMergeFields

SKIPPED_FILE = "skipped_members"
UNKNOWN_MERGE_FIELDS_FILE = "unknown_merge_fields"
DEAD_LETTER_FILE = "dead_letter"
FILES = (SKIPPED_FILE, UNKNOWN_MERGE_FIELDS_FILE, DEAD_LETTER_FILE)


class _CountAndSortFn(beam.DoFn):
    """Beam metrics for each outcome, for a runner's monitoring (a Dataflow
    job shows them live), and the outcomes that go to a file, by file.
    (summary.json is counted by WriteSummary: the local streaming runner
    keeps only its first bundle's metrics.)"""

    def process(self, outcome):
        for sync, name in outcome_counts(outcome):
            Metrics.counter(NAMESPACE, name).inc()
            if sync:
                Metrics.counter(f"{NAMESPACE}/{sync}", name).inc()
        if isinstance(outcome, Skipped) and outcome.reason != NOT_SELECTED:
            yield beam.pvalue.TaggedOutput(SKIPPED_FILE, outcome)
        elif isinstance(outcome, UnknownMergeFields):
            yield beam.pvalue.TaggedOutput(UNKNOWN_MERGE_FIELDS_FILE, outcome)
        elif isinstance(outcome, DeadLetter):
            yield beam.pvalue.TaggedOutput(DEAD_LETTER_FILE, outcome)


def dead_letter_message(dead: DeadLetter) -> PubsubMessage:
    """The payload as data, the rest as attributes, so a second job can
    replay the data and route on the attributes."""
    attributes = {"stage": dead.stage, "reason": dead.reason,
                  # Pub/Sub caps an attribute value at 1024 bytes.
                  "error": dead.error.encode()[:1024].decode(errors="ignore")}
    if dead.sync:
        attributes["sync"] = dead.sync
    return PubsubMessage(dead.payload.encode(), attributes)


class _LineSink(fileio.TextSink):
    """Writes the line of a (file name, line) pair."""

    def write(self, record):
        super().write(record[1])


class _WriteJsonLines(beam.PTransform):
    """{file name: outcomes} -> `output_dir/NAME*.jsonl`: one set of files per
    name in a batch run; in a streaming run, one per name and window of
    processing time, all through one WriteToFiles (on the DirectRunner every
    step costs per bundle, and WriteToFiles is eight of them)."""

    def __init__(self, output_dir: str, window_secs: float | None):
        super().__init__()
        self._output_dir, self._window_secs = output_dir, window_secs

    def expand(self, files):
        if self._window_secs is None:
            for name, outcomes in files.items():
                (outcomes
                 | f"{name} to JSON" >> beam.Map(lambda o: o.to_json())
                 | f"Write {name}" >> beam.io.WriteToText(
                     os.path.join(self._output_dir, name),
                     file_name_suffix=".jsonl"))
            return
        # Outcomes are stamped with the time they happened: their records'
        # event times may lag the watermark by any amount.
        lines = [outcomes | f"{name} to JSON" >> beam.Map(
                     lambda o, name=name: TimestampedValue(
                         (name, o.to_json()), time.time()))
                 for name, outcomes in files.items()]
        (lines
         | "All lines" >> beam.Flatten()
         | "Window" >> beam.WindowInto(FixedWindows(self._window_secs))
         | "Write" >> fileio.WriteToFiles(
             self._output_dir, shards=1, destination=lambda line: line[0],
             sink=lambda _: _LineSink(),
             file_naming=fileio.destination_prefix_naming(".jsonl")))


class WriteOutputs(beam.PTransform):
    """Records and every outcome -> counted into summary.json, and JSON-lines
    files in `output_dir` (skips but not-selected events, merge-field reports,
    dead letters; the rest is only counted); dead letters also to
    `dead_letter_topic` when given.
    Streaming: files per window of `window_secs`, summary.json rewritten
    every `summary_refresh_secs`."""

    def __init__(self, output_dir: str, sync_names: list[str],
                 window_secs: float | None = None,
                 dead_letter_topic: str | None = None,
                 summary_refresh_secs: float | None = None):
        super().__init__()
        self._output_dir, self._sync_names = output_dir, sync_names
        self._window_secs = window_secs
        self._dead_letter_topic = dead_letter_topic
        self._summary_refresh_secs = summary_refresh_secs

    def expand(self, outcomes):
        outcomes | "Summarise" >> WriteSummary(
            self._output_dir, self._sync_names, self._summary_refresh_secs)
        files = outcomes | "Count and sort" >> beam.ParDo(
            _CountAndSortFn()).with_outputs(*FILES)
        {name: files[name] for name in FILES} | "Write files" >> _WriteJsonLines(
            self._output_dir, self._window_secs)
        if self._dead_letter_topic:
            (files[DEAD_LETTER_FILE]
             | "Dead letters as messages" >> beam.Map(dead_letter_message)
             | "Publish dead letters" >> beam.io.WriteToPubSub(
                 self._dead_letter_topic, with_attributes=True))
