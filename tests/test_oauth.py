"""The OAuth path end to end: `python -m pipeline` with only
MAILCHIMP_OAUTH_TOKEN (no API key, no --mailchimp_base_url) finds its API
root at the OAuth metadata endpoint (MAILCHIMP_OAUTH_METADATA_URL, here the
emulator's) and delivers there with the token; a refused token stops the run
with exit 2 and a message that never holds it."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.local.mailchimp_emulator import MailchimpEmulator
from transforms.mailchimp.credentials import Credentials
from tests.helpers import AUDIENCE, SEED, write_jsonl

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "oauth-token-5e8f1a3c7b9d"  # recognisable, grep-able
SYNC = {"syncs": [{
    "name": "newsletter", "audience_id": AUDIENCE, "email_property": "email",
    "send_users": {"enabled": True, "properties": ["FNAME"]},
    "send_events": {"enabled": True, "event_types": ["purchase"]}}]}
RECORDS = [
    {"user_id": "u1", "event_type": "purchase", "insert_id": "i1",
     "user_properties": {"email": "ada@example.com", "FNAME": "Ada"}},
    {"user_id": "u2", "event_type": "purchase", "insert_id": "i2",
     "user_properties": {"email": "existing@example.com", "FNAME": "Grace"}},
]


@pytest.fixture
def oauth_emulator():
    """The emulator taking the OAuth token only: a run that reached it with
    anything else would be refused."""
    with MailchimpEmulator(seed=json.loads(json.dumps(SEED)), api_key=None,
                           oauth_token=TOKEN, record_requests=True) as emu:
        yield emu


def run_pipeline(tmp_path: Path, token: str, metadata_url: str) -> subprocess.CompletedProcess:
    config = tmp_path / "sync.json"
    config.write_text(json.dumps(SYNC))
    records = write_jsonl(tmp_path / "in.jsonl", RECORDS)
    env = {k: v for k, v in os.environ.items()
           if k not in ("MAILCHIMP_API_KEY", "MAILCHIMP_STREAM_BEAM_LOGS")}
    env.update(MAILCHIMP_OAUTH_TOKEN=token, MAILCHIMP_OAUTH_METADATA_URL=metadata_url)
    return subprocess.run(
        [sys.executable, "-m", "pipeline", "--sync_config", str(config),
         "--input_files", str(records), "--output_dir", str(tmp_path / "out")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_credentials_find_the_emulators_api_root(oauth_emulator, monkeypatch):
    monkeypatch.setenv("MAILCHIMP_OAUTH_METADATA_URL", oauth_emulator.oauth_metadata_url)
    assert Credentials("oauth_token", TOKEN).api_root() == oauth_emulator.base_url


def test_a_run_with_an_oauth_token_delivers_members_and_events(oauth_emulator, tmp_path):
    done = run_pipeline(tmp_path, TOKEN, oauth_emulator.oauth_metadata_url)
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["members"]["upserted"] == 2
    assert summary["events"]["delivered"] == 2
    ada = oauth_emulator.member(AUDIENCE, "ada@example.com")
    assert ada["status"] == "subscribed" and ada["merge_fields"]["FNAME"] == "Ada"
    assert oauth_emulator.member(AUDIENCE, "existing@example.com")["merge_fields"]["FNAME"] == "Grace"
    assert [e["name"] for e in oauth_emulator.events(AUDIENCE, "ada@example.com")] == ["purchase"]
    assert [e["name"] for e in oauth_emulator.events(AUDIENCE, "existing@example.com")] == [
        "purchase"]
    assert TOKEN not in done.stdout + done.stderr


def test_a_refused_token_exits_2_saying_so_without_the_token(oauth_emulator, tmp_path):
    wrong = "wrong-oauth-token-0d9c8b7a"
    done = run_pipeline(tmp_path, wrong, oauth_emulator.oauth_metadata_url)
    assert done.returncode == 2
    assert ("MAILCHIMP_OAUTH_TOKEN was refused by the OAuth metadata endpoint "
            f"{oauth_emulator.oauth_metadata_url} (401)") in done.stderr
    assert "Traceback" not in done.stderr
    assert wrong not in done.stdout + done.stderr and TOKEN not in done.stdout + done.stderr
    assert oauth_emulator.requests == []  # nothing reached the API
