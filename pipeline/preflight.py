"""Before the run: are the credentials good, every audience there, and the
Pub/Sub subscription or topics the run names?

Each of these is the user's to fix, so it stops the run at once with a
message, instead of dead-lettering every record (Mailchimp) or logging a 404
and waiting for ever (Pub/Sub).
"""
from __future__ import annotations

import logging

from google.api_core import exceptions as google_errors
from google.auth.exceptions import GoogleAuthError
from google.cloud import pubsub_v1

from pipeline.options import MailchimpStreamOptions
from transforms.mailchimp.client import MailchimpClient, RetryPolicy
from transforms.mailchimp.credentials import Endpoint
from transforms.mailchimp.errors import DeliveryFailed, MailchimpError
from transforms.sync import SyncConfig

PUBSUB_TIMEOUT_S = 30.0
_LOGGER = logging.getLogger(__name__)


class PreflightError(RuntimeError):
    pass


def mailchimp_client(endpoint: Endpoint) -> MailchimpClient:
    """A client for a quick look before the run (short timeouts, one
    retry), or PreflightError when the credentials cannot be read or their
    data centre found."""
    try:
        credentials = endpoint.credentials()
        root = endpoint.root(credentials)
    except ValueError as e:
        raise PreflightError(str(e)) from None
    return MailchimpClient(root, credentials, timeout=(5.0, 30.0),
                           retry=RetryPolicy(attempts=2, backoff_s=0.5))


def account_problem(error: MailchimpError | DeliveryFailed, root: str) -> str:
    """What to fix when a call fails for the whole account: credentials
    refused, Mailchimp unreachable, or an answer we did not expect."""
    if isinstance(error, DeliveryFailed):
        return f"cannot reach Mailchimp at {root}: {error}"
    if error.status in (401, 403):
        return (f"Mailchimp refused the credentials ({error.status} "
                f"{error.title}): check MAILCHIMP_API_KEY / MAILCHIMP_OAUTH_TOKEN")
    return f"Mailchimp answered {error}"


def no_such_audience(audience_id: str) -> str:
    return f"audience_id {audience_id!r} does not exist in this Mailchimp account"


def check_mailchimp(endpoint: Endpoint, config: SyncConfig) -> None:
    client = mailchimp_client(endpoint)
    try:
        client.ping()
        for sync in config.enabled:
            try:
                client.merge_fields(sync.audience_id)
            except MailchimpError as e:
                if e.status == 404:
                    raise PreflightError(f"sync {sync.name!r}: "
                                         + no_such_audience(sync.audience_id)) from None
                raise
    except (MailchimpError, DeliveryFailed) as e:
        raise PreflightError(account_problem(e, client.api_root)) from None
    finally:
        client.close()


def check_pubsub(options: MailchimpStreamOptions) -> None:
    """The subscription or topics the flags name exist (PUBSUB_EMULATOR_HOST
    is honoured, as Beam's Pub/Sub I/O does)."""
    wanted = [(flag, name) for flag, name in (
        ("--input_subscription", options.input_subscription),
        ("--input_topic", options.input_topic),
        ("--dead_letter_topic", options.dead_letter_topic)) if name]
    if not wanted:
        return
    try:
        subscriber = pubsub_v1.SubscriberClient()
        publisher = pubsub_v1.PublisherClient()
    except GoogleAuthError as e:
        raise PreflightError(
            f"cannot check {wanted[0][0]} {wanted[0][1]}: no Google Cloud "
            f"credentials ({e})") from None
    try:
        for flag, name in wanted:
            _check_exists(subscriber, publisher, flag, name)
    finally:
        subscriber.close()
        publisher.stop()


def _check_exists(subscriber, publisher, flag: str, name: str) -> None:
    kind = "subscription" if flag == "--input_subscription" else "topic"
    try:
        if kind == "subscription":
            subscriber.get_subscription(request={"subscription": name},
                                        timeout=PUBSUB_TIMEOUT_S)
        else:
            publisher.get_topic(request={"topic": name}, timeout=PUBSUB_TIMEOUT_S)
    except google_errors.NotFound:
        raise PreflightError(f"{flag} {name}: no such Pub/Sub {kind}; create "
                             f"it or correct the name") from None
    except google_errors.PermissionDenied:
        # Reading a subscription or publishing needs fewer permissions than
        # looking it up (pubsub.viewer): the run may still work.
        _LOGGER.warning("cannot check that %s %s exists: permission denied",
                        flag, name)
    except (google_errors.GoogleAPIError, GoogleAuthError) as e:
        raise PreflightError(f"cannot check {flag} {name} on Pub/Sub: "
                             f"{type(e).__name__}: {e}") from None
