"""`python -m pipeline` end to end: the real FnApiRunner, real HTTP to the
local Mailchimp emulator, the files and summary a user gets."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections import Counter

import pytest

from pipeline.__main__ import main
from tests.helpers import (API_KEY, AUDIENCE, EVENTS_AUDIENCE, read_outputs,
                           request_schema_validator, write_jsonl)

NEWSLETTER = {
    "name": "newsletter", "audience_id": AUDIENCE, "email_property": "email",
    "send_events": {
        "enabled": True, "event_types": ["purchase"],
        "filters": [{"property": "user_id", "op": "is_set"},
                    {"property": "event_properties.plan", "op": "not_equals",
                     "value": "free"}],
        "properties": ["event_properties.plan", "event_properties.amount",
                       "event_properties.ratio", "event_properties.flag",
                       "event_properties.nothing", "event_properties.obj",
                       "event_properties.list", "platform"]},
    "send_users": {"enabled": True, "properties": ["FNAME", "PLAN", "COMPANY"]},
}
PRODUCT = {"name": "product", "audience_id": EVENTS_AUDIENCE,
           "email_property": "email",
           "send_events": {"enabled": True, "event_types": ["*"]}}


def event(insert_id, event_type="purchase", email="ada@example.com", **extra):
    record = {"user_id": f"user-{email}", "event_type": event_type,
              "insert_id": insert_id, "time": 1_700_000_000_000,
              "user_properties": {"email": email, "FNAME": "Ada", "PLAN": "pro",
                                  "COMPANY": "Analytical Engines"},
              "event_properties": {"plan": "pro"}}
    record.update(extra)
    return record


RECORDS = [
    # Upper case and spaces: sent as given (stripped), hashed lower-cased.
    event("e1", email=" Ada@Example.COM ", platform="Web", event_properties={
        "plan": "pro", "amount": 42, "ratio": 4.5, "flag": True,
        "nothing": None, "obj": {"a": 1}, "list": [1, "b"]}),
    event("e2", event_type="page viewed"),            # not a purchase
    event("e3", event_properties={"plan": "free"}),   # fails a filter
    {"device_id": "d-1", "event_type": "purchase", "insert_id": "e4"},  # anonymous
    {"identification": [{"user_id": "user-grace", "user_properties": {
        "$set": {"email": "grace@example.com", "FNAME": "Grace"},
        "$unset": {"PLAN": "-"}}}]},
    event("e6", email="gone@example.com"),            # unsubscribed member
    event("e7", email="new@example.com"),             # new to both audiences
    {"user_id": "user-x", "event_type": "purchase", "insert_id": "e8",
     "event_properties": {"plan": "pro"}},            # no email
    event("e9", email="bad@@example"),                # invalid email
    "{oops, not json",
]


@pytest.fixture
def run(emulator, tmp_path, monkeypatch):
    """Run the pipeline as a user would; returns (summary, output_dir)."""
    monkeypatch.setenv("MAILCHIMP_API_KEY", API_KEY)
    config = tmp_path / "sync.json"
    config.write_text(json.dumps({"syncs": [NEWSLETTER, PRODUCT]}))

    def _run(records, *extra):
        output_dir = tmp_path / "out"
        status = main([
            "--sync_config", str(config),
            "--input_files", str(write_jsonl(tmp_path / "in.jsonl", records)),
            "--output_dir", str(output_dir),
            "--mailchimp_base_url", emulator.base_url, *extra])
        assert status == 0
        return json.loads((output_dir / "summary.json").read_text()), output_dir
    return _run


def md5(email):
    return hashlib.md5(email.encode()).hexdigest()


def test_events_are_selected_filtered_and_stringified(run, emulator):
    run(RECORDS)
    events = [(e["name"], e["properties"])
              for e in emulator.events(AUDIENCE, "ada@example.com")]
    assert events == [("purchase", {"plan": "pro", "amount": "42", "ratio": "4.5",
                                    "flag": "true", "nothing": "",
                                    "obj": '{"a":1}', "list": '[1,"b"]',
                                    "platform": "Web"})]
    # The product sync takes every type, without properties.
    assert sorted(e["name"] for e in emulator.events(
        EVENTS_AUDIENCE, "ada@example.com")) == ["page_viewed", "purchase", "purchase"]


def test_members_upserted_before_their_events(run, emulator):
    run(RECORDS)
    member = emulator.member(AUDIENCE, "new@example.com")
    assert member["status"] == "subscribed"
    assert [e["name"] for e in emulator.events(AUDIENCE, "new@example.com")] == [
        "purchase"]


def test_unknown_members_events_are_skipped_without_send_users(run, emulator, tmp_path):
    summary, out = run(RECORDS)
    assert emulator.member(EVENTS_AUDIENCE, "new@example.com") is None
    not_found = [s for s in read_outputs(out, "skipped_members")
                 if s["reason"] == "member_not_found"]
    assert {(s["sync"], s["email"], s["insert_id"]) for s in not_found} == {
        ("product", "gone@example.com", "e6"), ("product", "new@example.com", "e7")}
    assert summary["syncs"]["product"]["events"]["skipped"]["member_not_found"] == 2


def test_identify_updates_merge_fields_without_an_event(run, emulator):
    run(RECORDS)
    grace = emulator.member(AUDIENCE, "grace@example.com")
    assert grace["merge_fields"]["FNAME"] == "Grace"
    assert grace["merge_fields"].get("PLAN", "") == ""
    assert emulator.events(AUDIENCE, "grace@example.com") == []
    assert emulator.events(EVENTS_AUDIENCE, "grace@example.com") == []


def test_only_the_audiences_merge_fields_are_sent(run, emulator):
    summary, out = run(RECORDS)
    sent = [m for r in emulator.requests if r["method"] in ("POST", "PUT")
            and r["path"].endswith(AUDIENCE) for m in r["body"]["members"]]
    assert sent and all("COMPANY" not in m.get("merge_fields", {}) for m in sent)
    unknown = read_outputs(out, "unknown_merge_fields")
    # One report per member, its upserts combined (Ada's three records,
    # e1-e3); summary.json still counts the upserts that carried the field.
    assert sorted(u["email"].lower() for u in unknown) == [
        "ada@example.com", "gone@example.com", "new@example.com"]
    assert all(u["fields"] == ["COMPANY"] and u["audience_id"] == AUDIENCE
               for u in unknown)
    assert summary["unknown_merge_fields"] == {"COMPANY": 5}


def test_emails_are_normalised_and_hashed_lower_case(run, emulator):
    run(RECORDS)
    posted = [r for r in emulator.requests if r["path"].endswith("/events")]
    ada_hashes = {r["path"].split("/")[-2] for r in posted
                  if r["path"].startswith(f"/3.0/lists/{AUDIENCE}/")
                  and r["body"]["name"] == "purchase"}
    assert md5("ada@example.com") in ada_hashes
    ada = emulator.member(AUDIENCE, "ada@example.com")
    assert ada["email_address"] == "Ada@Example.COM"


def test_existing_members_status_is_never_changed(run, emulator):
    run(RECORDS)
    assert emulator.member(AUDIENCE, "gone@example.com")["status"] == "unsubscribed"
    assert emulator.member(AUDIENCE, "existing@example.com")["status"] == "subscribed"
    for request in emulator.requests:
        for member in (request["body"] or {}).get("members", []):
            assert "status" not in member and member["status_if_new"] == "subscribed"


def test_bad_records_are_skipped_or_dead_lettered_with_reasons(run):
    summary, out = run(RECORDS)
    assert read_outputs(out, "dead_letter") == [{
        "stage": "parse", "reason": "malformed_json",
        "error": "invalid JSON: Expecting property name enclosed in double "
                 "quotes: line 1 column 2 (char 1)",
        "payload": "{oops, not json"}]
    skipped = {(s["sync"], s["kind"], s["reason"], s.get("insert_id"))
               for s in read_outputs(out, "skipped_members")}
    assert {("newsletter", "member", "anonymous", "e4"),
            ("product", "event", "anonymous", "e4"),
            ("newsletter", "event", "no_email", "e8"),
            ("newsletter", "member", "no_email", "e8"),
            ("newsletter", "member", "invalid_email", "e9")} <= skipped
    # Not selected: counted, never written.
    assert not any(s[2] == "not_selected" for s in skipped)
    # e2 (type), e3 and e4 (filters), the identify call.
    assert summary["syncs"]["newsletter"]["events"]["skipped"]["not_selected"] == 4


def test_every_record_is_accounted_for(run):
    summary, _ = run(RECORDS)
    assert summary["records_in"] == len(RECORDS)
    assert summary["dead_letter"] == 1
    assert summary["duplicates"] == 0
    parsed = summary["records_in"] - summary["dead_letter_by_reason"][
        "malformed_json"]
    for name, sync in summary["syncs"].items():
        events = sync["events"]
        assert events["delivered"] + sum(events["skipped"].values()) + events[
            "dead_letter"] == parsed, name
    members = summary["syncs"]["newsletter"]["members"]
    assert members["upserted"] + sum(members["skipped"].values()) + members[
        "dead_letter"] == parsed
    assert summary["syncs"]["newsletter"]["events"]["delivered"] == 3
    assert summary["syncs"]["newsletter"]["members"]["upserted"] == 6


def test_a_record_seen_twice_is_posted_once(run, emulator):
    """A redelivered message or overlapping backfill repeats insert_ids."""
    repeated = [event("d1"), event("d2"), event("d1"), {"events": [event("d2"), event("d3")]},
                {"user_id": "user-ada@example.com", "event_type": "purchase",
                 "user_properties": {"email": "ada@example.com"}}] * 2
    summary, _ = run(repeated)
    assert summary["records_in"] == 12 and summary["duplicates"] == 7
    names = [e["name"] for e in emulator.events(AUDIENCE, "ada@example.com")]
    # d1, d2, d3 once each, and both copies of the record without insert_id.
    assert names == ["purchase"] * 5
    parsed = summary["records_in"] - summary["duplicates"]
    events = summary["syncs"]["newsletter"]["events"]
    assert events["delivered"] + sum(events["skipped"].values()) == parsed


def test_what_the_sink_sends_validates_against_mailchimps_openapi(run, emulator, openapi):
    run(RECORDS)
    operations = {
        ("POST", "members"): ("/3.0/lists/{list_id}", "post"),
        ("PUT", "member"): ("/3.0/lists/{list_id}/members/{subscriber_hash}", "put"),
        ("POST", "events"): ("/3.0/lists/{list_id}/members/{subscriber_hash}/events", "post"),
    }
    checked = Counter()
    for request in emulator.requests:
        if request["body"] is None:
            continue
        parts = request["path"].split("/")
        shape = {4: "members", 6: "member", 7: "events"}[len(parts)]
        validator = request_schema_validator(openapi, *operations[request["method"], shape])
        validator.validate(request["body"])
        if shape == "members":
            assert len(request["body"]["members"]) <= 500  # a description-only rule
        if shape == "events":
            assert 2 <= len(request["body"]["name"]) <= 30  # likewise
        checked[shape] += 1
    assert checked["members"] >= 1 and checked["events"] >= 6


def test_the_command_exits_2_with_what_to_fix(tmp_path, emulator):
    config = tmp_path / "sync.json"
    config.write_text(json.dumps({"syncs": [NEWSLETTER]}))
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "--sync_config", str(config),
         "--input_files", str(write_jsonl(tmp_path / "in.jsonl", RECORDS)),
         "--mailchimp_base_url", emulator.base_url],
        env={"PATH": "/usr/bin:/bin", "MAILCHIMP_API_KEY": "b4dk3y9q-us6"},
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "mailchimp-stream: Mailchimp refused the credentials" in done.stderr
    assert "b4dk3y9q" not in done.stderr + done.stdout


@pytest.mark.parametrize("case, key, message", [
    ("bad config", API_KEY, "syncs[0] (newsletter).status_if_new: Input should be"),
    ("no credentials", None, "no Mailchimp credentials"),
    ("unknown audience", API_KEY, "audience_id 'nope' does not exist"),
    ("unreachable", API_KEY, "cannot reach Mailchimp at http://127.0.0.1:9/3.0"),
    ("no input", API_KEY, "matches no file"),
    ("two sources", API_KEY, "give exactly one of --input_files"),
])
def test_start_up_errors_say_what_to_fix(tmp_path, emulator, monkeypatch, capsys,
                                         case, key, message):
    monkeypatch.delenv("MAILCHIMP_API_KEY", raising=False)
    monkeypatch.delenv("MAILCHIMP_OAUTH_TOKEN", raising=False)
    if key:
        monkeypatch.setenv("MAILCHIMP_API_KEY", key)
    sync = dict(NEWSLETTER)
    if case == "bad config":
        sync["status_if_new"] = "cleaned"
    if case == "unknown audience":
        sync["audience_id"] = "nope"
    config = tmp_path / "sync.json"
    config.write_text(json.dumps({"syncs": [sync]}))
    records = write_jsonl(tmp_path / "in.jsonl", RECORDS)
    argv = ["--sync_config", str(config), "--input_files",
            str(tmp_path / "none-*.jsonl") if case == "no input" else str(records),
            "--mailchimp_base_url",
            "http://127.0.0.1:9/3.0" if case == "unreachable" else emulator.base_url]
    if case == "two sources":
        argv += ["--input_topic", "projects/my-project/topics/t"]
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_a_dry_run_writes_nothing_and_keeps_what_it_would_send(run, emulator, openapi):
    before = emulator.snapshot()
    summary, out = run(RECORDS, "--dry_run")
    assert emulator.snapshot() == before
    sent = {(r["method"], r["path"]) for r in emulator.requests}
    assert all(method == "GET" for method, _ in sent)  # merge fields, ping
    kept = read_outputs(out, "dry_run")
    assert kept and not any(API_KEY in p.read_text() for p in out.glob("dry_run*.jsonl"))
    operations = {
        ("POST", 4): ("/3.0/lists/{list_id}", "post"),
        ("PUT", 6): ("/3.0/lists/{list_id}/members/{subscriber_hash}", "put"),
        ("POST", 7): ("/3.0/lists/{list_id}/members/{subscriber_hash}/events", "post"),
    }
    for request in kept:
        operation = operations[request["method"], len(request["path"].split("/"))]
        request_schema_validator(openapi, *operation).validate(request["body"])
    events = [r for r in kept if r["path"].endswith("/events")]
    members = [m for r in kept if "members" in r["body"] for m in r["body"]["members"]]
    # Counted as a real run would count them, every request answered 2xx.
    assert len(events) == summary["events"]["delivered"]
    assert {m["email_address"].lower() for m in members} >= {
        "ada@example.com", "new@example.com"}
    assert summary["members"]["upserted"] > 0
