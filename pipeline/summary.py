"""The run summary: summary.json from what each outcome counts for (its
`counts()`, transforms.records).

Counted inside the pipeline (counts per bundle, summed by a global
combine), not read back from Beam metrics: the local streaming runner keeps only its first bundle's metrics,
and a streaming job has no end at which to read them. A batch run writes
summary.json once, at the end; a streaming run rewrites it with running
totals every `refresh_secs`.
"""
from __future__ import annotations

import json
from collections import Counter
from typing import Iterable, Optional

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.transforms import trigger, window

SUMMARY_FILE = "summary.json"


def _section(counts: Counter, prefix: str, done: str) -> dict:
    skipped = {k[len(f"{prefix}.skipped."):]: v for k, v in counts.items()
               if k.startswith(f"{prefix}.skipped.")}
    return {done: counts.get(f"{prefix}.{done}", 0),
            "skipped": dict(sorted(skipped.items())),
            "dead_letter": counts.get(f"{prefix}.dead_letter", 0)}


def _by_key(counts: Counter, prefix: str) -> dict:
    return dict(sorted((k[len(prefix) + 1:], v) for k, v in counts.items()
                       if k.startswith(prefix + ".")))


def _figures(counts: Counter) -> dict:
    return {
        "events": _section(counts, "events", "delivered"),
        "members": _section(counts, "members", "upserted"),
        "cohorts": _section(counts, "cohorts", "delivered"),
        "unknown_merge_fields": _by_key(counts, "unknown_merge_fields"),
        "invalid_merge_fields": _by_key(counts, "invalid_merge_fields"),
        "skipped_values": _by_key(counts, "skipped_values"),
        "dead_letter": counts.get("dead_letter", 0),
        "dead_letter_by_reason": _by_key(counts, "dead_letter"),
    }


def summarise(counts: Counter, sync_names: Iterable[str]) -> dict:
    """summary.json: MISSION.md's shape, plus per-sync figures."""
    totals: Counter = Counter()
    per_sync: dict[str, Counter] = {name: Counter() for name in sync_names}
    for (sync, name), n in counts.items():
        totals[name] += n
        if sync is not None:
            per_sync.setdefault(sync, Counter())[name] += n
    return {"records_in": totals.get("records_in", 0),
            "duplicates": totals.get("duplicates", 0), **_figures(totals),
            "syncs": {name: _figures(c) for name, c in per_sync.items()}}


def empty_summary(sync_names: Iterable[str]) -> dict:
    return summarise(Counter(), sync_names)


def add_summaries(a: dict, b: dict) -> dict:
    """The summary of two runs' outcomes together. Exact, because every
    figure of a summary is a sum of counts."""
    total = dict(a)
    for key, value in b.items():
        if isinstance(value, dict):
            total[key] = add_summaries(a.get(key, {}), value)
        else:
            total[key] = a.get(key, 0) + value
    return total


def write_summary(summary: dict, output_dir: str) -> str:
    path = FileSystems.join(output_dir, SUMMARY_FILE)
    with FileSystems.create(path) as f:
        f.write(json.dumps(summary, indent=2).encode() + b"\n")
    return path


def read_summary(output_dir: str) -> Optional[dict]:
    path = FileSystems.join(output_dir, SUMMARY_FILE)
    if not FileSystems.exists(path):
        return None
    with FileSystems.open(path) as f:
        return json.loads(f.read())


class _SumCounts(beam.CombineFn):

    def create_accumulator(self):
        return Counter()

    def add_input(self, counts, more):
        counts.update(more)
        return counts

    def merge_accumulators(self, accumulators):
        merged = Counter()
        for counts in accumulators:
            merged.update(counts)
        return merged

    def extract_output(self, counts):
        return counts


class WriteSummary(beam.PTransform):
    """Counters of (sync, name) -> output_dir/summary.json."""

    def __init__(self, output_dir: str, sync_names: list[str],
                 refresh_secs: Optional[float] = None):
        super().__init__()
        self._output_dir, self._sync_names = output_dir, list(sync_names)
        self._refresh_secs = refresh_secs

    def expand(self, partial_counts):
        if self._refresh_secs is None:
            counts = partial_counts | "Sum" >> beam.CombineGlobally(_SumCounts())
        else:
            counts = (partial_counts
                      | "Running totals" >> beam.WindowInto(
                          window.GlobalWindows(),
                          trigger=trigger.Repeatedly(
                              trigger.AfterProcessingTime(self._refresh_secs)),
                          accumulation_mode=trigger.AccumulationMode.ACCUMULATING)
                      | "Sum" >> beam.CombineGlobally(_SumCounts()).without_defaults())
        output_dir, sync_names = self._output_dir, self._sync_names
        return counts | "Write summary.json" >> beam.Map(
            lambda c: write_summary(summarise(c, sync_names), output_dir))
