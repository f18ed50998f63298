"""/_emulator: the unauthenticated endpoints tests and benchmarks read."""
from __future__ import annotations

from pipeline.local.mailchimp.messages import ApiRequest, ApiResponse
from pipeline.local.mailchimp.problems import ApiError, not_found
from pipeline.local.mailchimp.service import AudienceService
from pipeline.local.mailchimp.stats import Stats

PREFIX = "/_emulator"


class Inspection:
    """GET /_emulator/stats, GET /_emulator/state, POST /_emulator/reset_stats."""

    def __init__(self, stats: Stats, service: AudienceService):
        self._stats = stats
        self._service = service

    def handle(self, request: ApiRequest) -> ApiResponse:
        name = request.path[len(PREFIX):].strip("/")
        expected = {"stats": "GET", "state": "GET", "reset_stats": "POST"}.get(name)
        if expected is None:
            return ApiResponse.problem(not_found())
        if request.method != expected:
            return ApiResponse.problem(
                ApiError(405, "Method Not Allowed", f"Use {expected} {request.path}."),
                (("Allow", expected),))
        if name == "stats":
            return ApiResponse.json(self._stats.snapshot())
        if name == "state":
            return ApiResponse.json(self._service.snapshot())
        self._stats.reset()
        return ApiResponse.no_content()
