"""The sink against the emulator's limits and faults, through the whole
pipeline: at most 10 connections, recovery from 429s and 503s without losing
or duplicating member upserts, and the API key nowhere to be seen."""
from __future__ import annotations

import base64
import json
import logging
from collections import Counter

import pytest

from pipeline.__main__ import main
from pipeline.local.mailchimp_emulator import Faults, MailchimpEmulator
from tests.helpers import API_KEY, AUDIENCE, SEED, read_outputs, write_jsonl

SYNC = {"syncs": [{
    "name": "all", "audience_id": AUDIENCE, "email_property": "email",
    "send_events": {"enabled": True, "properties": ["event_properties.n"]},
    "send_users": {"enabled": True, "properties": ["FNAME", "SCORE"]}}]}


def records(users: int, events_per_user: int) -> list[dict]:
    return [{"user_id": f"u{u}", "event_type": "step_done",
             "insert_id": f"u{u}-{n}",
             "event_properties": {"n": n},
             "user_properties": {"email": f"user{u}@example.com",
                                 "FNAME": f"User {u}", "SCORE": u}}
            for n in range(events_per_user) for u in range(users)]


def run(emulator, tmp_path, monkeypatch, items, *extra):
    monkeypatch.setenv("MAILCHIMP_API_KEY", API_KEY)
    (tmp_path / "sync.json").write_text(json.dumps(SYNC))
    output_dir = tmp_path / "out"
    assert main(["--sync_config", str(tmp_path / "sync.json"),
                 "--input_files", str(write_jsonl(tmp_path / "in.jsonl", items)),
                 "--output_dir", str(output_dir),
                 "--mailchimp_base_url", emulator.base_url,
                 "--batch_size", "200", *extra]) == 0
    return json.loads((output_dir / "summary.json").read_text()), output_dir


def test_never_more_than_ten_connections(tmp_path, monkeypatch):
    with MailchimpEmulator(seed=SEED, api_key=API_KEY, latency_ms=15) as emu:
        summary, _ = run(emu, tmp_path, monkeypatch, records(40, 15))
        stats = emu.stats
    assert summary["events"]["delivered"] == 600
    assert stats["rejected_429_limit"] == 0
    assert stats["max_open_connections"] <= 10
    # And the limit is used, not merely respected by going one at a time.
    assert 5 <= stats["max_in_flight"] <= 10


def test_recovers_from_429_and_503_without_loss_or_duplicates(tmp_path, monkeypatch):
    faults = Faults(p503=0.1, p429=0.05, p429_empty=0.05, retry_after=0.05)
    with MailchimpEmulator(seed=SEED, api_key=API_KEY, faults=faults,
                           random_seed=3) as emu:
        summary, out = run(emu, tmp_path, monkeypatch, records(60, 5),
                           "--max_retries", "12")
        injected = emu.stats["faults"]
        members = {u: emu.member(AUDIENCE, f"user{u}@example.com") for u in range(60)}
        events = {u: emu.events(AUDIENCE, f"user{u}@example.com") for u in range(60)}
    assert sum(injected.values()) > 10  # the faults did happen
    assert all(m is not None and m["merge_fields"]["SCORE"] == u
               for u, m in members.items())
    for u, posted in events.items():
        assert sorted(int(e["properties"]["n"]) for e in posted) == list(range(5)), u
    assert summary["members"]["upserted"] == 300
    assert summary["events"]["delivered"] == 300
    assert summary["dead_letter"] == 0
    assert read_outputs(out, "dead_letter") == []


def test_the_api_key_is_never_written(tmp_path, monkeypatch, caplog):
    """Faults that end in dead letters, errors and logs: no trace of the key."""
    faults = Faults(p503=0.2, p_reset=0.1, p429_empty=0.1)
    caplog.set_level(logging.DEBUG)
    with MailchimpEmulator(seed=SEED, api_key=API_KEY, faults=faults,
                           random_seed=5) as emu:
        summary, out = run(emu, tmp_path, monkeypatch, records(30, 4),
                           "--max_retries", "1")
    assert summary["dead_letter"] > 0  # there was something to leak into
    reasons = Counter(d["reason"] for d in read_outputs(out, "dead_letter"))
    assert set(reasons) == {"retries_exhausted"}
    seen = "".join(p.read_text() for p in out.iterdir()) + caplog.text
    basic = base64.b64encode(f"mailchimp-stream:{API_KEY}".encode()).decode()
    for trace in (API_KEY, API_KEY.split("-")[0], basic):
        assert trace not in seen
