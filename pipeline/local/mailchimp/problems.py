"""Errors the emulator answers as Mailchimp's application/problem+json documents."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

PROBLEM_TYPE = "https://mailchimp.com/developer/marketing/docs/errors/"
INVALID_RESOURCE_DETAIL = (
    "The resource submitted could not be validated. "
    "For field-specific details, see the 'errors' array.")


@dataclass(frozen=True)
class FieldError:
    """One offending field of a 400 "Invalid Resource" answer."""

    field: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


class InvalidFields(Exception):
    """Validation failed: answered as 400 "Invalid Resource", or as one
    batch-subscribe error entry."""

    def __init__(self, errors: list[FieldError], detail: str = INVALID_RESOURCE_DETAIL):
        super().__init__(detail)
        self.errors = errors
        self.detail = detail


class ApiError(Exception):
    """A failed request, answered with a problem+json body."""

    def __init__(self, status: int, title: str, detail: str,
                 errors: list[FieldError] | None = None):
        super().__init__(f"{status} {title}: {detail}")
        self.status = status
        self.title = title
        self.detail = detail
        self.errors = errors or []

    @classmethod
    def invalid_resource(cls, invalid: InvalidFields) -> ApiError:
        return cls(400, "Invalid Resource", invalid.detail, invalid.errors)

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": PROBLEM_TYPE,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "instance": str(uuid.uuid4()),
        }
        if self.errors:
            body["errors"] = [error.to_json() for error in self.errors]
        return body


class MemberExists(ApiError):
    """Adding a member that exists without permission to update it (batch
    subscribe reports it as ERROR_CONTACT_EXISTS)."""

    def __init__(self, email: str):
        super().__init__(
            400, "Member Exists",
            f"{email} is already a list member. "
            "Use PUT to insert or update list members.")


def not_found() -> ApiError:
    return ApiError(404, "Resource Not Found",
                    "The requested resource could not be found.")
