"""A backfill sends each member once, with its final values, then the
events: `python -m pipeline` on files, the real FnApiRunner, real HTTP to
the emulator."""
from __future__ import annotations

import math
import random

import pytest

from tests.helpers import AUDIENCE, read_outputs, run_sync

USERS = 1200  # more than two batch-subscribe calls' worth
RECORDS_PER_USER = 5
PLANS = ["free", "pro", "enterprise"]
T0 = 1_700_000_000_000
SYNC = {"name": "backfill", "audience_id": AUDIENCE, "email_property": "email",
        "send_events": {"enabled": True, "event_types": ["*"]},
        "send_users": {"enabled": True, "properties": ["FNAME", "PLAN", "SCORE"]}}


def _backfill() -> tuple[list[dict], dict[str, dict]]:
    """Every user's records, shuffled through the file as an export's are,
    and times that disagree with file order; and each member's expected
    merge fields: per field, the value of the user's latest record setting
    it (an `$unset` clears it)."""
    rng = random.Random(7)
    records, expected = [], {}
    for u in range(USERS):
        email = f"user{u}@example.com"
        times = rng.sample(range(1000), RECORDS_PER_USER)
        for n, at in enumerate(times):
            properties = {"email": email, "PLAN": rng.choice(PLANS),
                          "SCORE": at}
            if n % 2 == 0:
                properties["FNAME"] = f"First{u}-{at}"
            records.append({"user_id": f"u{u}", "event_type": "step_done",
                            "insert_id": f"u{u}-{n}", "time": T0 + at * 1000,
                            "user_properties": properties})
        latest = max(range(RECORDS_PER_USER), key=lambda n: times[n])
        expected[email] = {
            "PLAN": records[-RECORDS_PER_USER + latest]["user_properties"]["PLAN"],
            "SCORE": max(times),
            "FNAME": f"First{u}-{max(times[n] for n in range(0, RECORDS_PER_USER, 2))}"}
        if u % 10 == 0:  # a later identify clears the first name
            records.append({"identification": [{"user_id": f"u{u}", "user_properties": {
                "$set": {"email": email}, "$unset": {"FNAME": "-"}}}]})
            expected[email]["FNAME"] = ""
    rng.shuffle(records)
    return records, expected


@pytest.fixture
def backfill(emulator, tmp_path, monkeypatch):
    records, expected = _backfill()
    return (*run_sync(emulator, tmp_path, monkeypatch, [SYNC], records), expected)


def test_every_member_ends_with_its_last_values(backfill, emulator):
    summary, _, expected = backfill
    for email, fields in expected.items():
        member = emulator.member(AUDIENCE, email)
        assert member is not None, email
        got = {tag: member["merge_fields"].get(tag, "") for tag in fields}
        assert got == {"PLAN": fields["PLAN"], "SCORE": fields["SCORE"],
                       "FNAME": fields["FNAME"]}, email
    identifies = USERS // 10
    # Every record's upsert is counted, though each member was sent once.
    assert summary["members"]["upserted"] == USERS * RECORDS_PER_USER + identifies


def test_each_member_is_sent_once_in_the_fewest_calls(backfill, emulator):
    subscribes = [r for r in emulator.requests
                  if r["method"] == "POST" and r["path"] == f"/3.0/lists/{AUDIENCE}"]
    sent = [m["email_address"] for r in subscribes for m in r["body"]["members"]]
    assert sorted(sent) == sorted(backfill[2])  # each member once
    assert len(subscribes) == math.ceil(USERS / 500)
    assert not [r for r in emulator.requests if r["method"] == "PUT"]


def test_new_members_events_are_all_delivered_after_every_member(backfill, emulator):
    summary, out, _ = backfill
    assert summary["events"]["delivered"] == USERS * RECORDS_PER_USER
    assert summary["events"]["skipped"] == {"not_selected": USERS // 10}  # identifies
    assert not read_outputs(out, "dead_letter")
    paths = [r["path"] for r in emulator.requests]
    last_subscribe = max(i for i, p in enumerate(paths) if p == f"/3.0/lists/{AUDIENCE}")
    first_event = min(i for i, p in enumerate(paths) if p.endswith("/events"))
    assert last_subscribe < first_event
