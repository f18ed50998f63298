"""The result table, as text for the terminal (Markdown, so it pastes into
docs/benchmarks.md as it is)."""
from __future__ import annotations

import os
from typing import Optional, Sequence

from bench.common import Result

COLUMNS = ("benchmark", "figure", "value", "unit", "reference", "ratio",
           "target", "met?")


def _number(value: Optional[float]) -> str:
    if value is None:
        return "—"
    if value != value:  # NaN
        return "n/a"
    if isinstance(value, int):  # a count
        return f"{value:,}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    if 0 < abs(value) < 0.1:
        return f"{value:.2g}"
    return f"{value:.2f}"


def _target(result: Result) -> str:
    if result.at_most is not None:
        return f"≤ {_number(result.at_most)} {result.unit}"
    return "—" if result.target is None else f"≥ {result.target:g}"


def _met(result: Result) -> str:
    return {True: "yes", False: "NO", None: ""}[result.met]


def row(result: Result) -> tuple[str, ...]:
    reference = result.reference
    if result.reference_value is not None:
        reference += f" = {_number(result.reference_value)}"
    return (result.benchmark, result.figure, _number(result.value), result.unit,
            reference, _number(result.ratio), _target(result), _met(result))


def table(results: Sequence[Result]) -> str:
    rows = [COLUMNS] + [row(r) for r in results]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]

    def line(cells):
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"

    separator = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(rows[0]), separator] + [line(r) for r in rows[1:]])


def notes(results: Sequence[Result]) -> str:
    return "\n".join(
        f"- {r.benchmark}, {r.figure}"
        + (f" (vs {r.reference})" if r.reference else "") + f": {r.note}"
        for r in results if r.note)


def machine() -> str:
    """Cores and memory, as nproc and free report them."""
    pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return f"{os.cpu_count()} cores, {pages / 2**30:.1f} GiB memory"
