"""DropAnonymous and MapEmail: who an action is about, as Mailchimp knows them.

The subscriber hash is the MD5 of the lower-cased address (Mailchimp's own
rule); the address itself is sent as given, minus surrounding whitespace.
"""
from __future__ import annotations

import functools
import hashlib
import re
from typing import Any, Optional

from transforms.records import Action, Skipped
from transforms.routing import RouteSkips

# local@domain.tld in ASCII: the dot-atom local part of RFC 5322 and DNS
# labels, with a letters-only TLD. Mailchimp rejects what this rejects
# ("looks fake or invalid"), so catching it here saves a request.
_PLAUSIBLE_EMAIL = re.compile(
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$")
_MAX_EMAIL_LENGTH = 254  # RFC 5321 path limit


def normalise_email(value: Any) -> Optional[str]:
    """The address stripped of surrounding whitespace, or None if implausible."""
    if not isinstance(value, str):
        return None
    email = value.strip()
    if len(email) > _MAX_EMAIL_LENGTH or not _PLAUSIBLE_EMAIL.match(email):
        return None
    return email


def subscriber_hash(email: str) -> str:
    return hashlib.md5(email.lower().encode("utf-8")).hexdigest()


# Rule steps return tuples, not generators: cheaper, once per record.
def _drop_anonymous(action: Action) -> tuple[Action | Skipped]:
    return (action if action.record.user_id else Skipped.of(action, "anonymous"),)


def _map_email(email_property: str, action: Action) -> tuple[Action | Skipped]:
    record = action.record
    value = (record.user_id if email_property == "user_id"
             else record.user_properties.get(email_property))
    if value is None or (isinstance(value, str) and not value.strip()):
        return (Skipped.of(action, "no_email"),)
    email = normalise_email(value)
    if email is None:
        return (Skipped.of(action, "invalid_email"),)
    # Not dataclasses.replace: this runs per record, and replace costs 4x.
    return (Action(action.sync, action.audience_id, action.kind, action.record,
                   email, subscriber_hash(email)),)


class DropAnonymous(RouteSkips):
    """Actions of records without a user_id -> `skipped` (anonymous)."""

    def __init__(self):
        super().__init__(_drop_anonymous)


class MapEmail(RouteSkips):
    """Action -> Action with email and subscriber hash | Skipped(no_email,
    invalid_email). `email_property` is a user property name or "user_id"."""

    def __init__(self, email_property: str):
        super().__init__(functools.partial(_map_email, email_property))
