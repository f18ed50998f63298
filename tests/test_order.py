"""Per-user order in every mode: a record's upsert and its event travel as
one element from the rules to the sink, so no flush, shard or slot splits
them, and one member's events are posted in their order."""
from __future__ import annotations

import json

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.testing import test_pipeline, test_stream
from apache_beam.testing.util import assert_that, equal_to

from pipeline.local.mailchimp_emulator import MailchimpEmulator
from transforms.batching import BatchPerAudience, BatchPerSlot
from transforms.mailchimp.credentials import Endpoint
from transforms.parse import ParseRecords
from transforms.rules import ApplySync, SendSync, SendSyncsTogether
from transforms.sink import SinkSettings, WriteToMailchimp
from transforms.sync import Sync
from tests.helpers import API_KEY, AUDIENCE, SEED, beam_pipeline

SYNC = Sync.model_validate({
    "name": "s", "audience_id": AUDIENCE, "email_property": "email",
    "send_events": {"enabled": True, "properties": ["event_properties.n"]},
    "send_users": {"enabled": True}})


def line(user: str, event_type: str = "step_done", n: int = 0, **extra) -> str:
    return json.dumps({"user_id": user, "event_type": event_type,
                       "insert_id": f"{user}-{n}", "event_properties": {"n": n},
                       "user_properties": {"email": f"{user}@example.com"}, **extra})


def test_a_records_upsert_and_event_leave_the_rules_as_one_element():
    lines = [line("ada"), line("bob", event_type="x")]  # "x": an invalid event name
    with beam_pipeline() as p:
        rules = (p | beam.Create(lines) | ParseRecords()).records | ApplySync(SYNC)
        assert_that(rules.main | beam.Map(
            lambda packed: tuple((type(r).__name__, r.email) for r in packed.requests)),
            equal_to([(("MemberUpsert", "ada@example.com"),
                       ("MemberEvent", "ada@example.com")),
                      (("MemberUpsert", "bob@example.com"),)]), label="requests")
        assert_that(rules.skipped | beam.Map(lambda s: (s.email, s.reason)),
                    equal_to([("bob@example.com", "invalid_event_name")]),
                    label="skips")


def _sending(mode: str, endpoint: Endpoint):
    """The local graph (per sync, per audience) or the remote one (every sync
    through one set of slots), with a flush after every record."""
    if mode == "local":
        return SendSync(SYNC, BatchPerAudience(1, shards=4, max_buffering_secs=1,
                                               streaming=True),
                        WriteToMailchimp(endpoint, SinkSettings()))
    return SendSyncsTogether([SYNC], BatchPerSlot(1, slots=2, max_buffering_secs=1,
                                                  streaming=True),
                             WriteToMailchimp(endpoint, SinkSettings(
                                 max_connections=2, one_at_a_time=True)))


@pytest.mark.parametrize("mode", ["local", "remote"])
def test_a_new_users_upsert_and_event_straddling_a_flush(mode, monkeypatch):
    """Batches of one element, and a buffering flush between records: were
    the upsert and the event two elements, a flush would fall between them
    (and on a runner that reorders a shuffle, the event could come first)."""
    monkeypatch.setenv("MAILCHIMP_API_KEY", API_KEY)
    users = [f"new{u}" for u in range(4)]
    stream = test_stream.TestStream()
    for user in users:
        stream = stream.add_elements([line(user)]).advance_processing_time(5)
    stream = stream.advance_watermark_to_infinity()
    options = PipelineOptions(flags=[])
    options.view_as(StandardOptions).streaming = True
    with MailchimpEmulator(seed=json.loads(json.dumps(SEED)), api_key=API_KEY,
                           latency_ms=20) as emu:
        with test_pipeline.TestPipeline(runner="BundleBasedDirectRunner", options=options) as p:
            records = p | stream | ParseRecords()
            sent = records.records | _sending(mode, Endpoint(emu.base_url))
            outcomes = [pcoll for label, pcoll in sent.items()
                        if label.endswith(("delivered", "skipped", "dead letters"))]
            assert_that(outcomes | beam.Flatten() | beam.Map(
                lambda o: (type(o).__name__, o.kind, getattr(o, "reason", None))),
                equal_to([("Delivered", "member", None), ("Delivered", "event", None)]
                         * len(users)))
        for user in users:
            assert [e["name"] for e in emu.events(AUDIENCE, f"{user}@example.com")] \
                == ["step_done"]


def test_a_members_events_are_posted_in_their_order(monkeypatch):
    """The sink sends a batch's members' events in parallel, but each
    member's own events one after another, in their order."""
    monkeypatch.setenv("MAILCHIMP_API_KEY", API_KEY)
    lines = [line(f"u{u}", n=n) for n in range(8) for u in range(4)]
    with MailchimpEmulator(seed=json.loads(json.dumps(SEED)), api_key=API_KEY,
                           latency_ms=10) as emu:
        with beam_pipeline() as p:
            records = p | beam.Create(lines, reshuffle=False) | ParseRecords()
            records.records | SendSync(SYNC, BatchPerAudience(1000),
                                       WriteToMailchimp(Endpoint(emu.base_url)))
        for u in range(4):
            posted = emu.events(AUDIENCE, f"u{u}@example.com")
            assert [e["properties"]["n"] for e in posted] == [str(n) for n in range(8)]
