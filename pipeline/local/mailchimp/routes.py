"""Matching request paths to route templates such as
/3.0/lists/{list_id}/members/{subscriber_hash}."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Mapping
from urllib.parse import unquote

from pipeline.local.mailchimp.messages import ApiRequest, ApiResponse

# A route handler gets the decoded path parameters and the request.
Handler = Callable[[dict[str, str], ApiRequest], ApiResponse]


@dataclass(frozen=True)
class Route:
    """A path template and its handler for each HTTP method."""

    template: str
    pattern: re.Pattern[str]
    handlers: Mapping[str, Handler]


@dataclass(frozen=True)
class Match:
    route: Route
    params: dict[str, str]


class Router:
    """Finds the route of a path; a trailing slash is ignored."""

    def __init__(self) -> None:
        self._routes: list[Route] = []

    def add(self, template: str, handlers: Mapping[str, Handler]) -> None:
        pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template))
        self._routes.append(Route(template, re.compile(pattern), dict(handlers)))

    def match(self, path: str) -> Match | None:
        path = path.rstrip("/") or "/"
        for route in self._routes:
            found = route.pattern.fullmatch(path)
            if found:
                return Match(route, {k: unquote(v) for k, v in found.groupdict().items()})
        return None
