"""The emulator's stand-in for Mailchimp's OAuth metadata endpoint,
https://login.mailchimp.com/oauth2/metadata.

Mailchimp answers `GET /oauth2/metadata` with `Authorization: OAuth TOKEN`
by the token's account and data centre; a client then calls
`api_endpoint + "/3.0"`. The emulator answers the same for its one OAuth
token, with its own root as `api_endpoint`. A missing or wrong token gets
401 `{"error": "invalid_token", "error_description"}`, the OAuth 2.0 bearer
token error (RFC 6750; the emulator's model of Mailchimp's answer).
"""
from __future__ import annotations

import dataclasses
from typing import Callable

from pipeline.local.mailchimp.credentials import Credentials
from pipeline.local.mailchimp.messages import ApiRequest, ApiResponse

METADATA_PATH = "/oauth2/metadata"
DATA_CENTRE = "us1"


class OAuthMetadata:
    """GET /oauth2/metadata: the account of the emulator's OAuth token."""

    def __init__(self, credentials: Credentials, api_root: Callable[[], str]):
        self._credentials = credentials
        self._api_root = api_root  # http://127.0.0.1:PORT, known once serving

    def handle(self, request: ApiRequest) -> ApiResponse:
        if request.method != "GET":
            return _error(405, "invalid_request", "Use GET /oauth2/metadata.",
                          (("Allow", "GET"),))
        if not self._credentials.accepts_token(request.authorization):
            return _error(401, "invalid_token",
                          "The access token is missing, revoked or not valid.")
        return ApiResponse.json({
            "dc": DATA_CENTRE,
            "role": "owner",
            "accountname": "Mailchimp Emulator",
            "user_id": 1,
            "login": {"email": "owner@example.com", "avatar": None, "login_id": 1,
                      "login_name": "emulator-owner", "login_email": "owner@example.com"},
            "login_url": "https://login.mailchimp.com",
            "api_endpoint": self._api_root(),
        })


def _error(status: int, error: str, description: str,
           headers: tuple[tuple[str, str], ...] = ()) -> ApiResponse:
    answer = ApiResponse.json({"error": error, "error_description": description}, status)
    return dataclasses.replace(answer, headers=headers)
