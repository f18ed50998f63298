"""Objects a worker process keeps across DoFn instances.

Beam's `Shared` is the usual tool, but it keeps only the most recently
acquired object alive, so our two (the sink's client, the dedupe memory)
would evict each other; and the DirectRunner sets up a fresh DoFn for every
bundle, so what a DoFn keeps itself is rebuilt per bundle (a new connection
pool, a new merge-field fetch). Entries are few, one per transform of a
pipeline or per credentials, and live as long as the process.
"""
from __future__ import annotations

import threading
from typing import Any, Callable, Hashable

_lock = threading.RLock()  # a factory may ask for another object
_objects: dict[Hashable, Any] = {}


def worker_object(key: Hashable, factory: Callable[[], Any]) -> Any:
    """The process's object for `key`, made by `factory` the first time."""
    with _lock:
        if key not in _objects:
            _objects[key] = factory()
        return _objects[key]
