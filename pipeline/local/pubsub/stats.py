"""Thread-safe delivery counters exposed as ``PubSubEmulator.stats``."""
import threading
from collections import Counter

COUNTER_NAMES = ("published", "delivered", "acked", "redelivered")


class Stats:
    """Counts published, delivered, acknowledged and redelivered messages."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter({name: 0 for name in COUNTER_NAMES})

    def add(self, name: str, amount: int = 1) -> None:
        """Add ``amount`` to counter ``name`` (one of ``COUNTER_NAMES``)."""
        if name not in COUNTER_NAMES:
            raise KeyError(name)
        with self._lock:
            self._counts[name] += amount

    def snapshot(self) -> dict[str, int]:
        """A consistent copy of all counters."""
        with self._lock:
            return dict(self._counts)
