"""Who calls Mailchimp, and where: credentials and the API root they select.

An API key ends in its data centre (`...-us6` selects
https://us6.api.mailchimp.com/3.0); an OAuth access token's data centre comes
from Mailchimp's OAuth metadata endpoint. On Dataflow the key is read from
Secret Manager. Every failure here is a `CredentialsError` whose message says
what to fix and never holds the secret.
"""
from __future__ import annotations

import base64
import dataclasses
import hashlib
import os
from typing import Literal, Mapping, Optional

import requests

API_KEY_ENV = "MAILCHIMP_API_KEY"
OAUTH_TOKEN_ENV = "MAILCHIMP_OAUTH_TOKEN"
# Overrides where OAuth tokens are looked up (a test's or a proxy's address).
OAUTH_METADATA_URL_ENV = "MAILCHIMP_OAUTH_METADATA_URL"
OAUTH_METADATA_URL = "https://login.mailchimp.com/oauth2/metadata"
GCP_EXTRA_HINT = "pip install 'mailchimp-stream[gcp]'"


class CredentialsError(ValueError):
    """Credentials that cannot be read or resolved; the message says why."""


def oauth_metadata_url(environ: Mapping[str, str] = os.environ) -> str:
    return environ.get(OAUTH_METADATA_URL_ENV) or OAUTH_METADATA_URL


@dataclasses.dataclass(frozen=True)
class Credentials:
    """An API key (`...-us6`) or an OAuth access token. Never printed."""
    kind: Literal["api_key", "oauth_token"]
    secret: str = dataclasses.field(repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> "Credentials":
        if environ.get(API_KEY_ENV):
            return cls("api_key", environ[API_KEY_ENV].strip())
        if environ.get(OAUTH_TOKEN_ENV):
            return cls("oauth_token", environ[OAUTH_TOKEN_ENV].strip())
        raise CredentialsError(
            f"no Mailchimp credentials: set {API_KEY_ENV} (the API key with "
            f"its -dc suffix) or {OAUTH_TOKEN_ENV}")

    @property
    def authorization(self) -> str:
        if self.kind == "oauth_token":
            return f"Bearer {self.secret}"
        # Basic auth with any user name and the key as password.
        token = base64.b64encode(f"mailchimp-stream:{self.secret}".encode())
        return f"Basic {token.decode()}"

    @property
    def fingerprint(self) -> str:
        """Tells credentials apart without carrying the secret."""
        return hashlib.sha256(self.secret.encode()).hexdigest()[:16]

    def api_root(self, timeout: float = 10.0) -> str:
        """https://DC.api.mailchimp.com/3.0: from the key's suffix, or for a
        token from Mailchimp's OAuth metadata endpoint."""
        if self.kind == "api_key":
            _, sep, dc = self.secret.rpartition("-")
            if not sep or not dc.isalnum():
                raise CredentialsError(
                    f"{API_KEY_ENV} has no data-centre suffix (like -us6)")
            return f"https://{dc}.api.mailchimp.com/3.0"
        return _oauth_api_root(self.secret, timeout)


def _oauth_api_root(token: str, timeout: float) -> str:
    url = oauth_metadata_url()
    try:
        response = requests.get(url, timeout=timeout,
                                headers={"Authorization": f"OAuth {token}"})
    except requests.RequestException as e:
        # The exception's text may quote the request; only its kind is shown.
        raise CredentialsError(
            f"cannot reach Mailchimp's OAuth metadata endpoint {url} "
            f"({type(e).__name__}) to find the data centre of "
            f"{OAUTH_TOKEN_ENV}") from None
    if response.status_code != 200:
        raise CredentialsError(
            f"{OAUTH_TOKEN_ENV} was refused by the OAuth metadata endpoint "
            f"{url} ({response.status_code})")
    try:
        return response.json()["api_endpoint"].rstrip("/") + "/3.0"
    except (ValueError, KeyError, TypeError, AttributeError):
        raise CredentialsError(
            f"the OAuth metadata endpoint {url} answered without an "
            f"api_endpoint") from None


def _secret_manager_key(version: str) -> Credentials:
    try:
        # Imported here: only Dataflow deployments need this package.
        from google.cloud import secretmanager
    except ImportError:
        raise CredentialsError(
            f"--mailchimp_api_key_secret needs Google Cloud Secret Manager's "
            f"client: {GCP_EXTRA_HINT}") from None
    from google.api_core.exceptions import GoogleAPIError
    from google.auth.exceptions import GoogleAuthError
    try:
        client = secretmanager.SecretManagerServiceClient()
        secret = client.access_secret_version(name=version)
    except (GoogleAPIError, GoogleAuthError) as e:
        raise CredentialsError(
            f"cannot read the API key from Secret Manager version {version}: "
            f"{type(e).__name__}: {getattr(e, 'message', e)}") from None
    return Credentials("api_key", secret.payload.data.decode().strip())


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """Where and as whom to call Mailchimp, resolved where it is used.

    It holds no secret, so it can travel inside a pickled pipeline: the
    credentials are read on the worker, from the environment or, on Dataflow,
    from Secret Manager (`api_key_secret`: projects/P/secrets/S/versions/V).
    """
    api_root: Optional[str] = None  # None: from the credentials
    api_key_secret: Optional[str] = None

    def credentials(self) -> Credentials:
        if self.api_key_secret:
            return _secret_manager_key(self.api_key_secret)
        return Credentials.from_env()

    def root(self, credentials: Credentials) -> str:
        return self.api_root.rstrip("/") if self.api_root else credentials.api_root()
