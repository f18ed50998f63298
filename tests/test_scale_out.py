"""Scale-out readiness: the pipeline pickles to worker processes and keeps
no state that changes results, so two processes give what one gives."""
from __future__ import annotations

import json

from pipeline.__main__ import main
from pipeline.local.mailchimp_emulator import MailchimpEmulator
from transforms import worker_cache
from tests.helpers import API_KEY, AUDIENCE, EVENTS_AUDIENCE, SEED, write_jsonl
from tests.test_end_to_end import NEWSLETTER, PRODUCT, RECORDS, event


def run(tmp_path, monkeypatch, name, *extra):
    monkeypatch.setenv("MAILCHIMP_API_KEY", API_KEY)
    config = tmp_path / "sync.json"
    config.write_text(json.dumps({"syncs": [NEWSLETTER, PRODUCT]}))
    inputs = tmp_path / f"in-{name}"
    inputs.mkdir()
    # Several files, so there is work to spread.
    for n in range(4):  # insert_ids unique across files: see DropDuplicates
        records = [dict(r, insert_id=f"p{n}-{r['insert_id']}")
                   if isinstance(r, dict) and "insert_id" in r else r for r in RECORDS]
        write_jsonl(inputs / f"part-{n}.jsonl",
                    records + [event(f"p{n}-{i}", email=f"user{i}@example.com")
                               for i in range(150)])
    with MailchimpEmulator(seed=json.loads(json.dumps(SEED)), api_key=API_KEY) as emu:
        assert main(["--sync_config", str(config),
                     "--input_files", str(inputs / "*.jsonl"),
                     "--output_dir", str(tmp_path / f"out-{name}"),
                     "--mailchimp_base_url", emu.base_url, *extra]) == 0
        state = {audience: {email: (m["status"], m["merge_fields"],
                                    sorted((e["name"], json.dumps(e["properties"]))
                                           for e in emu.events(audience, email)))
                            for email in [f"user{i}@example.com" for i in range(150)]
                            + ["ada@example.com", "new@example.com", "gone@example.com",
                               "grace@example.com"]
                            if (m := emu.member(audience, email))}
                 for audience in (AUDIENCE, EVENTS_AUDIENCE)}
    summary = json.loads((tmp_path / f"out-{name}" / "summary.json").read_text())
    return summary, state


def test_two_worker_processes_give_the_single_process_result(tmp_path, monkeypatch):
    # What DoFns keep per process (the Mailchimp client, the dedupe memory)
    # is made where they are set up: here for one process, in the workers
    # (reached by pickling the pipeline) for two.
    made_here = len(worker_cache._objects)
    one = run(tmp_path, monkeypatch, "one")
    assert len(worker_cache._objects) > made_here
    made_here = len(worker_cache._objects)
    two = run(tmp_path, monkeypatch, "two", "--direct_num_workers=2",
              "--direct_running_mode=multi_processing", "--max_connections=5")
    assert len(worker_cache._objects) == made_here
    assert one[0]["records_in"] == 4 * (len(RECORDS) - 1 + 150) + 4  # 4 malformed
    assert one == two
