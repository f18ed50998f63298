"""The credentials the emulator accepts: one API key and one OAuth access
token, either of which may be absent."""
from __future__ import annotations

import base64
import hmac


class Credentials:
    """The API key and the OAuth access token the emulator accepts (either
    may be None: then none is). The key: HTTP Basic with any user name and
    the key as password, or `Authorization: Bearer KEY`. The token:
    `Authorization: Bearer TOKEN` (or `OAuth TOKEN`, as the metadata
    endpoint takes it)."""

    def __init__(self, api_key: str | None, oauth_token: str | None = None):
        self._key = api_key.encode("utf-8") if api_key else None
        self._token = oauth_token.encode("utf-8") if oauth_token else None

    def accepts(self, authorization: str | None) -> bool:
        """For the API: the key or the token."""
        scheme, presented = _presented(authorization)
        return ((scheme in ("basic", "bearer") and _same(presented, self._key))
                or self.accepts_token(authorization))

    def accepts_token(self, authorization: str | None) -> bool:
        """For the OAuth metadata endpoint: the token only."""
        scheme, presented = _presented(authorization)
        return scheme in ("bearer", "oauth") and _same(presented, self._token)


def _same(presented: str | None, secret: bytes | None) -> bool:
    # Constant-time comparison: response timing must not reveal the secret.
    return (presented is not None and secret is not None
            and hmac.compare_digest(presented.encode("utf-8"), secret))


def _presented(authorization: str | None) -> tuple[str, str | None]:
    """The header's scheme (lower case) and the secret it presents."""
    scheme, _, credentials = (authorization or "").strip().partition(" ")
    scheme = scheme.lower()
    if scheme != "basic":
        return scheme, credentials.strip() or None
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors
        return scheme, None
    _, colon, key = decoded.partition(":")
    return scheme, key if colon else None
