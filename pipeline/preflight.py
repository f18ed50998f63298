"""Before the run: are the credentials good and every audience there?

A bad key or an unreachable Mailchimp is the user's to fix, so it stops the
run at once with a message, instead of dead-lettering every record.
"""
from __future__ import annotations

from transforms.mailchimp.client import Endpoint, MailchimpClient, RetryPolicy
from transforms.mailchimp.errors import DeliveryFailed, MailchimpError
from transforms.sync import SyncConfig


class PreflightError(RuntimeError):
    pass


def check_mailchimp(endpoint: Endpoint, config: SyncConfig) -> None:
    try:
        credentials = endpoint.credentials()
        root = endpoint.root(credentials)
    except ValueError as e:
        raise PreflightError(str(e)) from None
    client = MailchimpClient(root, credentials, timeout=(5.0, 30.0),
                             retry=RetryPolicy(attempts=2, backoff_s=0.5))
    try:
        client.ping()
        for sync in config.enabled:
            try:
                client.merge_fields(sync.audience_id)
            except MailchimpError as e:
                if e.status == 404:
                    raise PreflightError(
                        f"sync {sync.name!r}: audience_id {sync.audience_id!r} "
                        f"does not exist in this Mailchimp account") from None
                raise
    except MailchimpError as e:
        if e.status in (401, 403):
            raise PreflightError(
                f"Mailchimp refused the credentials ({e.status} {e.title}): "
                f"check MAILCHIMP_API_KEY / MAILCHIMP_OAUTH_TOKEN") from None
        raise PreflightError(f"Mailchimp answered {e}") from None
    except DeliveryFailed as e:
        raise PreflightError(f"cannot reach Mailchimp at {root}: {e}") from None
    finally:
        client.close()
