"""DryRunClient: a MailchimpClient that reads but never writes.

`--dry_run` runs the whole pipeline with it: merge fields are still read
(so values are typed and unknown tags reported as in a real run), every
write is kept as (method, path, body) instead of sent, and answered as
Mailchimp answers a write that succeeds, so the run's outcomes count what
a real run would deliver. The sink drains what was kept into dry_run files.
"""
from __future__ import annotations

import threading
from typing import Any, Optional
from urllib.parse import urlparse

from transforms.mailchimp.client import MailchimpClient


class DryRunClient(MailchimpClient):
    """Every call but a GET is kept, not sent. Safe to share between
    threads, as the client is."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._prefix = urlparse(self.api_root).path.rstrip("/")  # "/3.0"
        self._kept: list[dict] = []
        self._lock = threading.Lock()

    def drain(self) -> list[dict]:
        """The writes kept since the last drain, in the order made."""
        with self._lock:
            kept, self._kept = self._kept, []
        return kept

    def _call(self, method: str, path: str, *, json: Optional[dict] = None,
              **kwargs: Any) -> Any:
        if method == "GET":
            return super()._call(method, path, json=json, **kwargs)
        with self._lock:
            self._kept.append({"method": method, "path": self._prefix + path,
                               "body": json})
        if kwargs.get("expect", True) is None:  # an answer nobody reads
            return None
        if "members" in json:  # batch subscribe: every member taken
            created = [{"email_address": m["email_address"]} for m in json["members"]]
            return {"new_members": created, "updated_members": [], "errors": [],
                    "total_created": len(created), "total_updated": 0,
                    "error_count": 0}
        return dict(json)
