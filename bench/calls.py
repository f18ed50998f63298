"""Mailchimp calls per backfill: the fewest calls is the fastest backfill.

A backfill of R records of U users (R/U records each, interleaved as an
export is; every record changes its user's FNAME and PLAN; 1 in 40 is a
purchase), with send_users and send_events, at L = --latency-ms. Each
member needs one batch-subscribe entry, so the minimum is ceil(U / 500)
member calls; each event needs one call. Counted at the emulator: batch
subscribes plus single PUTs (members a batch refused, re-sent alone), and
event POSTs. Lower is better: the target is at most 1.5x the minimum.

And the calls must still be the right ones: every member ends with the
values of its last record (read back from the emulator's state), and every
purchase, all of new members, is delivered.
"""
from __future__ import annotations

import math

from bench import data
from bench.common import (AUDIENCE, BATCH_SUBSCRIBE_SIZE, Result, Settings,
                          Workdir, write_jsonl)
from bench.processes import (BATCH_SUBSCRIBE_ROUTE, EVENTS_ROUTE, PUT_MEMBER_ROUTE,
                             MailchimpEmulator)
from bench.runs import run_batch

NAME = "calls"
MERGE_TAGS = ("FNAME", "PLAN")
TARGET = 1.5  # member calls at most this many times the minimum


def _last_values(records: int, users: int) -> tuple[dict[str, dict], int]:
    """Each user's merge fields from its last record (the file is in time
    order), by email; and the purchases, each one event."""
    last, purchases = {}, 0
    for record in data.revisits(records, users):
        properties = record["user_properties"]
        last[properties["email"]] = {t: properties[t] for t in MERGE_TAGS}
        purchases += record["event_type"] == "purchase"
    return last, purchases


def _members_with(expected: dict[str, dict], state: dict) -> int:
    """How many members the emulator holds with exactly their expected values."""
    members = state["lists"][AUDIENCE]["members"].values()
    found = {m["email_address"]: {t: m["merge_fields"].get(t) for t in MERGE_TAGS}
             for m in members}
    return sum(found.get(email) == values for email, values in expected.items())


def _counts(skipped: dict) -> str:
    return ", ".join(f"{n:,} {reason}" for reason, n in skipped.items()) or "none"


def _events_stored(state: dict) -> int:
    return sum(len(events) for events in state["lists"][AUDIENCE]["events"].values())


def run(settings: Settings) -> list[Result]:
    records, users = settings.calls_records, settings.calls_users
    if users % 7919 == 0:
        raise ValueError(f"--calls-users {users}: must not be a multiple of 7919")
    expected, purchases = _last_values(records, users)
    with Workdir(NAME) as workdir, MailchimpEmulator(
            workdir, data.seed(0), settings.latency_ms) as emulator:
        path = write_jsonl(workdir / "backfill.jsonl", data.revisits(records, users))
        backfill = run_batch(workdir, NAME, emulator, data.backfill_sync(), path,
                             settings.timeout_s)
        seen = emulator.stats()["requests"]
        state = emulator.state()
    subscribes, puts = seen.get(BATCH_SUBSCRIBE_ROUTE, 0), seen.get(PUT_MEMBER_ROUTE, 0)
    event_calls = seen.get(EVENTS_ROUTE, 0)
    minimum = math.ceil(len(expected) / BATCH_SUBSCRIBE_SIZE)
    right = _members_with(expected, state)
    summary = backfill.summary
    delivered = summary["events"]["delivered"]
    return [
        Result(NAME, "member calls per backfill", subscribes + puts, "calls",
               f"minimum ceil({len(expected):,}/500)", minimum,
               at_most=math.floor(TARGET * minimum),
               note=f"{records:,} records of {users:,} users, "
                    f"{records // users} each, interleaved; {subscribes} batch "
                    f"subscribes + {puts} single PUTs; ratio = calls / minimum, "
                    f"lower is better (target ≤ {TARGET:g}x); "
                    f"{summary['members']['upserted']:,} records' upserts "
                    f"combined into {len(expected):,} members, skipped "
                    f"{_counts(summary['members']['skipped'])}; run "
                    f"{backfill.finished.wall_s:.1f} s at "
                    f"L={settings.latency_ms:g} ms"),
        Result(NAME, "members ending with their last values", right, "members",
               "distinct members", len(expected), target=1.0,
               note="FNAME and PLAN of every member in the emulator's state "
                    "against its last record in the file"),
        Result(NAME, "event calls per backfill", event_calls, "calls",
               "purchases in the input (one call each)", purchases,
               at_most=purchases,
               note=f"{delivered:,}/{purchases:,} delivered, "
                    f"{_events_stored(state):,} stored by the emulator, skipped "
                    f"{_counts(summary['events']['skipped'])}: every user is a "
                    f"new member, so none is lost to its upsert coming second"),
        Result(NAME, "events delivered", delivered, "events",
               "purchases in the input", purchases, target=1.0),
    ]
