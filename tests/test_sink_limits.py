"""The sink against the emulator's limits and faults, through the whole
pipeline: at most 10 connections, recovery from 429s and 503s without losing
or duplicating member upserts, and the API key nowhere to be seen; and what
the sink contains: an answer it cannot read, a bundle failing after it."""
from __future__ import annotations

import base64
import http.server
import json
import logging
import threading
from collections import Counter

import apache_beam as beam
import pytest
from apache_beam.testing.util import assert_that, equal_to

from pipeline.__main__ import main
from pipeline.local.mailchimp_emulator import Faults, MailchimpEmulator
from transforms.batching import BatchPerAudience, BatchPerSlot
from transforms.mailchimp.credentials import Endpoint
from transforms.parse import ParseRecords
from transforms.rules import SendSync, SendSyncsTogether
from transforms.sink import SinkSettings, WriteToMailchimp
from transforms.sync import Sync
from tests.helpers import (API_KEY, AUDIENCE, EVENTS_AUDIENCE, SEED, beam_pipeline,
                           read_outputs, write_jsonl)

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


# --- containment: nothing escapes the sink once it has sent anything ---------

class _OddMailchimp(http.server.BaseHTTPRequestHandler):
    """Accepts everything; its audience's PLAN dropdown has its options in a
    shape Mailchimp does not document (a string), which our merge-field
    conversion does not expect."""
    received: list[tuple[str, str]]

    def _answer(self, status: int, answer=None) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        self.received.append((self.command, self.path.split("?")[0]))
        data = json.dumps(answer(body)).encode() if answer else b""
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # merge fields
        self._answer(200, lambda _: {"merge_fields": [
            {"tag": "PLAN", "name": "Plan", "type": "dropdown",
             "options": "free,pro"}], "total_items": 1})

    def do_POST(self):
        if self.path.endswith("/events"):
            self._answer(204)
        else:  # batch subscribe: every member created
            self._answer(200, lambda body: {
                "new_members": [{"email_address": m["email_address"]}
                                for m in body["members"]],
                "updated_members": [], "errors": [], "error_count": 0})

    def log_message(self, *args):
        pass


@pytest.fixture
def odd_mailchimp():
    received: list[tuple[str, str]] = []
    handler = type("Handler", (_OddMailchimp,), {"received": received})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/3.0", received
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("one_at_a_time", [False, True])
def test_a_batch_whose_delivery_raises_ends_as_outcomes(odd_mailchimp, monkeypatch,
                                                        one_at_a_time):
    """One member's merge field has an unexpected shape, found after the
    other requests were under way: that member ends as a dead letter, the
    bundle does not fail, and nothing is posted twice."""
    monkeypatch.setenv("MAILCHIMP_API_KEY", API_KEY)
    base_url, received = odd_mailchimp
    sync = Sync.model_validate({
        "name": "s", "audience_id": AUDIENCE, "email_property": "email",
        "send_events": {"enabled": True}, "send_users": {"enabled": True,
                                                         "properties": ["PLAN"]}})
    lines = [json.dumps({"user_id": f"u{u}", "event_type": "step_done",
                         "insert_id": f"i{u}", "user_properties": {
                             "email": f"u{u}@example.com", **plan}})
             for u, plan in enumerate([{}, {"PLAN": "pro"}])]
    sink = WriteToMailchimp(Endpoint(base_url), SinkSettings(one_at_a_time=one_at_a_time))
    with beam_pipeline() as p:
        records = (p | beam.Create(lines, reshuffle=False) | ParseRecords()).records
        if one_at_a_time:  # one record a batch
            sent = records | SendSyncsTogether([sync], BatchPerSlot(1, slots=1), sink)
        else:  # two requests a batch: one record's
            sent = records | SendSync(sync, BatchPerAudience(2), sink)
        dead = next(v for k, v in sent.items() if k.endswith("dead letters"))
        delivered = [v for k, v in sent.items() if k.endswith("delivered")] \
            | "All delivered" >> beam.Flatten()
        assert_that(dead | beam.Map(lambda d: (d.stage, d.reason, d.payload)),
                    equal_to([("members", "retries_exhausted", lines[1])]),
                    label="dead letters")
        assert_that(delivered | beam.Map(lambda d: (d.kind, d.insert_id)),
                    equal_to([("member", "i0"), ("event", "i0"), ("event", "i1")]),
                    label="delivered")
    assert sorted(Counter(received).values()) == [1, 1, 1, 1]
    assert Counter(method for method, _ in received) == {"GET": 1, "POST": 3}


def _fail(outcome):
    raise RuntimeError("a step after the sink failed")


def test_a_failed_bundle_sends_nothing_it_had_queued(monkeypatch):
    """A step fused after the sink fails on its first outcome: the batch the
    sink had queued behind the one in flight is never posted (a retry of the
    bundle would post it again)."""
    monkeypatch.setenv("MAILCHIMP_API_KEY", API_KEY)
    sync = Sync.model_validate({
        "name": "events", "audience_id": EVENTS_AUDIENCE, "email_property": "email",
        "send_events": {"enabled": True}})
    lines = [json.dumps({"user_id": "ada", "event_type": "step_done",
                         "insert_id": f"i{n}",
                         "user_properties": {"email": "ada@example.com"}})
             for n in range(10)]
    with MailchimpEmulator(seed=SEED, api_key=API_KEY, latency_ms=300) as emu:
        with pytest.raises(Exception, match="a step after the sink failed"):
            with beam_pipeline() as p:
                parsed = p | beam.Create(lines, reshuffle=False) | ParseRecords()
                sent = parsed.records | SendSync(
                    sync, BatchPerAudience(1), WriteToMailchimp(Endpoint(emu.base_url)))
                sent["events delivered"] | beam.Map(_fail)
        posted = len(emu.events(EVENTS_AUDIENCE, "ada@example.com"))
    # The first batch (whose outcome failed the step) and at most the one
    # already in flight; not the one queued behind it.
    assert 1 <= posted <= 2


def test_the_sinks_throttling_reaches_the_runner_as_counters(monkeypatch):
    """The client counts on the sink's sender threads, which have no Beam
    metrics context; the sink reports the tally from its own thread."""
    from apache_beam.metrics.metric import MetricsFilter
    from pipeline.local.mailchimp.faults import Aimed
    from transforms.records import NAMESPACE
    monkeypatch.setenv("MAILCHIMP_API_KEY", API_KEY)
    route = "POST /3.0/lists/{list_id}/members/{subscriber_hash}/events"
    faults = Faults(aimed=(Aimed("429", route, 3),), retry_after=0)
    with MailchimpEmulator(seed=SEED, api_key=API_KEY, faults=faults) as emu:
        pipeline = beam_pipeline()
        parsed = (pipeline | beam.Create([json.dumps(r) for r in records(5, 2)])
                  | ParseRecords())
        sent = parsed.records | SendSync(
            Sync.model_validate(SYNC["syncs"][0]), BatchPerAudience(100),
            WriteToMailchimp(Endpoint(emu.base_url), SinkSettings()))
        # Each user's two upserts are sent as one member: 10 records' worth.
        delivered = (sent["members delivered"], sent["events delivered"]) \
            | beam.Flatten() | beam.Map(lambda d: d.records or 1)
        assert_that(delivered | beam.CombineGlobally(sum), equal_to([20]))
        result = pipeline.run()
        result.wait_until_finish()
    counters = {c.key.metric.name: c.committed for c in result.metrics().query(
        MetricsFilter().with_namespace(NAMESPACE))["counters"]}
    # Three 429s: to three requests, or a request answered 429 twice.
    assert counters["retries_429"] == 3
    assert 1 <= counters["throttled_requests"] <= 3
