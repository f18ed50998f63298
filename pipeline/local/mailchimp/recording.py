"""The log of /3.0 requests kept when recording is on."""
from __future__ import annotations

import json
import threading
from typing import Any

from pipeline.local.mailchimp.messages import ApiRequest, ApiResponse


class RequestLog:
    """Each request's method, path, query, parsed JSON body (None if there
    is none or it is not JSON) and the status answered (None when the
    connection was dropped instead; a body cut short keeps its status)."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self._lock = threading.Lock()
        self._entries: list[dict[str, Any]] = []

    def record(self, request: ApiRequest, response: ApiResponse) -> None:
        if not self.enabled:
            return
        try:
            body = json.loads(request.body) if request.body else None
        except ValueError:
            body = None
        entry = {"method": request.method, "path": request.path,
                 "query": dict(request.query), "body": body,
                 "status": response.status if response.answered else None}
        with self._lock:
            self._entries.append(entry)

    def entries(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._entries)
