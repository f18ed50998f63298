"""The progress line of a local batch run: its content (never its timing),
on a terminal and in a log, summed over worker processes; --quiet."""
from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.progress import (PROGRESS_DIR_ENV, Figures, OutcomeTally,
                               ProgressReporter, progress_line, read_totals,
                               show_progress)
from tests.helpers import API_KEY, AUDIENCE, write_jsonl

ROOT = Path(__file__).resolve().parent.parent
LINE = re.compile(
    r"progress: (?P<records>[\d,]+) records read, (?P<requests>[\d,]+) requests sent, "
    r"(?P<delivered>[\d,]+) delivered, (?P<skipped>[\d,]+) skipped, "
    r"(?P<dead>[\d,]+) dead-lettered; [\d,]+ records/s, \d+:\d\d elapsed")


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


# --- the line ------------------------------------------------------------------

def test_the_line_says_what_was_read_sent_and_where_it_went():
    counts = {"records_in": 1234, "requests_sent": 56, "events.delivered": 1000,
              "members.upserted": 100, "events.skipped.member_not_found": 20,
              "members.skipped.invalid_email": 3, "dead_letter": 4,
              "dead_letter.malformed_json": 4, "unknown_merge_fields.PLAN": 9}
    assert progress_line(Figures.of(counts), elapsed_s=65.0) == (
        "progress: 1,234 records read, 56 requests sent, 1,100 delivered, "
        "23 skipped, 4 dead-lettered; 19 records/s, 1:05 elapsed")


def test_cohort_users_count_as_delivered_and_skipped_too():
    counts = {"records_in": 2, "cohorts.delivered": 300,
              "cohorts.skipped.member_not_found": 7}
    figures = Figures.of(counts)
    assert (figures.delivered, figures.skipped) == (300, 7)


def test_long_runs_show_hours_and_a_run_just_started_no_rate():
    assert progress_line(Figures.of({}), 3 * 3600 + 62).endswith("3:01:02 elapsed")
    assert "; 0 records/s, 0:00 elapsed" in progress_line(Figures.of({"records_in": 5}), 0)


def _worker_file(directory: Path, pid: int, counts: dict) -> None:
    (directory / f"{pid}.json").write_text(json.dumps(counts))


def test_a_terminal_gets_one_line_rewritten_in_place(tmp_path):
    clock, terminal = FakeClock(), Terminal()
    reporter = ProgressReporter(str(tmp_path), terminal, clock)
    _worker_file(tmp_path, 1, {"records_in": 10})
    clock.now += 5
    reporter.report()
    _worker_file(tmp_path, 1, {"records_in": 30})
    clock.now += 5
    reporter.report()
    reporter.end()
    out = terminal.getvalue()
    assert out.count("\r\x1b[K") == 2 and out.endswith("\n") and out.count("\n") == 1
    last = out.rsplit("\r\x1b[K", 1)[1]
    assert last.startswith("progress: 30 records read,") and "3 records/s, 0:10 elapsed" in last


def test_a_log_gets_a_plain_line_each_time(tmp_path):
    clock, log = FakeClock(), io.StringIO()
    reporter = ProgressReporter(str(tmp_path), log, clock)
    for n in (10, 20):
        _worker_file(tmp_path, 1, {"records_in": n})
        reporter.report()
    reporter.end()
    lines = log.getvalue().splitlines()
    assert [LINE.fullmatch(line)["records"] for line in lines] == ["10", "20"]
    assert "\r" not in log.getvalue() and "\x1b" not in log.getvalue()


def test_worker_processes_files_are_summed(tmp_path):
    _worker_file(tmp_path, 1, {"records_in": 10, "requests_sent": 2})
    _worker_file(tmp_path, 2, {"records_in": 5, "events.delivered": 4})
    (tmp_path / "3.json.tmp").write_text('{"records_in": 10')  # being written
    assert read_totals(str(tmp_path)) == {"records_in": 15, "requests_sent": 2,
                                          "events.delivered": 4}


def test_a_counting_step_writes_its_process_file_at_most_every_second_and_at_bundle_end(
        tmp_path, monkeypatch):
    monkeypatch.setenv(PROGRESS_DIR_ENV, str(tmp_path))
    clock = FakeClock()
    tally = OutcomeTally(clock)
    tally.add([(None, "records_in", 1)])  # the first count goes out at once
    tally.add([("newsletter", "members.upserted", 1)])  # then it waits...
    assert read_totals(str(tmp_path)) == {"records_in": 1}
    tally.flush()  # ...until the bundle ends
    assert read_totals(str(tmp_path)) == {"records_in": 1, "members.upserted": 1}
    assert os.listdir(tmp_path) == [f"{os.getpid()}.json"]


def test_without_a_progress_directory_nothing_is_written(tmp_path, monkeypatch):
    monkeypatch.delenv(PROGRESS_DIR_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    tally = OutcomeTally()
    tally.add([(None, "records_in", 1)])
    tally.flush()
    assert os.listdir(tmp_path) == []


def test_show_progress_reports_while_the_block_runs_then_once_more(tmp_path):
    log = io.StringIO()
    with show_progress(stream=log, interval_s=0.01):
        directory = Path(os.environ[PROGRESS_DIR_ENV])
        _worker_file(directory, 1, {"records_in": 7})
        deadline = time.monotonic() + 30  # a bound on a hang, not a timing
        while log.getvalue().count("\n") < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        during = log.getvalue().count("\n")
        _worker_file(directory, 1, {"records_in": 9})
    assert during >= 2
    assert _progress(log.getvalue())[-1]["records"] == 9  # the last line: the end
    assert PROGRESS_DIR_ENV not in os.environ and not directory.exists()


def test_quiet_shows_nothing_and_sets_no_directory():
    log = io.StringIO()
    with show_progress(quiet=True, stream=log, interval_s=0.01):
        assert PROGRESS_DIR_ENV not in os.environ
    assert log.getvalue() == ""


# --- a real run ----------------------------------------------------------------

SYNC = {"syncs": [{"name": "newsletter", "audience_id": AUDIENCE,
                   "email_property": "email",
                   "send_users": {"enabled": True, "properties": ["FNAME"]}}]}


def _records(n: int) -> list:
    """n users, one in ten without an email (skipped), and a malformed line
    (dead-lettered) at the end."""
    return [{"user_id": f"u{i}", "event_type": "signed_up", "insert_id": f"i{i}",
             "user_properties": {"FNAME": "P"} | (
                 {} if i % 10 == 0 else {"email": f"p{i}@example.com"})}
            for i in range(n)]


def _run(tmp_path, emulator, *flags: str) -> subprocess.CompletedProcess:
    (tmp_path / "sync.json").write_text(json.dumps(SYNC))
    records = write_jsonl(tmp_path / "in.jsonl", _records(40))
    with open(records, "a") as f:
        f.write("{not json\n")
    env = dict(os.environ, MAILCHIMP_API_KEY=API_KEY)
    env.pop(PROGRESS_DIR_ENV, None)
    return subprocess.run(
        [sys.executable, "-m", "pipeline", "--sync_config", str(tmp_path / "sync.json"),
         "--input_files", str(records), "--output_dir", str(tmp_path / "out"),
         "--mailchimp_base_url", emulator.base_url, "--batch_size", "10", *flags],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)


def _progress(stderr: str) -> list[dict]:
    return [{k: int(v.replace(",", "")) for k, v in m.groupdict().items()}
            for m in LINE.finditer(stderr)]


@pytest.mark.parametrize("workers", [
    (),
    ("--direct_num_workers", "2", "--direct_running_mode", "multi_processing"),
], ids=["in_process", "two_worker_processes"])
def test_a_batch_run_ends_with_a_progress_line_that_adds_up(tmp_path, emulator, workers):
    done = _run(tmp_path, emulator, *workers)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = _progress(done.stderr)
    assert lines, done.stderr[-3000:]
    last = lines[-1]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert last["records"] == summary["records_in"] == 41
    assert last["delivered"] == summary["members"]["upserted"] == 36
    assert last["skipped"] == sum(summary["members"]["skipped"].values()) == 4
    assert last["dead"] == summary["dead_letter"] == 1
    # Every write Mailchimp received came from the sink; the reads, from
    # the sink or from the check before the run.
    received = emulator.stats["requests"]
    writes = sum(n for route, n in received.items() if not route.startswith("GET "))
    assert 1 <= writes <= last["requests"] <= sum(received.values())
    assert all(a["records"] <= b["records"] for a, b in zip(lines, lines[1:]))
    # The summary is printed as before, after the last progress line.
    assert "records in             41" in done.stdout


def test_quiet_prints_no_progress_line(tmp_path, emulator):
    done = _run(tmp_path, emulator, "--quiet")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "progress:" not in done.stderr
    assert "records in             41" in done.stdout
