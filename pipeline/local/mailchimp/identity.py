"""Member identity: plausible email addresses and subscriber hashes."""
from __future__ import annotations

import hashlib
import re

from pipeline.local.mailchimp.problems import FieldError, InvalidFields

# local@domain.tld: a single "@", no whitespace, a domain of non-empty dotted
# labels ending in a top-level domain of two characters or more.
_PLAUSIBLE_EMAIL = re.compile(r"[^@\s]+@(?:[^@\s.]+\.)+[^@\s.]{2,}")


def subscriber_hash(email: str) -> str:
    """The MD5 of the lower-cased address, as Mailchimp keys members."""
    return hashlib.md5(email.lower().encode("utf-8"), usedforsecurity=False).hexdigest()


def hash_from_path(segment: str) -> str:
    """Mailchimp accepts the address itself where a subscriber hash goes."""
    return subscriber_hash(segment) if "@" in segment else segment.lower()


def check_email(email: object) -> str:
    """`email` if it looks like a real address, else InvalidFields."""
    if isinstance(email, str) and _PLAUSIBLE_EMAIL.fullmatch(email):
        return email
    shown = email if isinstance(email, str) else "The email address"
    raise InvalidFields(
        [FieldError("email_address", "Please provide a valid email address.")],
        detail=f"{shown} looks fake or invalid, please enter a real email address.")
