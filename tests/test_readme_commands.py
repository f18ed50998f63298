"""The command lines of the README's "Running it" section run as written.

Each command is taken from the README itself, run in a folder that holds the
files its own patterns name (`sync.yaml`, `exports/*.zip`,
`events/*.jsonl.gz`), against the Mailchimp emulator: the only thing added is
`--mailchimp_base_url`, since there is no real account here.
"""
from __future__ import annotations

import gzip
import json
import os
import re
import shlex
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from tests.helpers import API_KEY, AUDIENCE

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # python and the mailchimp-stream script


def readme_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Running it\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
    return [line for line in block.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def record(n: int) -> dict:
    return {"user_id": f"u{n}", "event_type": "purchase", "insert_id": f"i{n}",
            "user_properties": {"email": f"person{n}@example.com", "FNAME": "P"}}


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "sync.yaml").write_text(yaml.safe_dump({"syncs": [{
        "name": "newsletter", "audience_id": AUDIENCE, "email_property": "email",
        "send_users": {"enabled": True, "properties": ["FNAME"]}}]}))
    (tmp_path / "exports").mkdir()
    with zipfile.ZipFile(tmp_path / "exports" / "2024-01.zip", "w") as archive:
        archive.writestr("123456/", b"")  # Amplitude's folder entry
        archive.writestr("123456/123456_2024-01-01_0#0.json.gz", gzip.compress(
            "\n".join(json.dumps(record(n)) for n in range(10, 13)).encode()))
    (tmp_path / "events").mkdir()
    (tmp_path / "events" / "day1.jsonl.gz").write_bytes(gzip.compress(
        "\n".join(json.dumps(record(n)) for n in range(4)).encode() + b"\n"))
    return tmp_path


def test_the_readme_shows_both_commands():
    commands = readme_commands()
    assert [shlex.split(c)[0] for c in commands] == ["python", "mailchimp-stream"]


@pytest.mark.parametrize("command", readme_commands())
def test_a_readme_command_runs_as_written(command, workdir, emulator):
    argv = shlex.split(command)
    program = [sys.executable] if argv[0] == "python" else [str(BIN / argv[0])]
    env = dict(os.environ, MAILCHIMP_API_KEY=API_KEY,
               PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    done = subprocess.run(
        program + argv[1:] + ["--mailchimp_base_url", emulator.base_url],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    summary = json.loads((workdir / "out" / "summary.json").read_text())
    assert summary["records_in"] > 0 and summary["dead_letter"] == 0
    assert summary["members"]["upserted"] == summary["records_in"]
