"""WriteOutputs: the outcome files and the Beam metrics the summary is made of.

Every outcome is counted here and only here, under `mailchimp_stream`
(totals) and `mailchimp_stream/SYNC` (per sync), so summary.json and the
metrics a Dataflow job shows are the same numbers.
"""
from __future__ import annotations

import json
import os
from collections import Counter
from typing import Iterable

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter

from transforms.plan import NOT_SELECTED
from transforms.records import (NAMESPACE, DeadLetter, Delivered, Skipped,
                                UnknownMergeFields)

OUTCOME_FILES = ("skipped_members", "unknown_merge_fields", "dead_letter")
_SECTION = {"event": "events", "member": "members"}


def outcome_metrics(outcome) -> Iterable[tuple[str | None, str]]:
    """(sync or None, metric name) for each count an outcome adds to."""
    if isinstance(outcome, Delivered):
        name = "events.delivered" if outcome.kind == "event" else "members.upserted"
        return [(outcome.sync, name)]
    if isinstance(outcome, Skipped):
        return [(outcome.sync, f"{_SECTION[outcome.kind]}.skipped.{outcome.reason}")]
    if isinstance(outcome, DeadLetter):
        names = ["dead_letter", f"dead_letter.{outcome.reason}"]
        if outcome.stage != "parse":
            names.append(f"{outcome.stage}.dead_letter")
        return [(outcome.sync, n) for n in names]
    if isinstance(outcome, UnknownMergeFields):
        return [(outcome.sync, f"unknown_merge_fields.{tag}")
                for tag in outcome.fields] + [
            (outcome.sync, f"invalid_merge_fields.{tag}")
            for tag in outcome.invalid]
    raise TypeError(f"not an outcome: {outcome!r}")


class _CountFn(beam.DoFn):

    def process(self, outcome):
        for sync, name in outcome_metrics(outcome):
            Metrics.counter(NAMESPACE, name).inc()
            if sync:
                Metrics.counter(f"{NAMESPACE}/{sync}", name).inc()
        yield outcome


class WriteOutputs(beam.PTransform):
    """{"delivered", "skipped", "unknown_merge_fields", "dead_letter"} ->
    counted, and JSON-lines files in `output_dir` (all but delivered and
    not-selected events, which are only counted)."""

    def __init__(self, output_dir: str):
        super().__init__()
        self._output_dir = output_dir

    def expand(self, outcomes):
        counted = {name: pcoll | f"Count {name}" >> beam.ParDo(_CountFn())
                   for name, pcoll in outcomes.items()}
        files = {
            "skipped_members": counted["skipped"] | "Drop not selected" >>
            beam.Filter(lambda s: s.reason != NOT_SELECTED),
            "unknown_merge_fields": counted["unknown_merge_fields"],
            "dead_letter": counted["dead_letter"],
        }
        for name, pcoll in files.items():
            (pcoll
             | f"{name} to JSON" >> beam.Map(lambda o: o.to_json())
             | f"Write {name}" >> beam.io.WriteToText(
                 os.path.join(self._output_dir, name), file_name_suffix=".jsonl"))
        return counted


def _section(counts: Counter, prefix: str, done: str) -> dict:
    skipped = {k[len(prefix) + 9:]: v for k, v in counts.items()
               if k.startswith(f"{prefix}.skipped.")}
    return {done: counts.get(f"{prefix}.{done}", 0),
            "skipped": dict(sorted(skipped.items())),
            "dead_letter": counts.get(f"{prefix}.dead_letter", 0)}


def _by_tag(counts: Counter, prefix: str) -> dict:
    return dict(sorted((k[len(prefix) + 1:], v) for k, v in counts.items()
                       if k.startswith(prefix + ".")))


def _summarise(counts: Counter) -> dict:
    return {
        "events": _section(counts, "events", "delivered"),
        "members": _section(counts, "members", "upserted"),
        "unknown_merge_fields": _by_tag(counts, "unknown_merge_fields"),
        "invalid_merge_fields": _by_tag(counts, "invalid_merge_fields"),
        "dead_letter": counts.get("dead_letter", 0),
        "dead_letter_by_reason": _by_tag(counts, "dead_letter"),
    }


def summary_from_metrics(result, sync_names: Iterable[str]) -> dict:
    """summary.json (MISSION.md's shape, plus per-sync figures)."""
    by_namespace: dict[str, Counter] = {}
    for counter in result.metrics().query(MetricsFilter())["counters"]:
        namespace = counter.key.metric.namespace
        if namespace == NAMESPACE or namespace.startswith(NAMESPACE + "/"):
            value = counter.committed if counter.committed is not None else counter.attempted
            by_namespace.setdefault(namespace, Counter())[
                counter.key.metric.name] += value
    totals = by_namespace.get(NAMESPACE, Counter())
    summary = {"records_in": totals.get("records_in", 0), **_summarise(totals)}
    summary["syncs"] = {
        name: _summarise(by_namespace.get(f"{NAMESPACE}/{name}", Counter()))
        for name in sync_names}
    return summary


def write_summary(summary: dict, output_dir: str) -> str:
    path = os.path.join(output_dir, "summary.json")
    os.makedirs(output_dir, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2, sort_keys=False)
        f.write("\n")
    return path
