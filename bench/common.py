"""What every benchmark shares: the settings, one row of the result table,
and the scratch directory each benchmark works in."""
from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable, Optional

API_KEY = "bench0123456789abcdef-us1"  # the emulator's key; not a real one
AUDIENCE = "benchaud01"
MAILCHIMP_CONNECTIONS = 10  # Mailchimp's simultaneous connections per user
BATCH_SUBSCRIBE_SIZE = 500  # members per batch-subscribe call


@dataclasses.dataclass(frozen=True)
class Settings:
    """The command line, as every benchmark sees it."""
    latency_ms: float = 50.0
    members_latency_ms: float = 500.0  # the members benchmark's own L
    events: int = 6000
    sdk_calls: int = 200
    members: int = 50_000
    batch_size: int = 5000
    calls_records: int = 50_000
    calls_users: int = 5_000
    transform_records: int = 200_000
    backfill_records: int = 1_000_000
    stream_messages: int = 4000
    stream_members: int = 100_000
    timeout_s: float = 1800.0  # bound on any one pipeline run
    profile_dir: str = ""  # where profiles go; none when empty

    @property
    def latency_s(self) -> float:
        return self.latency_ms / 1000.0

    @property
    def members_latency_s(self) -> float:
        return self.members_latency_ms / 1000.0

    @property
    def profile(self) -> Optional[Path]:
        return Path(self.profile_dir).resolve() if self.profile_dir else None


@dataclasses.dataclass(frozen=True)
class Result:
    """One row of the table: a figure compared with a reference.

    `target` is the lowest acceptable ratio (None: shown for information).
    """
    benchmark: str
    figure: str
    value: float
    unit: str
    reference: str
    reference_value: Optional[float]
    target: Optional[float] = None
    note: str = ""
    # Targets that are upper bounds (memory) compare the value, not the ratio.
    at_most: Optional[float] = None

    @property
    def ratio(self) -> Optional[float]:
        if not self.reference_value:
            return None
        return self.value / self.reference_value

    @property
    def met(self) -> Optional[bool]:
        if self.at_most is not None:
            return self.value <= self.at_most
        if self.target is None or self.ratio is None:
            return None
        return self.ratio >= self.target

    def as_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "ratio": self.ratio, "met": self.met}


class Workdir:
    """A temporary directory, removed on exit whatever happened."""

    def __init__(self, name: str):
        self._name = name
        self.path: Path | None = None

    def __enter__(self) -> Path:
        self.path = Path(tempfile.mkdtemp(prefix=f"mailchimp-bench-{self._name}-"))
        return self.path

    def __exit__(self, *exc) -> None:
        if self.path is not None:
            shutil.rmtree(self.path, ignore_errors=True)


def write_json(path: Path, value: Any) -> Path:
    path.write_text(json.dumps(value, indent=1) + "\n", encoding="utf-8")
    return path


def write_jsonl(path: Path, records: Iterable[dict]) -> Path:
    """One JSON record a line, streamed: a million records never sit in memory."""
    with open(path, "w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, separators=(",", ":")))
            f.write("\n")
    return path
