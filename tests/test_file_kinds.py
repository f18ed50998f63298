"""Input files of every kind, and files that cannot be read: every good line
delivered, every bad file one dead letter naming it, the run carrying on."""
from __future__ import annotations

import gzip
import io
import json
import os
import threading
import tracemalloc
import zipfile
import zlib
from collections import Counter

import apache_beam as beam
import pytest
from apache_beam.io.filesystems import FileSystems
from apache_beam.testing.util import assert_that, equal_to
from hypothesis import given, settings, strategies as st

from pipeline import files
from pipeline.__main__ import main
from pipeline.sources import ReadFiles
from transforms.records import DeadLetter
from tests.helpers import API_KEY, EVENTS_AUDIENCE, beam_pipeline, read_outputs
from tests.test_end_to_end import PRODUCT, event

ADA = "ada@example.com"  # a member of the product sync's audience


def lines(kind: str, n: int) -> bytes:
    """n JSON lines of events named `kind`, each with its own insert_id."""
    return b"".join(json.dumps(event(f"{kind}-{i}", event_type=kind)).encode()
                    + b"\n" for i in range(n))


def gzip_cut_after(good: bytes, more: bytes) -> bytes:
    """A gzip of `good` + `more`, cut just after `good` was flushed: a
    truncated download whose first lines are still readable."""
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb") as f:
        f.write(good)
        f.flush(zlib.Z_FULL_FLUSH)
        cut = buffer.tell()
        f.write(more)
    return buffer.getvalue()[:cut]


def write_zip(path, members: dict[str, bytes], compression=zipfile.ZIP_DEFLATED):
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)  # a name ending in "/" is a folder
    return path


@pytest.fixture
def run(emulator, tmp_path, monkeypatch):
    """`python -m pipeline` on `--input_files GLOB`, the product sync (every
    event type) only; returns (summary, output_dir)."""
    monkeypatch.setenv("MAILCHIMP_API_KEY", API_KEY)
    config = tmp_path / "sync.json"
    config.write_text(json.dumps({"syncs": [PRODUCT]}))

    def _run(glob):
        output_dir = tmp_path / "out"
        assert main(["--sync_config", str(config), "--input_files", str(glob),
                     "--output_dir", str(output_dir),
                     "--mailchimp_base_url", emulator.base_url]) == 0
        return json.loads((output_dir / "summary.json").read_text()), output_dir
    return _run


def delivered(emulator) -> Counter:
    return Counter(e["name"] for e in emulator.events(EVENTS_AUDIENCE, ADA))


def test_every_file_kind_in_one_glob(run, emulator, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "lf.jsonl").write_bytes(lines("lf", 3))
    (inputs / "crlf.jsonl").write_bytes(lines("crlf", 4).replace(b"\n", b"\r\n"))
    (inputs / "bom.jsonl").write_bytes(b"\xef\xbb\xbf" + lines("bom", 2))
    (inputs / "bom_crlf.jsonl").write_bytes(
        b"\xef\xbb\xbf" + lines("bom_crlf", 2).replace(b"\n", b"\r\n"))
    (inputs / "gz.jsonl.gz").write_bytes(gzip.compress(lines("jsonl_gz", 5)))
    (inputs / "gz.json.gz").write_bytes(gzip.compress(lines("json_gz", 3)))
    write_zip(inputs / "export.zip", {  # as Amplitude's Export API gives it
        "187520/": b"",
        "187520/187520_2024-01-01_0#0.json.gz": gzip.compress(lines("hour_0", 4)),
        "187520/187520_2024-01-01_1#0.json.gz": gzip.compress(lines("hour_1", 2)),
    })
    write_zip(inputs / "plain.zip", {"a/": b"", "a/x.json": lines("zip_json", 3),
                                    "y.json": lines("zip_json_2", 1)})
    (inputs / "empty.jsonl").write_bytes(b"")
    (inputs / "empty.jsonl.gz").write_bytes(gzip.compress(b""))

    summary, out = run(inputs / "*")

    expected = {"lf": 3, "crlf": 4, "bom": 2, "bom_crlf": 2, "jsonl_gz": 5,
                "json_gz": 3, "hour_0": 4, "hour_1": 2, "zip_json": 3,
                "zip_json_2": 1}
    assert delivered(emulator) == expected
    total = sum(expected.values())
    assert (summary["records_in"], summary["dead_letter"]) == (total, 0)
    assert summary["events"] == {"delivered": total, "skipped": {},
                                 "dead_letter": 0}
    assert read_outputs(out, "dead_letter") == []


def test_bad_files_are_one_dead_letter_each_and_the_run_goes_on(
        run, emulator, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "good.jsonl").write_bytes(lines("good", 3))
    (inputs / "cut.jsonl.gz").write_bytes(
        gzip_cut_after(lines("before_cut", 4), lines("after_cut", 50)))
    (inputs / "not_gzip.jsonl.gz").write_bytes(lines("not_gzip", 2))
    (inputs / "not_zip.zip").write_bytes(lines("not_zip", 2))
    cut_member = gzip_cut_after(lines("member_ok", 1), lines("member_cut", 9))
    write_zip(inputs / "cut_member.zip", {"a.json.gz": gzip.compress(lines("zip_a", 2)),
                                         "b.json.gz": cut_member,
                                         "c.json.gz": gzip.compress(lines("zip_c", 2))})

    summary, out = run(inputs / "*")

    # What was read before each failure went on as usual.
    assert delivered(emulator) == {"good": 3, "before_cut": 4, "zip_a": 2,
                                   "member_ok": 1}
    dead = sorted(read_outputs(out, "dead_letter"), key=lambda d: d["payload"])
    assert [(d["stage"], d["reason"], d["payload"]) for d in dead] == [
        ("read", "unreadable_file", str(inputs / name)) for name in
        ("cut.jsonl.gz", "cut_member.zip", "not_gzip.jsonl.gz", "not_zip.zip")]
    errors = [d["error"] for d in dead]
    assert errors[0].startswith(f"{inputs / 'cut.jsonl.gz'}: truncated gzip: ")
    assert errors[1].startswith(
        f"{inputs / 'cut_member.zip'}: zip member b.json.gz: truncated gzip: ")
    assert errors[2].startswith(
        f"{inputs / 'not_gzip.jsonl.gz'}: not a gzip file: ")
    assert errors[3] == f"{inputs / 'not_zip.zip'}: not a zip file"
    # Each bad file is one input in, one dead letter out.
    assert summary["records_in"] == 3 + 4 + 2 + 1 + 4
    assert summary["dead_letter"] == 4
    assert summary["dead_letter_by_reason"] == {"unreadable_file": 4}
    assert summary["events"]["delivered"] == 3 + 4 + 2 + 1


def test_a_directory_given_as_the_input_is_a_dead_letter(run, tmp_path):
    directory = tmp_path / "exports.jsonl"  # a literal path matches a directory
    directory.mkdir()
    summary, out = run(directory)
    assert read_outputs(out, "dead_letter") == [{
        "stage": "read", "reason": "unreadable_file",
        "error": f"{directory}: is a directory", "payload": str(directory)}]
    assert (summary["records_in"], summary["dead_letter"]) == (1, 1)


def matched(glob: str):
    return FileSystems.match([glob])[0].metadata_list


def test_a_file_deleted_after_matching_is_one_dead_letter(tmp_path):
    kept, gone = tmp_path / "kept.jsonl", tmp_path / "gone.jsonl"
    kept.write_bytes(lines("kept", 2))
    gone.write_bytes(lines("gone", 400))
    metadata = matched(str(tmp_path / "*.jsonl"))
    gone.unlink()
    with beam_pipeline() as p:
        # Split into several ranges, each of which fails to open.
        read = (p | beam.Create(metadata) | ReadFiles(desired_range_bytes=1000))
        assert_that(read.records | beam.Map(lambda r: r.data),
                    equal_to(lines("kept", 2).splitlines()), label="kept")
        assert_that(read.dead_letter, equal_to([DeadLetter(
            "read", "unreadable_file",
            f"{gone}: no such file (deleted since it was matched?)", str(gone))]),
            label="gone")


def test_a_large_file_is_read_in_byte_ranges_each_line_once(tmp_path):
    data = lines("big", 300).replace(b"\n", b"\r\n")
    (tmp_path / "big.jsonl").write_bytes(data)
    metadata = matched(str(tmp_path / "big.jsonl"))
    assert len(list(files.split(metadata[0], 2000))) > 10
    with beam_pipeline() as p:
        read = p | beam.Create(metadata) | ReadFiles(desired_range_bytes=2000)
        assert_that(read.records | beam.Map(lambda r: r.data),
                    equal_to(data.splitlines()))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=30).filter(
           lambda b: b"\n" not in b and b"\r" not in b), max_size=40),
       st.sampled_from([b"\n", b"\r\n"]), st.booleans(),
       st.integers(min_value=1, max_value=200))
def test_byte_ranges_hold_each_line_exactly_once(lines_, end, last_end, desired):
    data = end.join(lines_) + (end if last_end else b"")
    path = f"/tmp/byte-ranges-{os.getpid()}.jsonl"
    with open(path, "wb") as f:
        f.write(data)
    try:
        metadata = matched(path)[0]
        read = [line.data for r in files.split(metadata, desired)
                for line in files.read(r)]
    finally:
        os.remove(path)
    expected = data.replace(b"\r\n", b"\n").split(b"\n")
    if expected[-1] == b"":  # after the last line end, no line
        expected.pop()
    assert read == expected


def peak_bytes_reading(read) -> tuple[int, int]:
    """(lines read, peak bytes Python allocated while reading them)."""
    tracemalloc.start()
    try:
        count = sum(1 for _ in read())
        return count, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


BIG_LINE = json.dumps(event("x", event_properties={"pad": "p" * 1000})).encode()
BIG_COUNT = 16_000  # 16 MB of JSON lines


@pytest.fixture
def big_zip(tmp_path):
    """An export zip of 16 MB: stored, so the file is as large as its data."""
    return write_zip(tmp_path / "big.zip", {
        "big/": b"", "big/0.json": (BIG_LINE + b"\n") * BIG_COUNT},
        compression=zipfile.ZIP_STORED)


def test_a_zip_is_streamed_not_loaded_whole(big_zip):
    count, peak = peak_bytes_reading(lambda: files.read(files.FileRange(str(big_zip))))
    assert count == BIG_COUNT
    assert peak < 1024 * 1024, peak  # the file is 16 MB


def test_a_zip_that_cannot_seek_is_spooled_to_disk(big_zip):
    data = big_zip.read_bytes()  # before tracing: only the reader is measured

    def feed(fd):
        with open(fd, "wb") as pipe:
            pipe.write(data)

    # A pipe stands for a remote file system's stream: it cannot seek.
    read_end, write_end = os.pipe()
    writer = threading.Thread(target=feed, args=(write_end,))
    writer.start()
    with open(read_end, "rb") as stream:
        assert not stream.seekable()
        count, peak = peak_bytes_reading(lambda: files.zip_lines(stream))
    writer.join()
    assert count == BIG_COUNT
    assert peak < 1024 * 1024, peak  # the zip is 16 MB
