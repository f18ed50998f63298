"""The demo as `make demo` runs it, and the data it ships."""
from __future__ import annotations

import json

from pipeline.local import demo, demo_stream, example_data


def test_bundled_data_is_what_the_generator_makes(tmp_path):
    example_data.write(tmp_path)
    for name in ("seed.json", "sync.json", "input/events.jsonl", "input/export.zip"):
        assert (tmp_path / name).read_bytes() == (demo.DATA / name).read_bytes(), name


def test_demo_runs_end_to_end(tmp_path, capsys):
    assert demo.main(["--output_dir", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    shown = capsys.readouterr().out
    assert "never more than" in shown and "Mailchimp's limit: 10" in shown
    # Every kind of trouble the data holds shows up in the summary.
    assert summary["events"]["delivered"] > 1000
    assert summary["members"]["upserted"] > 1000
    assert {"anonymous", "member_not_found", "invalid_event_name", "no_email",
            "invalid_email"} <= set(summary["events"]["skipped"])
    assert summary["unknown_merge_fields"] == {"COMPANY": summary["unknown_merge_fields"]["COMPANY"]}
    assert summary["dead_letter_by_reason"] == {"malformed_json": 2,
                                                "unrecognised_record": 3}
    assert demo.DEMO_KEY not in shown + "".join(
        p.read_text() for p in tmp_path.iterdir())


def test_demo_stream_delivers_every_record_and_adds_up_to_the_demo(tmp_path, capfd):
    """`make demo-stream` publishes the file demo's records, stops by itself
    once the stream is drained, and its summary is the file demo's."""
    assert demo.main(["--output_dir", str(tmp_path / "files")]) == 0
    capfd.readouterr()
    assert demo_stream.main(["--output_dir", str(tmp_path / "stream"),
                             "--rate", "1000"]) == 0
    shown = capfd.readouterr().out
    assert "The stream is drained" in shown and "records in" in shown
    files = json.loads((tmp_path / "files" / "summary.json").read_text())
    stream = json.loads((tmp_path / "stream" / "summary.json").read_text())
    assert stream == files
    # One file per kind and window, nothing half-written left behind.
    names = sorted(p.name for p in (tmp_path / "stream").iterdir())
    assert not [n for n in names if n.startswith(".") or "temp" in n]
    assert len(names) <= 1 + 3 * 3, names  # summary + 3 kinds x a few windows
