"""Mailchimp's problem+json errors as typed exceptions, and what they mean
for a record: a skip reason, or a dead letter.
"""
from __future__ import annotations

import json
from typing import Optional

import requests

# Transient by Mailchimp's documentation: throttling and server trouble.
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})


class MailchimpError(Exception):
    """A non-2xx answer. `title` is Mailchimp's problem title; `errors` the
    per-field details of a 400 "Invalid Resource"."""

    def __init__(self, status: int, title: str, detail: str = "",
                 errors: Optional[list[dict]] = None):
        self.status, self.title, self.detail = status, title, detail
        self.errors = errors or []
        fields = ", ".join(self.field_messages)
        super().__init__(
            f"{status} {title}" + (f": {detail}" if detail else "")
            + (f" ({fields})" if fields else ""))

    @classmethod
    def from_response(cls, response: requests.Response) -> "MailchimpError":
        return cls.from_answer(response.status_code, response.reason or "Error",
                               response.content,
                               response.headers.get("Content-Type", ""))

    @classmethod
    def from_answer(cls, status: int, reason: str, content: bytes,
                    content_type: str = "") -> "MailchimpError":
        """Parse problem+json. Under heavy load Mailchimp may send no body,
        and its edge (or a proxy) an HTML page: either way the status says
        what happened, and the reason phrase stands in for the title."""
        try:
            problem = json.loads(content) if content.strip() else None
        except ValueError:  # JSONDecodeError and UnicodeDecodeError
            media = content_type.split(";")[0].strip() or "no content type"
            return cls(status, reason or "Error",
                       f"the answer was not problem+json but {media}")
        if not isinstance(problem, dict):
            return cls(status, reason or "Error")
        # The HTTP status is what happened; a body's "status" can disagree
        # (a proxy's page, a stale document) and is not trusted over it.
        return cls(status, str(problem.get("title") or reason or "Error"),
                   str(problem.get("detail") or ""),
                   [e for e in problem.get("errors") or [] if isinstance(e, dict)])

    @property
    def fields(self) -> list[str]:
        return [str(e.get("field")) for e in self.errors if e.get("field")]

    @property
    def field_messages(self) -> list[str]:
        """Each field Mailchimp named, with its message: "SCORE: Please
        enter a number"."""
        return [f"{e.get('field')}: {e.get('message')}"
                for e in self.errors if e.get("field")]

    @property
    def explanation(self) -> str:
        """What Mailchimp said, for a report: the fields and their messages,
        else the detail."""
        return "; ".join(self.field_messages) or self.detail or self.title


class DeliveryFailed(Exception):
    """Retries ran out (429s, 5xx, network trouble, or 2xx answers that were
    not what the call needs), or a non-idempotent request may or may not have
    reached Mailchimp; the record becomes a `retries_exhausted` dead letter."""


# Mailchimp's wording in the detail, which stays English where some accounts
# get translated titles (recorded answers, see tests/fixtures/mailchimp_answers).
_FAKE_EMAIL = "looks fake or invalid"
_COMPLIANCE = "in a compliance state"
_FORGOTTEN = "permanently deleted and cannot be re-imported"


def skip_reason(error: MailchimpError, kind: str) -> Optional[str]:
    """The MISSION.md skip reason for an error, or None (dead letter).

    Classified on status, title and detail: a fake-looking address comes as
    "Invalid Resource" with no `errors` at all; only a refused value names
    its field.
    """
    if error.status == 404 and kind in ("event", "cohort"):
        return "member_not_found"
    if error.status != 400:
        return None
    title, detail = error.title.lower(), error.detail.lower()
    if "compliance state" in title or _COMPLIANCE in detail:
        return "compliance_state"
    if "forgotten email" in title or _FORGOTTEN in detail:
        return "forgotten_email"
    if kind != "member":
        return None
    if _FAKE_EMAIL in detail or "email_address" in error.fields:
        return "invalid_email"
    if error.fields:  # only a validation failure names fields
        return "invalid_merge_fields"
    return None
