"""One connection budget per Mailchimp account for the whole job.

Local runners: every worker process of this machine shares the account's
MachineSlots, so four processes hold at most 10 requests in flight.
Remote runners: requests are keyed into exactly `--max_connections` slots
for the whole job and each slot's batches are sent one request at a time;
here the remote graph runs on a local runner."""
from __future__ import annotations

import json

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to

from pipeline.__main__ import main
from pipeline.config import load_config
from pipeline.graph import build
from pipeline.local.mailchimp_emulator import MailchimpEmulator
from transforms.batching import BatchPerSlot
from transforms.mailchimp.credentials import Endpoint
from transforms.parse import ParseRecords
from transforms.rules import ApplySync
from transforms.sink import SinkSettings, WriteToMailchimp
from transforms.sync import Sync
from tests.helpers import (API_KEY, AUDIENCE, EVENTS_AUDIENCE, SEED,
                           beam_pipeline, write_jsonl)

SYNCS = [{"name": "newsletter", "audience_id": AUDIENCE, "email_property": "email",
          "send_events": {"enabled": True}, "send_users": {"enabled": True}},
         {"name": "product", "audience_id": EVENTS_AUDIENCE, "email_property": "email",
          "send_events": {"enabled": True}, "send_users": {"enabled": True}}]
EVENTS_ROUTE = "POST /3.0/lists/{list_id}/members/{subscriber_hash}/events"


def lines(users: int, events_per_user: int, prefix: str = "u") -> list[str]:
    return [json.dumps({"user_id": f"{prefix}{u}", "event_type": "step_done",
                        "insert_id": f"{prefix}{u}-{n}",
                        "user_properties": {"email": f"{prefix}{u}@example.com"}})
            for n in range(events_per_user) for u in range(users)]


def emulator(**kwargs) -> MailchimpEmulator:
    return MailchimpEmulator(seed=json.loads(json.dumps(SEED)), api_key=API_KEY,
                             **kwargs)


def test_four_worker_processes_hold_at_most_ten_requests(tmp_path, monkeypatch):
    monkeypatch.setenv("MAILCHIMP_API_KEY", API_KEY)
    (tmp_path / "sync.json").write_text(json.dumps({"syncs": SYNCS[:1]}))
    inputs = tmp_path / "in"
    inputs.mkdir()
    for n in range(8):
        write_jsonl(inputs / f"part-{n}.jsonl", lines(40, 3, prefix=f"f{n}u"))
    with emulator(latency_ms=20) as emu:  # it refuses an 11th request: 429
        assert main(["--sync_config", str(tmp_path / "sync.json"),
                     "--input_files", str(inputs / "*.jsonl"),
                     "--output_dir", str(tmp_path / "out"),
                     "--mailchimp_base_url", emu.base_url,
                     "--direct_num_workers=4",
                     "--direct_running_mode=multi_processing"]) == 0
        stats = emu.stats
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["events"]["delivered"] == 8 * 40 * 3
    assert stats["requests"][EVENTS_ROUTE] == 8 * 40 * 3
    assert stats["rejected_429_limit"] == 0
    assert stats["max_in_flight"] <= 10
    # And the budget is used, not merely respected by going one at a time.
    assert stats["max_in_flight"] >= 5


def _syncs() -> list[Sync]:
    return [Sync.model_validate(s) for s in SYNCS]


def test_the_remote_graph_keys_every_sync_into_max_connections_slots():
    with beam_pipeline() as p:
        records = (p | beam.Create(lines(200, 1)) | ParseRecords()).records
        requests = [(records | f"Sync {s.name}" >> ApplySync(s)).main for s in _syncs()]
        batches = (requests | beam.Flatten() | BatchPerSlot(1000, slots=3))
        assert_that(batches | "Keys" >> beam.Map(lambda kv: kv[0])
                    | "Each key" >> beam.Distinct(),
                    equal_to([0, 1, 2]), label="keys")
        # One slot's batch holds both syncs' audiences: the budget is the
        # account's, not a sync's.
        assert_that(batches | "Audiences" >> beam.Map(lambda kv: tuple(sorted(
            {p.audience_id for p in kv[1]}))) | "Each set" >> beam.Distinct(),
            equal_to([(AUDIENCE, EVENTS_AUDIENCE)]), label="audiences")


def test_the_remote_graph_delivers_everything_within_max_connections(tmp_path,
                                                                    monkeypatch):
    """build() for a remote runner (its options say DataflowRunner), run by
    the FnApiRunner: every sync through one set of two slots."""
    monkeypatch.setenv("MAILCHIMP_API_KEY", API_KEY)
    (tmp_path / "sync.json").write_text(json.dumps({"syncs": SYNCS}))
    users, events_per_user = 120, 3
    inputs = write_jsonl(tmp_path / "in.jsonl", [json.loads(l) for l in lines(
        users, events_per_user)])
    options = PipelineOptions([
        "--runner=DataflowRunner", "--sync_config", str(tmp_path / "sync.json"),
        "--input_files", str(inputs), "--output_dir", str(tmp_path / "out"),
        "--max_connections=2", "--batch_size=50"])
    with emulator(latency_ms=5, max_connections=2) as emu:  # a 3rd gets 429
        pipeline = test_pipeline.TestPipeline(runner="FnApiRunner", options=options)
        build(pipeline, load_config(str(tmp_path / "sync.json")),
              Endpoint(emu.base_url))
        labels = {t.unique_name for t in pipeline.to_runner_api().components
                  .transforms.values()}
        assert "Send every sync/Batch per slot, events/Group into batches" in labels
        assert _sink_outputs_read_only_by_reshuffles(pipeline, "Send members")
        assert _sink_outputs_read_only_by_reshuffles(pipeline, "Send events")
        pipeline.run().wait_until_finish()
        stats = emu.stats
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    for name in ("newsletter", "product"):
        assert summary["syncs"][name]["events"]["delivered"] == users * events_per_user
        assert summary["syncs"][name]["members"]["upserted"] == users * events_per_user
    assert stats["rejected_429_limit"] == 0
    assert stats["max_in_flight"] <= 2
    assert stats["requests"][EVENTS_ROUTE] == 2 * users * events_per_user


def _sink_outputs_read_only_by_reshuffles(pipeline, sink: str) -> bool:
    """A fusion break after the sink: nothing downstream is fused with it,
    so a failure there never makes the runner send the requests again."""
    transforms = pipeline.to_runner_api().components.transforms
    sink = next(t for t in transforms.values()
                if t.unique_name == f"Send every sync/{sink}")
    outputs = set(sink.outputs.values())
    readers = {t.unique_name: set(t.inputs.values()) & outputs
               for t in transforms.values()
               if outputs & set(t.inputs.values())
               and not t.unique_name.startswith(sink.unique_name + "/")}
    read = set().union(*readers.values())
    return read == outputs and all(
        name.startswith("Send every sync/Settle ") for name in readers)


def _peak_sending(monkeypatch, batching, settings: SinkSettings) -> int:
    """Most requests in flight while the sink sends 40 users' events."""
    monkeypatch.setenv("MAILCHIMP_API_KEY", API_KEY)
    sync = _syncs()[1]  # ada@example.com is a member: events only
    with emulator(latency_ms=20) as emu:
        with beam_pipeline() as p:
            records = (p | beam.Create(lines(40, 1)) | ParseRecords()).records
            (records | ApplySync(sync)).main | batching \
                | WriteToMailchimp(Endpoint(emu.base_url), settings)
        assert emu.stats["requests"][EVENTS_ROUTE] == 40
        return emu.stats["max_in_flight"]


def test_a_slots_batch_is_sent_one_request_at_a_time(monkeypatch):
    """The remote sink is synchronous; the local one, given the same batch,
    sends its members' events in parallel."""
    one_batch = BatchPerSlot(1000, slots=1)
    assert _peak_sending(monkeypatch, one_batch, SinkSettings(one_at_a_time=True)) == 1
    assert _peak_sending(monkeypatch, one_batch, SinkSettings()) > 1


def test_the_local_sink_sends_many_batches_at_once(monkeypatch):
    """No barrier between batches: batches of one member each, and the
    local sink keeps one in flight per connection, never more."""
    settings = SinkSettings(max_connections=4)
    peak = _peak_sending(monkeypatch, BatchPerSlot(1, slots=8), settings)
    assert 1 < peak <= 4
