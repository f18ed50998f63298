"""The /3.0 routes: query and body decoding around the AudienceService.
GET answers honour `fields` and `exclude_fields` (sparse_fields.py)."""
from __future__ import annotations

from typing import Mapping

from pipeline.local.mailchimp.identity import hash_from_path
from pipeline.local.mailchimp.messages import ApiRequest, ApiResponse
from pipeline.local.mailchimp.problems import ApiError, FieldError, InvalidFields, not_found
from pipeline.local.mailchimp.routes import Match, Router
from pipeline.local.mailchimp.service import AudienceService
from pipeline.local.mailchimp.sparse_fields import sparse

PING_PATH = "/3.0/ping"
MAX_COUNT = 1000


class MarketingApi:
    """Answers the Marketing API requests the emulator supports."""

    def __init__(self, service: AudienceService):
        self._service = service
        self.router = Router()
        self.router.add(PING_PATH, {"GET": self._ping})
        self.router.add("/3.0/lists/{list_id}",
                        {"GET": self._list_info, "POST": self._batch_subscribe})
        self.router.add("/3.0/lists/{list_id}/merge-fields",
                        {"GET": self._merge_fields, "POST": self._create_merge_field})
        self.router.add("/3.0/lists/{list_id}/members",
                        {"GET": self._members, "POST": self._add_member})
        self.router.add("/3.0/lists/{list_id}/members/{subscriber_hash}",
                        {"GET": self._get_member, "PUT": self._put_member,
                         "PATCH": self._patch_member})
        self.router.add("/3.0/lists/{list_id}/members/{subscriber_hash}/events",
                        {"GET": self._events, "POST": self._add_event})
        self.router.add("/3.0/lists/{list_id}/members/{subscriber_hash}/tags",
                        {"GET": self._member_tags, "POST": self._update_member_tags})

    def dispatch(self, match: Match | None, request: ApiRequest) -> ApiResponse:
        """The route's answer, errors included as problem+json."""
        if match is None:
            return ApiResponse.problem(not_found())
        handler = match.route.handlers.get(request.method)
        if handler is None:
            allowed = ", ".join(match.route.handlers)
            return ApiResponse.problem(
                ApiError(405, "Method Not Allowed",
                         "The requested method and resource are not compatible. "
                         "See the Allow header for this resource's available methods."),
                (("Allow", allowed),))
        try:
            return handler(match.params, request)
        except InvalidFields as exc:
            return ApiResponse.problem(ApiError.invalid_resource(exc))
        except ApiError as exc:
            return ApiResponse.problem(exc)

    def _ping(self, _: dict[str, str], __: ApiRequest) -> ApiResponse:
        return ApiResponse.json({"health_status": "Everything's Chimpy!"})

    def _list_info(self, params: dict[str, str], request: ApiRequest) -> ApiResponse:
        return _answer(request, self._service.list_info(params["list_id"]))

    def _batch_subscribe(self, params: dict[str, str], request: ApiRequest) -> ApiResponse:
        return ApiResponse.json(self._service.batch_subscribe(
            params["list_id"], request.json_body(),
            skip_merge_validation=_flag(request.query, "skip_merge_validation"),
            skip_duplicate_check=_flag(request.query, "skip_duplicate_check")))

    def _merge_fields(self, params: dict[str, str], request: ApiRequest) -> ApiResponse:
        count, offset = _page(request.query)
        return _answer(request, self._service.merge_fields_page(params["list_id"], count, offset))

    def _create_merge_field(self, params: dict[str, str], request: ApiRequest) -> ApiResponse:
        return ApiResponse.json(
            self._service.create_merge_field(params["list_id"], request.json_body()))

    def _members(self, params: dict[str, str], request: ApiRequest) -> ApiResponse:
        count, offset = _page(request.query)
        return _answer(request, self._service.members_page(params["list_id"], count, offset))

    def _add_member(self, params: dict[str, str], request: ApiRequest) -> ApiResponse:
        return ApiResponse.json(self._service.add_member(
            params["list_id"], request.json_body(),
            skip_merge_validation=_flag(request.query, "skip_merge_validation")))

    def _get_member(self, params: dict[str, str], request: ApiRequest) -> ApiResponse:
        return _answer(request, self._service.member(params["list_id"], _member_hash(params)))

    def _put_member(self, params: dict[str, str], request: ApiRequest) -> ApiResponse:
        return ApiResponse.json(self._service.upsert_member(
            params["list_id"], _member_hash(params), request.json_body(),
            skip_merge_validation=_flag(request.query, "skip_merge_validation")))

    def _patch_member(self, params: dict[str, str], request: ApiRequest) -> ApiResponse:
        # skip_merge_validation only waives required fields of new members:
        # PATCH never creates one, so the flag changes nothing here.
        return ApiResponse.json(self._service.update_member(
            params["list_id"], _member_hash(params), request.json_body()))

    def _events(self, params: dict[str, str], request: ApiRequest) -> ApiResponse:
        count, offset = _page(request.query)
        return _answer(request, self._service.events_page(
            params["list_id"], _member_hash(params), count, offset))

    def _add_event(self, params: dict[str, str], request: ApiRequest) -> ApiResponse:
        self._service.add_event(params["list_id"], _member_hash(params), request.json_body())
        return ApiResponse.no_content()

    def _member_tags(self, params: dict[str, str], request: ApiRequest) -> ApiResponse:
        count, offset = _page(request.query)
        return _answer(request, self._service.member_tags_page(
            params["list_id"], _member_hash(params), count, offset))

    def _update_member_tags(self, params: dict[str, str], request: ApiRequest) -> ApiResponse:
        self._service.update_member_tags(params["list_id"], _member_hash(params),
                                         request.json_body())
        return ApiResponse.no_content()


def _answer(request: ApiRequest, payload: object) -> ApiResponse:
    return ApiResponse.json(sparse(payload, request.query))


def _member_hash(params: dict[str, str]) -> str:
    return hash_from_path(params["subscriber_hash"])


def _flag(query: Mapping[str, str], name: str) -> bool:
    return query.get(name, "").lower() == "true"


def _page(query: Mapping[str, str]) -> tuple[int, int]:
    """count (default 10, at most 1000) and offset (default 0)."""
    return _integer(query, "count", 10, MAX_COUNT), _integer(query, "offset", 0, None)


def _integer(query: Mapping[str, str], name: str, default: int, maximum: int | None) -> int:
    raw = query.get(name, "")
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidFields([FieldError(name, "Please provide an integer.")]) from None
    if value < 0 or (maximum is not None and value > maximum):
        limit = f"between 0 and {maximum}" if maximum is not None else "0 or more"
        raise InvalidFields([FieldError(name, f"The value must be {limit}.")])
    return value
