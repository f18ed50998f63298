"""The emulator's HTTP requests and responses, independent of the server."""
from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import Any

from pipeline.local.mailchimp.problems import ApiError

JSON = "application/json; charset=utf-8"
PROBLEM_JSON = "application/problem+json; charset=utf-8"


class Outcome(enum.Enum):
    """What the server does with the connection."""

    RESPOND = "respond"
    HANG_UP = "hang_up"  # close without answering
    RESET = "reset"      # abort the TCP connection (RST) without answering
    CUT = "cut"          # the headers and half the body, a stall, then close


@dataclass(frozen=True)
class ApiRequest:
    """One request as the gateway sees it; `authorization` is the raw header."""

    method: str
    path: str
    query: dict[str, str]
    body: bytes
    authorization: str | None = None

    def json_body(self) -> Any:
        """The decoded body; 400 "JSON Parse Exception" if it is not JSON."""
        try:
            return json.loads(self.body.decode("utf-8"), parse_constant=_reject_constant)
        except ValueError:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            raise ApiError(400, "JSON Parse Exception",
                           "We encountered an unspecified JSON parsing error.") from None


@dataclass(frozen=True)
class ApiResponse:
    """A response to send, or a connection to drop (see Outcome)."""

    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    outcome: Outcome = Outcome.RESPOND
    stall_s: float = 0.0  # for CUT: how long to wait before closing

    @property
    def answered(self) -> bool:
        """A status line went out (whatever became of the body)."""
        return self.outcome in (Outcome.RESPOND, Outcome.CUT)

    @classmethod
    def json(cls, payload: Any, status: int = 200) -> ApiResponse:
        return cls(status, json.dumps(payload).encode("utf-8"), JSON)

    @classmethod
    def problem(cls, error: ApiError,
                headers: tuple[tuple[str, str], ...] = ()) -> ApiResponse:
        return cls(error.status, json.dumps(error.to_json()).encode("utf-8"),
                   PROBLEM_JSON, headers)

    @classmethod
    def no_content(cls) -> ApiResponse:
        return cls(204)


def _reject_constant(name: str) -> Any:
    # NaN and Infinity are not JSON, though Python's decoder takes them.
    raise ValueError(f"{name} is not JSON")
