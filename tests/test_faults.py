"""A run through every fault Mailchimp can throw: 503s, 429s (with and
without a body, with Retry-After), requests that time out and connections
reset, the edge's HTML error pages, and 2xx answers spoiled after Mailchimp
acted (HTML, empty, `{}`, `[]`, cut short, stalled half-way). Nothing is
lost, nothing is posted twice, everything is accounted for."""
from __future__ import annotations

import base64
import io
import json
import logging
from collections import Counter

import pytest

from pipeline.__main__ import main
from pipeline.local.mailchimp_emulator import Faults, MailchimpEmulator
from tests.helpers import API_KEY, AUDIENCE, SEED, read_outputs, write_jsonl

USERS, EVENTS_PER_USER = 200, 10
FAULTS = Faults(p503=0.08, p429=0.03, p429_empty=0.02, retry_after=1,
                p_timeout=0.02, timeout_stall_s=1.0, p_reset=0.02,
                p502_html=0.02, p503_html=0.02, p200_html=0.02, p200_empty=0.02,
                p200_empty_object=0.02, p200_array=0.02, p_cut_body=0.02,
                p_stalled_body=0.02)
SYNC = {"syncs": [{
    "name": "faulty", "audience_id": AUDIENCE, "email_property": "email",
    "send_events": {"enabled": True, "properties": ["insert_id"]},
    "send_users": {"enabled": True, "properties": ["FNAME", "SCORE"]}}]}


def email(user: int) -> str:
    return f"fault{user}@example.com"


@pytest.fixture(scope="module")
def faulty_run(tmp_path_factory):
    """One run; its logs (every level) are kept to look for the key."""
    tmp = tmp_path_factory.mktemp("faults")
    records = [{"user_id": f"u{u}", "event_type": "step_done", "insert_id": f"u{u}-{n}",
                "user_properties": {"email": email(u), "FNAME": f"F{u}", "SCORE": n}}
               for n in range(EVENTS_PER_USER) for u in range(USERS)]
    (tmp / "sync.json").write_text(json.dumps(SYNC))
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("MAILCHIMP_API_KEY", API_KEY)
    logs = io.StringIO()
    handler = logging.StreamHandler(logs)
    root = logging.getLogger()
    root.addHandler(handler)
    level, root.level = root.level, logging.DEBUG
    try:
        with MailchimpEmulator(seed=json.loads(json.dumps(SEED)), api_key=API_KEY,
                               faults=FAULTS, random_seed=11) as emu:
            assert main(["--sync_config", str(tmp / "sync.json"),
                         "--input_files", str(write_jsonl(tmp / "in.jsonl", records)),
                         "--output_dir", str(tmp / "out"),
                         "--mailchimp_base_url", emu.base_url,
                         "--batch_size", "500", "--max_retries", "8",
                         "--request_timeout_secs", "0.5"]) == 0
            members = {u: emu.member(AUDIENCE, email(u)) for u in range(USERS)}
            posted = [e["properties"]["insert_id"] for u in range(USERS)
                      for e in emu.events(AUDIENCE, email(u))]
            injected = emu.stats["faults"]
    finally:
        monkeypatch.undo()
        root.removeHandler(handler)
        root.setLevel(level)
    written = "".join(p.read_text() for p in (tmp / "out").iterdir())
    summary = json.loads((tmp / "out" / "summary.json").read_text())
    return (summary, read_outputs(tmp / "out", "dead_letter"), members, posted,
            written + logs.getvalue(), injected)


def test_every_kind_of_fault_happened(faulty_run):
    *_, injected = faulty_run
    assert {kind for kind, n in injected.items() if n} == {
        "503", "429", "429_empty", "timeout", "reset", "502_html", "503_html",
        "200_html", "200_empty", "200_empty_object", "200_array", "cut_body",
        "stalled_body"}


def test_the_api_key_is_in_no_log_line_file_or_dead_letter(faulty_run):
    *_, seen, _ = faulty_run
    assert "retry" in seen and "not retried" in seen  # there were logs to read
    basic = base64.b64encode(f"mailchimp-stream:{API_KEY}".encode()).decode()
    for trace in (API_KEY, API_KEY.split("-")[0], basic):
        assert trace not in seen


def test_every_record_is_accounted_for(faulty_run):
    summary, dead, *_ = faulty_run
    assert summary["records_in"] == USERS * EVENTS_PER_USER
    for section in ("events", "members"):
        figures = summary[section]
        done = figures["delivered" if section == "events" else "upserted"]
        assert done + sum(figures["skipped"].values()) + figures["dead_letter"] \
            == summary["records_in"], section
    assert len(dead) == summary["dead_letter"]


def test_no_member_upsert_is_lost(faulty_run):
    summary, _, members, *_ = faulty_run
    assert summary["members"]["upserted"] == USERS * EVENTS_PER_USER
    for user, member in members.items():
        assert member["status"] == "subscribed"
        # The last record of each user carries SCORE 9: upserts applied in order.
        fields = member["merge_fields"]
        assert (fields["FNAME"], fields["SCORE"]) == (f"F{user}", EVENTS_PER_USER - 1)


def test_no_event_is_posted_twice_and_none_silently_lost(faulty_run):
    summary, dead, _, posted, *_ = faulty_run
    assert len(posted) == len(set(posted)) == summary["events"]["delivered"]
    # An event whose request may have reached Mailchimp (timeout, reset
    # before its answer) is dead-lettered for replay rather than retried into
    # a duplicate; one answered 2xx, whatever its body, was delivered.
    dead_ids = {json.loads(d["payload"])["insert_id"] for d in dead}
    assert {d["reason"] for d in dead} == {"retries_exhausted"}
    assert {d["stage"] for d in dead} == {"events"}
    everything = {f"u{u}-{n}" for n in range(EVENTS_PER_USER) for u in range(USERS)}
    assert set(posted) | dead_ids == everything and not set(posted) & dead_ids
    assert Counter(d["error"].split(" ")[0] for d in dead).keys() <= {
        "ReadTimeout", "ConnectionError"}
