"""Everything between the network and the API: inspection, the OAuth
metadata endpoint, request counting and recording, injected faults, the
credentials, the connection limit and the added latency."""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass

from pipeline.local.mailchimp import faults, messages
from pipeline.local.mailchimp.api import PING_PATH, MarketingApi
from pipeline.local.mailchimp.credentials import Credentials
from pipeline.local.mailchimp.faults import FaultPlan
from pipeline.local.mailchimp.inspection import PREFIX, Inspection
from pipeline.local.mailchimp.messages import ApiRequest, ApiResponse, Outcome
from pipeline.local.mailchimp.oauth import METADATA_PATH, OAuthMetadata
from pipeline.local.mailchimp.problems import ApiError
from pipeline.local.mailchimp.recording import RequestLog
from pipeline.local.mailchimp.stats import Stats

Headers = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Conditions:
    """How the emulated service behaves under load."""

    fault_plan: FaultPlan
    latency_s: float = 0.0
    max_connections: int = 10


class Gateway:
    """Handles every request the HTTP server receives.

    A /3.0 request: counted by route; its fault drawn on arrival (never for
    /ping); 401 without the key or the token; 429 over the connection limit
    (the emulator has one account, so the per-account limit is one
    counter); then, while it counts as in flight, the latency, and the
    fault or the API's answer. A refusal fault comes before the API, so the
    request changes nothing; a spoiled answer comes after it, and only to a
    2xx (see faults.py).
    """

    def __init__(self, api: MarketingApi, inspection: Inspection, oauth: OAuthMetadata,
                 auth: Credentials, stats: Stats, log: RequestLog, conditions: Conditions,
                 stopping: threading.Event):
        self._api = api
        self._inspection = inspection
        self._oauth = oauth
        self._auth = auth
        self._stats = stats
        self._log = log
        self._conditions = conditions
        # Set on shutdown: ends latency sleeps and stalls early.
        self._stopping = stopping

    def handle(self, request: ApiRequest) -> ApiResponse:
        if request.path == PREFIX or request.path.startswith(PREFIX + "/"):
            return self._inspection.handle(request)
        if request.path.rstrip("/") == METADATA_PATH:
            # login.mailchimp.com, not the API: none of its limits or faults.
            return self._oauth.handle(request)
        response = self._api_request(request)
        self._log.record(request, response)
        return response

    def _api_request(self, request: ApiRequest) -> ApiResponse:
        match = self._api.router.match(request.path)
        route = f"{request.method} {match.route.template if match else '(unmatched)'}"
        self._stats.count_request(route)
        fault = None
        if not (match and match.route.template == PING_PATH):
            fault = self._conditions.fault_plan.draw(route)
        if not self._auth.accepts(request.authorization):
            return ApiResponse.problem(ApiError(
                401, "API Key Invalid",
                "Your API key may be invalid, or you've attempted to access the wrong datacenter."))
        limit = self._conditions.max_connections
        if not self._stats.in_flight.try_raise(limit):
            self._stats.count_rejected()
            return ApiResponse.problem(ApiError(
                429, "Too Many Requests",
                f"You have exceeded the limit of {limit} simultaneous connections."),
                self._retry_after())
        try:
            self._stopping.wait(self._conditions.latency_s)
            if fault is not None and fault not in faults.SPOILED:
                self._stats.count_fault(fault)
                return self._faulted(fault)
            answer = self._api.dispatch(match, request)
            if fault is not None and 200 <= answer.status < 300:
                self._stats.count_fault(fault)
                return self._spoiled(fault, answer)
            return answer
        finally:
            self._stats.in_flight.lower()

    def _faulted(self, kind: str) -> ApiResponse:
        if kind == faults.SERVICE_UNAVAILABLE:
            return ApiResponse.problem(ApiError(
                503, "Service Unavailable",
                "The service is temporarily unavailable. Please try again later."))
        if kind == faults.TOO_MANY_REQUESTS:
            return ApiResponse.problem(ApiError(
                429, "Too Many Requests", "You have exceeded the limit of requests."),
                self._retry_after())
        if kind == faults.TOO_MANY_REQUESTS_EMPTY:
            return ApiResponse(429, headers=self._retry_after())
        if kind in (faults.EDGE_502, faults.EDGE_503):
            return _edge_page(int(kind[:3]))
        if kind == faults.TIMEOUT:
            self._stopping.wait(self._conditions.fault_plan.faults.timeout_stall_s)
            return ApiResponse(0, outcome=Outcome.HANG_UP)
        return ApiResponse(0, outcome=Outcome.RESET)

    def _spoiled(self, kind: str, answer: ApiResponse) -> ApiResponse:
        """The API's 2xx answer, spoiled on its way out."""
        if kind == faults.HTML_200:
            return _edge_page(200)
        if kind == faults.EMPTY_200:
            return ApiResponse(200)
        if kind == faults.EMPTY_OBJECT_200:
            return ApiResponse.json({})
        if kind == faults.ARRAY_200:
            return ApiResponse.json([])
        # A 204 has no body to cut: the cut one goes out as a 200 with one.
        body = answer.body or b'{"status": "ok"}'
        stall = (self._conditions.fault_plan.faults.timeout_stall_s
                 if kind == faults.STALLED_BODY else 0.0)
        return ApiResponse(200 if answer.status == 204 else answer.status, body,
                           answer.content_type or messages.JSON, answer.headers,
                           Outcome.CUT, stall)

    def _retry_after(self) -> Headers:
        seconds = self._conditions.fault_plan.faults.retry_after
        # Retry-After takes whole seconds.
        return () if seconds is None else (("Retry-After", str(math.ceil(seconds))),)


_EDGE_TITLES = {200: "Mailchimp", 502: "502 Bad Gateway", 503: "503 Service Unavailable"}


def _edge_page(status: int) -> ApiResponse:
    """An HTML page as an edge server or proxy sends it, not problem+json."""
    title = _EDGE_TITLES[status]
    page = (f"<html><head><title>{title}</title></head><body><center><h1>{title}"
            f"</h1></center><hr><center>edge</center></body></html>\n")
    return ApiResponse(status, page.encode("utf-8"), "text/html; charset=utf-8")
