"""`python -m pipeline check`: a table of what each enabled sync needs in
Mailchimp, exit 0 when all is ready and 2 otherwise, against the emulator;
`--create_merge_fields` creates what is missing."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from pipeline.__main__ import main
from pipeline.local.mailchimp_emulator import MailchimpEmulator
from tests.helpers import API_KEY, AUDIENCE, GDPR_ADS, GDPR_EMAIL, gdpr_seed

ROOT = Path(__file__).resolve().parent.parent


def _sync(**changes) -> dict:
    return {"name": "newsletter", "audience_id": AUDIENCE,
            "send_users": {"enabled": True, "properties": ["FNAME", "SCORE"]},
            **changes}


def _config(tmp_path: Path, *syncs: dict) -> Path:
    path = tmp_path / "sync.json"
    path.write_text(json.dumps({"syncs": list(syncs)}))
    return path


def _python(*args: str, api_key: str = API_KEY) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MAILCHIMP_", "PUBSUB_"))}
    env["MAILCHIMP_API_KEY"] = api_key
    return subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)


def _check(emulator, config: Path, *flags: str, **kwargs) -> subprocess.CompletedProcess:
    done = _python("check", "--sync_config", str(config), "--mailchimp_base_url",
                   emulator.base_url, *flags, **kwargs)
    assert "Traceback" not in done.stdout + done.stderr
    return done


@pytest.fixture
def check_here(monkeypatch, capsys):
    """check run in this process: (exit status, the table's rows by item)."""
    for name in ("MAILCHIMP_OAUTH_TOKEN", "MAILCHIMP_OAUTH_METADATA_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MAILCHIMP_API_KEY", API_KEY)

    def run(base_url: str, config: Path, *flags: str) -> tuple[int, dict[str, list[str]]]:
        status = main(["check", "--sync_config", str(config),
                       "--mailchimp_base_url", base_url, *flags])
        out = capsys.readouterr()
        assert "Traceback" not in out.out + out.err
        return status, _rows(out.out)
    return run


def _rows(table: str) -> dict[str, list[str]]:
    """{item: [sync, status, detail]}, from the table's plain columns."""
    lines = table.splitlines()
    assert lines[0].split() == ["sync", "item", "status", "detail"]
    starts = [m.start() for m in re.finditer(r"\S+", lines[0])]
    rows = {}
    for line in lines[1:-1]:  # the last line says ready or not
        cells = [line[a:b].strip() for a, b in zip(starts, starts[1:] + [None])]
        rows[cells[1]] = [cells[0], cells[2], cells[3]]
    return rows


def _merge_fields(emulator) -> dict[str, dict]:
    answer = requests.get(f"{emulator.base_url}/lists/{AUDIENCE}/merge-fields",
                          params={"count": 1000}, auth=("any", API_KEY), timeout=10)
    answer.raise_for_status()
    return {f["tag"]: f for f in answer.json()["merge_fields"]}


def test_help_lists_the_flags_and_an_unknown_flag_is_an_error():
    done = _python("check", "--help")
    assert done.returncode == 0, done.stderr
    for flag in ("--sync_config", "--create_merge_fields", "--mailchimp_base_url"):
        assert flag in done.stdout
    assert "Traceback" not in done.stderr
    typo = _python("check", "--sync_config", "x.yaml", "--create_merge_field")
    assert typo.returncode == 2
    assert "did you mean --create_merge_fields?" in typo.stderr
    assert "Traceback" not in typo.stderr


def test_a_missing_merge_field_fails_until_created_with_its_configured_type(
        emulator, tmp_path):
    config = _config(tmp_path, _sync(send_users={
        "enabled": True, "properties": ["FNAME", "JOINED", "NOTE"],
        "merge_field_types": {"JOINED": "date"}}))
    first = _check(emulator, config)
    assert first.returncode == 2
    rows = _rows(first.stdout)
    assert rows["merge field JOINED"][1] == "MISSING"
    assert rows["merge field NOTE"][1] == "MISSING"
    assert rows["merge field FNAME"][1:] == ["ok", "text: values sent as text (at most 255 bytes)"]
    assert "JOINED" not in _merge_fields(emulator)

    created = _check(emulator, config, "--create_merge_fields")
    assert created.returncode == 0, created.stdout
    rows = _rows(created.stdout)
    assert rows["merge field JOINED"][1:] == ["created", "created, type date"]
    assert rows["merge field NOTE"][1:] == ["created", "created, type text"]
    fields = _merge_fields(emulator)
    assert (fields["JOINED"]["type"], fields["JOINED"]["name"]) == ("date", "JOINED")
    assert fields["NOTE"]["type"] == "text"

    again = _check(emulator, config)
    assert again.returncode == 0, again.stdout
    assert _rows(again.stdout)["merge field JOINED"][1:] == [
        "ok", "date: values sent as a date, YYYY-MM-DD"]
    assert again.stdout.splitlines()[-1] == "ready"


def test_a_ready_sync_shows_each_check(emulator, tmp_path, check_here):
    config = _config(tmp_path, _sync(
        send_users={"enabled": True, "properties": ["PLAN", "SCORE"],
                    "tags": ["app-users"], "tags_property": "plan_tags",
                    "merge_field_types": {"SCORE": "text"}},
        send_events={"enabled": True, "event_types": ["purchase", "signed up"]}))
    status, rows = check_here(emulator.base_url, config)
    assert status == 0
    assert rows["credentials"] == ["(account)", "ok", f"accepted by {emulator.base_url}"]
    assert rows["audience"] == ["newsletter", "ok", f"{AUDIENCE}: 'Newsletter'"]
    assert rows["merge field PLAN"][1:] == [
        "ok", "dropdown: values sent as one of free, pro, enterprise"]
    # A configured type the audience's field does not have: said, not fatal.
    assert rows["merge field SCORE"][1:] == [
        "warn", "number: values sent as a number (merge_field_types says text; "
                "the audience's type is used)"]
    assert rows["tag app-users"][1] == "ok"
    assert "'plan_tags'" in rows["tags_property"][2]
    assert rows["event purchase"][1:] == ["ok", "valid name"]
    assert rows["event signed up"][1:] == ["ok", "sent as signed_up"]


def test_a_required_field_the_sync_does_not_send_is_a_warning(
        emulator, tmp_path, check_here):
    requests.post(f"{emulator.base_url}/lists/{AUDIENCE}/merge-fields",
                  json={"tag": "COUNTRY", "name": "Country", "type": "text",
                        "required": True},
                  auth=("any", API_KEY), timeout=10).raise_for_status()
    status, rows = check_here(emulator.base_url, _config(tmp_path, _sync()))
    assert status == 0
    assert rows["merge field COUNTRY"][1] == "warn"
    assert "new members will be refused" in rows["merge field COUNTRY"][2]


def test_an_unknown_audience_fails_and_the_other_syncs_are_still_checked(
        emulator, tmp_path, check_here):
    config = _config(tmp_path, _sync(), _sync(name="typo", audience_id="nope123"),
                     _sync(name="off", audience_id="nope456", enabled=False))
    status, rows = check_here(emulator.base_url, config)
    assert status == 2
    assert rows["audience"] == [
        "typo", "FAIL", "audience_id 'nope123' does not exist in this Mailchimp account"]
    assert rows["merge field FNAME"][:2] == ["newsletter", "ok"]
    assert not any("nope456" in detail for _, _, detail in rows.values())


def test_event_names_mailchimp_would_refuse_are_listed(emulator, tmp_path, check_here):
    config = _config(tmp_path, _sync(send_events={
        "enabled": True, "event_types": ["purchase", "x", "Ünïcode event"]}))
    status, rows = check_here(emulator.base_url, config)
    assert status == 2
    assert rows["event purchase"][1] == "ok"
    for bad in ("event x", "event Ünïcode event"):
        assert rows[bad][1] == "FAIL"
        assert "Mailchimp refuses this name" in rows[bad][2]


def test_bad_credentials_fail_without_the_secret_in_the_output(emulator, tmp_path):
    wrong = "ffffffffffffffffffffffffffffffff-us6"
    done = _check(emulator, _config(tmp_path, _sync()), api_key=wrong)
    assert done.returncode == 2
    rows = _rows(done.stdout)
    assert rows["credentials"][:2] == ["(account)", "FAIL"]
    assert "Mailchimp refused the credentials (401" in rows["credentials"][2]
    assert "audience" not in rows  # nothing else can be checked
    for secret in (wrong, wrong.split("-")[0]):
        assert secret not in done.stdout + done.stderr


def test_no_credentials_and_unreachable_mailchimp_fail(tmp_path, check_here, monkeypatch):
    config = _config(tmp_path, _sync())
    closed = "http://127.0.0.1:9/3.0"  # the discard port: nothing listens
    status, rows = check_here(closed, config)
    assert status == 2
    assert rows["credentials"][1] == "FAIL"
    assert f"cannot reach Mailchimp at {closed}" in rows["credentials"][2]
    monkeypatch.delenv("MAILCHIMP_API_KEY")
    status, rows = check_here(closed, config)
    assert (status, rows["credentials"][1]) == (2, "FAIL")
    assert "no Mailchimp credentials" in rows["credentials"][2]


def test_bad_flags_and_configs_are_a_message_not_a_table(tmp_path, capsys):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"syncs": [_sync(colour="blue")]}))
    assert main(["check", "--sync_config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "check: syncs[0] (newsletter).colour: unknown key" in err
    assert main(["check"]) == 2
    assert "--sync_config is required" in capsys.readouterr().err
    assert main(["check", "--sync_config", str(path), "--mailchimp_base_url",
                 "127.0.0.1:8080"]) == 2
    assert "--mailchimp_base_url 127.0.0.1:8080 needs its scheme and host" in (
        capsys.readouterr().err)


def _gdpr_sync(permission_id: str) -> dict:
    return _sync(send_users={"enabled": True, "properties": ["FNAME"],
                             "marketing_permissions": {permission_id: "email_consent"}})


def test_marketing_permission_ids_are_listed_and_unknown_ones_fail(
        gdpr_emulator, tmp_path, check_here):
    good = _config(tmp_path, _gdpr_sync(GDPR_EMAIL))
    status, rows = check_here(gdpr_emulator.base_url, good)
    assert status == 0
    assert rows["marketing permissions"][1:] == [
        "ok", f"the audience's: {GDPR_EMAIL} (Email), "
              f"{GDPR_ADS} (Customized online advertising)"]
    assert rows[f"permission {GDPR_EMAIL}"][1:] == [
        "ok", "Email: from user property 'email_consent'"]

    bad = _config(tmp_path, _gdpr_sync("0000000000"))
    status, rows = check_here(gdpr_emulator.base_url, bad)
    assert status == 2
    assert rows["permission 0000000000"][1:] == [
        "FAIL", "not one of the audience's permission ids"]


def test_permission_ids_of_an_audience_with_no_member_cannot_be_read(
        tmp_path, check_here):
    # Mailchimp lists an audience's permission ids only on its members.
    config = _config(tmp_path, _gdpr_sync(GDPR_EMAIL))
    with MailchimpEmulator(seed=gdpr_seed(members=False), api_key=API_KEY) as emu:
        status, rows = check_here(emu.base_url, config)
    assert status == 0
    assert rows["marketing permissions"][1:] == [
        "warn", f"the audience has no member yet, so its permission ids cannot "
                f"be read: {GDPR_EMAIL} not checked"]


def test_permissions_on_an_audience_without_gdpr_fields_fail(
        emulator, tmp_path, check_here):
    config = _config(tmp_path, _gdpr_sync(GDPR_EMAIL))
    status, rows = check_here(emulator.base_url, config)
    assert status == 2
    assert rows["marketing permissions"][1:] == [
        "FAIL", "the audience has no marketing permissions (GDPR fields are off)"]
