"""Member identity: plausible and real-looking email addresses, subscriber
hashes.

Mailchimp refuses addresses in two ways. One that is not `local@domain.tld`
fails validation: 400 "Invalid Resource" naming `email_address` in `errors`.
One it judges fake gets its recorded answer (2019-2021): 400 "Invalid
Resource", detail "<email> looks fake or invalid, please enter a real email
address.", and no `errors` list. Mailchimp's judgement is its own; the
emulator's is a fixed, documented rule (`looks_fake`): an address holding a
`*` (a masked address such as `test@gm***.com`), or one at a disposable-mail
domain of FAKE_DOMAINS or a subdomain of one.
"""
from __future__ import annotations

import hashlib
import re

from pipeline.local.mailchimp.problems import ApiError, FieldError, InvalidFields

# local@domain.tld: a single "@", no whitespace, a domain of non-empty dotted
# labels ending in a top-level domain of two characters or more.
_PLAUSIBLE_EMAIL = re.compile(r"[^@\s]+@(?:[^@\s.]+\.)+[^@\s.]{2,}")
# Disposable-mail services whose addresses Mailchimp calls fake.
FAKE_DOMAINS = frozenset({"mailinator.com", "guerrillamail.com", "yopmail.com",
                          "10minutemail.com", "trashmail.com"})


def subscriber_hash(email: str) -> str:
    """The MD5 of the lower-cased address, as Mailchimp keys members."""
    return hashlib.md5(email.lower().encode("utf-8"), usedforsecurity=False).hexdigest()


def hash_from_path(segment: str) -> str:
    """Mailchimp accepts the address itself where a subscriber hash goes."""
    return subscriber_hash(segment) if "@" in segment else segment.lower()


def looks_fake(email: str) -> bool:
    """The emulator's stand-in for Mailchimp's fake-address judgement."""
    if "*" in email:
        return True
    # The domain, then each parent domain: one set look-up a level.
    domain = email.rpartition("@")[2].lower()
    while domain not in FAKE_DOMAINS:
        _, dot, domain = domain.partition(".")
        if not dot:
            return False
    return True


def check_email(email: object) -> str:
    """`email` if it is plausible and does not look fake; else InvalidFields
    (not an address) or ApiError (fake-looking), as Mailchimp answers."""
    if not (isinstance(email, str) and _PLAUSIBLE_EMAIL.fullmatch(email)):
        raise InvalidFields([FieldError("email_address", "Please provide a valid email address.")])
    if looks_fake(email):
        raise ApiError(400, "Invalid Resource",
                       f"{email} looks fake or invalid, please enter a real email address.")
    return email
