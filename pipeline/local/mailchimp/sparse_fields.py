"""Mailchimp's sparse answers: the `fields` and `exclude_fields` query
parameters of GET requests, comma-separated dotted paths such as
``members.email_address,total_items``; a path through a list applies to
each of its items."""
from __future__ import annotations

from typing import Any, Mapping

Path = tuple[str, ...]


def sparse(answer: Any, query: Mapping[str, str]) -> Any:
    """`answer` narrowed to `fields` (when given), less `exclude_fields`."""
    fields, excluded = _paths(query.get("fields")), _paths(query.get("exclude_fields"))
    if fields:
        answer = _narrowed(answer, fields, keep_unnamed=False)
    if excluded:
        answer = _narrowed(answer, excluded, keep_unnamed=True)
    return answer


def _paths(spec: str | None) -> list[Path]:
    return [tuple(part.strip().split(".")) for part in (spec or "").split(",") if part.strip()]


def _narrowed(value: Any, paths: list[Path], *, keep_unnamed: bool) -> Any:
    """`fields` keeps only what `paths` name (keep_unnamed=False);
    `exclude_fields` all they do not (True)."""
    if isinstance(value, list):
        return [_narrowed(item, paths, keep_unnamed=keep_unnamed) for item in value]
    if not isinstance(value, dict):
        return value
    kept = {}
    for key, item in value.items():
        below = [path[1:] for path in paths if path[0] == key]
        if not below:
            if keep_unnamed:
                kept[key] = item
        elif () in below:  # the key itself is named: all of it
            if not keep_unnamed:
                kept[key] = item
        else:
            kept[key] = _narrowed(item, below, keep_unnamed=keep_unnamed)
    return kept
