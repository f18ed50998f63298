"""Duplicates by insert_id, and a bundle the runner runs again (a retry;
FnApiRunner's --direct_runner_bundle_repeat) taken for none of them: the
local runners' window knows where each id was first read, the remote
runners' state is the runner's own."""
from __future__ import annotations

import gzip
import json
import os
import shutil
import urllib.request
import zipfile
from collections import Counter

import apache_beam as beam
import pytest
from apache_beam.io.filesystems import FileSystems
from apache_beam.io.gcp.pubsub import PubsubMessage
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.testing.util import assert_that, equal_to

from pipeline import files
from pipeline.__main__ import main
from pipeline.cli import UsageError, parse
from pipeline.config import load_config
from pipeline.graph import build
from pipeline.local import demo
from pipeline.local.mailchimp_emulator import MailchimpEmulator
from pipeline.sources import ReadRecords
from transforms.dedupe import DropDuplicates, RecentIds
from transforms.mailchimp.credentials import Endpoint
from transforms.parse import ParseRecords, RawRecord, parse_payload
from tests.helpers import beam_pipeline


def event(insert_id, **extra) -> dict:
    return {"event_type": "purchase", "user_id": "u1", "insert_id": insert_id,
            **extra}


def jsonl(*records) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in records)


# --- the local window ---------------------------------------------------------

def test_an_id_from_another_origin_is_a_duplicate_from_the_same_origin_a_replay():
    recent = RecentIds(capacity=100)
    assert not recent.seen("a", "f.jsonl:0")
    assert not recent.seen("a", "f.jsonl:0")  # the bundle replayed
    assert recent.seen("a", "f.jsonl:90")  # a repeated line
    assert recent.seen("a", "g.jsonl:0")  # an overlapping file
    assert not recent.seen("a", "f.jsonl:0")  # the first origin is kept
    assert recent.seen("a")  # no origin: any repeat is a duplicate
    assert not recent.seen("b") and recent.seen("b")
    assert recent.seen("b", "f.jsonl:200")  # first seen without an origin


def test_the_window_keeps_first_origins_between_half_and_all_of_its_capacity():
    recent = RecentIds(capacity=4)
    for k in "ab":
        recent.seen(k, f"{k}:0")
    for k in "cd":  # a new generation: a and b are still remembered
        recent.seen(k, f"{k}:0")
    assert recent.seen("a", "x:1") and not recent.seen("b", "b:0")
    for k in "efg":  # two generations on, a is forgotten
        recent.seen(k, f"{k}:0")
    assert not recent.seen("a", "x:1")


def write_zip(path, members: dict[str, bytes]):
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def test_every_line_read_carries_its_origin(tmp_path):
    plain = tmp_path / "a.jsonl"
    plain.write_bytes(b'{"n": 1}\r\n{"n": 22}\n{"n": 3}')
    packed = tmp_path / "b.jsonl.gz"
    packed.write_bytes(gzip.compress(b'{"n": 1}\n{"n": 2}\n'))
    export = write_zip(tmp_path / "c.zip", {
        "c/0.json.gz": gzip.compress(b'{"n": 1}\n{"n": 2}\n'),
        "c/1.json": b'{"n": 3}\n'})
    origins = {path: [line.origin for line in files.read(files.FileRange(str(path)))]
               for path in (plain, packed, export)}
    assert origins == {
        plain: [f"{plain}:0", f"{plain}:10", f"{plain}:20"],
        packed: [f"{packed}:0", f"{packed}:9"],
        export: [f"{export}!c/0.json.gz:0", f"{export}!c/0.json.gz:9",
                 f"{export}!c/1.json:0"]}


def test_a_line_keeps_its_origin_whichever_byte_range_reads_it(tmp_path):
    path = tmp_path / "big.jsonl"
    path.write_bytes(jsonl(*(event(f"e{i}") for i in range(200))))
    [metadata] = FileSystems.match([str(path)])[0].metadata_list
    whole = list(files.read(files.FileRange(str(path), 0, metadata.size_in_bytes)))
    ranges = list(files.split(metadata, 1000))
    assert len(ranges) > 5
    assert [line for r in ranges for line in files.read(r)] == whole
    data = path.read_bytes()
    assert all(data[int(line.origin.rsplit(":", 1)[1]):].startswith(line.data)
               for line in whole)


def test_parsed_records_carry_the_origin_and_the_nth_of_a_body():
    [single] = parse_payload(json.dumps(event("x")), origin="f:0")
    body = json.dumps({"api_key": "k", "events": [event("y"), event("y")]})
    first, second = parse_payload(body, origin="f:40")
    assert (single.origin, first.origin, second.origin) == ("f:0", "f:40#0", "f:40#1")
    [bare] = parse_payload(json.dumps(event("z")))
    assert bare.origin is None


def test_the_parse_step_takes_origins_from_lines_and_message_ids():
    with_id = PubsubMessage(json.dumps(event("p")).encode(), {"a": "1"},
                            message_id="4711")
    without_id = PubsubMessage(json.dumps(event("q")).encode(), {})
    raw = [RawRecord("f:0", json.dumps(event("l")).encode()), with_id, without_id]
    with beam_pipeline() as p:
        parsed = p | beam.Create(raw) | ParseRecords()
        assert_that(
            parsed.records | beam.Map(lambda r: (r.insert_id, r.origin)),
            equal_to([("l", "f:0"), ("p", "4711"), ("q", None)]))


def read_and_drop(p, glob: str, **dedupe):
    parsed = (p | ReadRecords(glob)).records | "Parse" >> ParseRecords()
    return parsed.records | DropDuplicates(**dedupe)


@pytest.mark.parametrize("shared_state", [False, True], ids=["local", "remote"])
def test_a_replayed_bundle_keeps_its_records_and_drops_true_duplicates(
        tmp_path, shared_state):
    # Each bundle runs twice: first as a dry run whose outputs are dropped
    # (the runner restores its state), then for real.
    (tmp_path / "a.jsonl").write_bytes(jsonl(
        event("x"), event("y"), event("x"), event(None), event(None)))
    (tmp_path / "b.jsonl").write_bytes(jsonl(event("y"), event("z")))
    with beam_pipeline(direct_runner_bundle_repeat=1) as p:
        unique = read_and_drop(p, str(tmp_path / "*.jsonl"),
                               shared_state=shared_state)
        assert_that(
            unique.records | beam.Map(lambda r: r.insert_id),
            equal_to(["x", "y", "z", None, None]), label="kept")
        assert_that(
            unique.duplicates | beam.Map(lambda d: d.insert_id),
            equal_to(["x", "y"]), label="dropped")


# --- the remote runners' state ------------------------------------------------

def test_duplicates_read_by_two_worker_processes_are_dropped_by_shared_state(tmp_path):
    ids = [f"e{i}" for i in range(50)]
    inputs = tmp_path / "in"
    inputs.mkdir()
    for n in range(4):  # four files: the reshuffle spreads them over both workers
        (inputs / f"part-{n}.jsonl").write_bytes(
            jsonl(*(event(i) for i in ids), event(None)))
    out = tmp_path / "out"
    with beam_pipeline(direct_num_workers=2,
                       direct_running_mode="multi_processing") as p:
        parsed = ((p | ReadRecords(str(inputs / "*.jsonl"))).records
                  | "Parse" >> ParseRecords()).records
        (parsed | "Reader" >> beam.Map(
            lambda r: f"read {os.getpid()} {r.insert_id} {r.origin}")
         | "Write readers" >> beam.io.WriteToText(str(out / "read")))
        # FnApiRunner fuses a stateful step with the steps before it and
        # runs that stage on one worker; a remote runner shuffles by key
        # there. The Reshuffle stands for that shuffle, so the files are
        # read by both workers.
        unique = (parsed | "As a runner shuffles" >> beam.Reshuffle()
                  | DropDuplicates(shared_state=True))
        (unique.records | "Kept" >> beam.Map(lambda r: f"kept {r.insert_id}")
         | "Write kept" >> beam.io.WriteToText(str(out / "kept")))
        (unique.duplicates | "Dropped" >> beam.Map(lambda d: f"dropped {d.insert_id}")
         | "Write dropped" >> beam.io.WriteToText(str(out / "dropped")))
    lines = Counter(tuple(line.split()[:2]) if line.startswith("read ") else line
                    for path in out.iterdir() for line in path.read_text().splitlines())
    readers = {pid for kind, pid in (k for k in lines if isinstance(k, tuple))}
    assert len(readers) == 2 and os.getpid() not in {int(p) for p in readers}
    assert {k: v for k, v in lines.items() if isinstance(k, str)} == {
        **{f"kept {i}": 1 for i in ids}, "kept None": 4,
        **{f"dropped {i}": 3 for i in ids}}


def graph_labels(runner: str, tmp_path) -> set[str]:
    config = tmp_path / "sync.json"
    config.write_text(json.dumps({"syncs": [{
        "name": "s", "audience_id": "a1", "email_property": "email",
        "send_events": {"enabled": True}}]}))
    options = PipelineOptions([f"--runner={runner}", "--input_files=x.jsonl",
                               f"--sync_config={config}",
                               f"--output_dir={tmp_path}"])
    pipeline = beam.Pipeline(runner=FnApiRunner(), options=options)
    build(pipeline, load_config(str(config)), Endpoint("http://127.0.0.1:1/3.0"))
    return {t.unique_name for t in pipeline.to_runner_api().components
            .transforms.values()}


@pytest.mark.parametrize("runner, remote", [
    ("FnApiRunner", False), ("BundleBasedDirectRunner", False),
    ("DataflowRunner", True), ("dataflow", True)])
def test_remote_runners_get_the_shared_state_and_local_ones_the_window(
        tmp_path, runner, remote):
    labels = graph_labels(runner, tmp_path)
    assert ("Drop duplicates/Per insert_id/Drop seen ids" in labels) == remote
    assert ("Drop duplicates/Recent ids/Drop recent ids" in labels) == (not remote)


# --- the demo, each bundle run twice ------------------------------------------

def emulator_events(emulator: MailchimpEmulator) -> Counter:
    """(audience, member, name, properties) -> how many were posted."""
    root = emulator.base_url.rsplit("/3.0", 1)[0]
    with urllib.request.urlopen(f"{root}/_emulator/state") as answer:
        state = json.load(answer)
    return Counter((audience, member, e["name"], json.dumps(e["properties"]))
                   for audience, lists in state["lists"].items()
                   for member, events in lists["events"].items() for e in events)


def run_demo(tmp_path, monkeypatch, name, *extra) -> tuple[dict, Counter]:
    monkeypatch.setenv("MAILCHIMP_API_KEY", demo.DEMO_KEY)
    seed = json.loads((demo.DATA / "seed.json").read_text())
    with MailchimpEmulator(seed=seed, api_key=demo.DEMO_KEY) as emulator:
        assert main(["--sync_config", str(demo.DATA / "sync.json"),
                     "--input_files", str(tmp_path / "input" / "*"),
                     "--output_dir", str(tmp_path / name),
                     "--mailchimp_base_url", emulator.base_url, *extra]) == 0
        events = emulator_events(emulator)
    return json.loads((tmp_path / name / "summary.json").read_text()), events


def test_the_demo_with_every_bundle_run_twice_gives_the_same_summary(
        tmp_path, monkeypatch):
    shutil.copytree(demo.DATA / "input", tmp_path / "input")
    # An overlapping backfill: the first lines again, in a second file.
    overlap = (demo.DATA / "input" / "events.jsonl").read_bytes().splitlines(True)[:40]
    (tmp_path / "input" / "overlap.jsonl").write_bytes(b"".join(overlap))
    true_duplicates = sum(1 for line in overlap for r in parse_payload(line)
                          if getattr(r, "insert_id", None))
    once, posted_once = run_demo(tmp_path, monkeypatch, "once")
    twice, posted_twice = run_demo(tmp_path, monkeypatch, "twice",
                                   "--direct_runner_bundle_repeat=1")
    assert once["duplicates"] == true_duplicates > 0
    assert once["events"]["delivered"] > 2000
    assert twice == once
    # Every event delivered is at Mailchimp, at most twice (the dry run
    # posted it too: events are at least once).
    assert set(posted_twice) == set(posted_once)
    assert all(n <= posted_twice[key] <= 2 * n for key, n in posted_once.items())
    assert sum(posted_once.values()) == once["events"]["delivered"]


@pytest.mark.parametrize("value", ["0", "-60", "nan"])
def test_the_remote_window_must_be_some_seconds(tmp_path, value):
    with pytest.raises(UsageError, match=r"--dedupe_window_secs .*: must be more than 0"):
        parse(["--sync_config", "sync.yaml", "--input_files", "x.jsonl",
               "--output_dir", str(tmp_path), f"--dedupe_window_secs={value}"])
