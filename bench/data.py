"""Generated inputs: Amplitude-style records, audience seeds and sync configs.

Deterministic (no randomness: record i is always the same), and streamed,
so a million-record file is written without holding it in memory.
"""
from __future__ import annotations

from typing import Iterator

from bench.common import AUDIENCE

PLANS = ("free", "starter", "pro", "enterprise")
BROWSING = ("page_viewed", "feature_used", "trial_started")  # not sent as events
START_MS = 1_764_547_200_000  # 2025-12-01T00:00:00Z
MERGE_FIELDS = [
    {"tag": "FNAME", "name": "First name", "type": "text"},
    {"tag": "PLAN", "name": "Plan", "type": "dropdown",
     "options": {"choices": list(PLANS)}},
]


def email(user: int) -> str:
    return f"user{user}@example.com"


def seed(members: int = 0) -> dict:
    """One audience with `members` subscribed members, user0 .. user{n-1}."""
    return {"lists": [{
        "id": AUDIENCE, "name": "Benchmark", "double_optin": False,
        "merge_fields": MERGE_FIELDS,
        "members": [{"email_address": email(u), "status": "subscribed"}
                    for u in range(members)]}]}


def _user_properties(user: int) -> dict:
    return {"email": email(user), "FNAME": f"User {user}",
            "PLAN": PLANS[user % len(PLANS)]}


def _event(i: int, user: int, event_type: str) -> dict:
    return {"user_id": f"user-{user}", "event_type": event_type,
            "insert_id": f"evt-{i}", "time": START_MS + i,
            "platform": ("iOS", "Android", "Web")[i % 3],
            "event_properties": {"plan": PLANS[user % len(PLANS)],
                                 "amount": round(5 + (i % 995) * 0.5, 2)},
            "user_properties": _user_properties(user)}


def purchases(n: int, members: int) -> Iterator[dict]:
    """n purchase events spread over users 0 .. members-1."""
    return (_event(i, i % members, "purchase") for i in range(n))


def purchases_of_new_users(n: int) -> Iterator[dict]:
    """One purchase for each of n different users, none yet a member."""
    return (_event(u, u, "purchase") for u in range(n))


def signups(n: int, first: int = 0) -> Iterator[dict]:
    """One event for each of n different users (first .. first+n-1)."""
    return (_event(u, u, "trial_started") for u in range(first, first + n))


def member_body(user: int) -> dict:
    """The batch-subscribe entry the pipeline makes of a signup."""
    props = _user_properties(user)
    return {"email_address": props["email"], "status_if_new": "subscribed",
            "merge_fields": {"FNAME": props["FNAME"], "PLAN": props["PLAN"]}}


def backfill(n: int, users: int) -> Iterator[dict]:
    """A product's history: users come back in a scattered order, every
    50th record is anonymous (a device, no user), 1 in 40 is a purchase."""
    for i in range(n):
        user = (i * 7919) % users  # 7919 is prime: every user, scattered
        event = _event(i, user, "purchase" if i % 40 == 7 else
                       BROWSING[i % len(BROWSING)])
        if i % 50 == 3:
            del event["user_id"], event["user_properties"]
            event["device_id"] = f"device-{i % 997}"
        yield event


def revisits(n: int, users: int) -> Iterator[dict]:
    """An export's history of `users` people, each coming back n/users
    times, interleaved as a file ordered by time is (record i is user
    i x 7919 mod users, and time grows with i). Every visit changes the
    user's FNAME and PLAN, so a member's right values are its last record's;
    1 in 40 records is a purchase (users must be coprime with 7919)."""
    for i in range(n):
        user, visit = (i * 7919) % users, i // users
        event = _event(i, user, "purchase" if i % 40 == 7 else
                       BROWSING[i % len(BROWSING)])
        event["user_properties"] = {
            "email": email(user), "FNAME": f"User {user} visit {visit}",
            "PLAN": PLANS[(user + visit) % len(PLANS)]}
        yield event


EVENT_PROPERTIES = ["event_properties.plan", "event_properties.amount"]


def events_sync() -> dict:
    return {"syncs": [{
        "name": "events", "audience_id": AUDIENCE, "email_property": "email",
        "send_events": {"enabled": True, "event_types": ["purchase"],
                        "properties": EVENT_PROPERTIES}}]}


def members_sync() -> dict:
    return {"syncs": [{
        "name": "members", "audience_id": AUDIENCE, "email_property": "email",
        "send_users": {"enabled": True, "properties": ["FNAME", "PLAN"]}}]}


def backfill_sync() -> dict:
    """Members and purchases, flagged as syncing (no automations fire)."""
    return {"syncs": [{
        "name": "backfill", "audience_id": AUDIENCE, "email_property": "email",
        "send_events": {"enabled": True, "event_types": ["purchase"],
                        "properties": EVENT_PROPERTIES, "is_syncing": True},
        "send_users": {"enabled": True, "properties": ["FNAME", "PLAN"]}}]}
