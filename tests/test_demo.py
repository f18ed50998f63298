"""The demo as `make demo` runs it, and the data it ships."""
from __future__ import annotations

import json

from pipeline.local import demo, example_data


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
