"""Mailchimp's answers as they really are (tests/fixtures/mailchimp_answers):
how the pipeline classifies each, that the emulator gives the same answers,
and what a user finds in skipped_members*.jsonl. Real HTTP on loopback."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from pipeline.__main__ import main
from pipeline.local.mailchimp_emulator import MailchimpEmulator
from transforms.mailchimp.errors import MailchimpError, skip_reason
from tests.helpers import API_KEY, read_outputs, write_jsonl

FIXTURES = Path(__file__).parent / "fixtures" / "mailchimp_answers"
LIST_ID = "a1b2c3d4e5"  # the fixtures' audience
SEED = {"lists": [{
    "id": LIST_ID, "name": "Newsletter",
    "merge_fields": [{"tag": "FNAME", "name": "First name", "type": "text", "required": True},
                     {"tag": "SCORE", "name": "Score", "type": "number"}],
    "members": [{"email_address": "left@example.com", "status": "unsubscribed",
                 "merge_fields": {"FNAME": "Left"}}]}],
    "forgotten": ["gone@example.com"]}
# Fields that differ between any two answers (and Mailchimp's error `type`
# URL, which changed over the years).
VOLATILE = {"instance", "unique_email_id", "last_changed", "type"}


def answer(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


class _Replay(BaseHTTPRequestHandler):
    """Answers /NAME/... with the fixture NAME's status, headers and body."""

    protocol_version = "HTTP/1.1"

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        fixture = answer(self.path.split("/")[1])
        body = json.dumps(fixture["body"]).encode()
        self.send_response(fixture["status"])
        for name, value in fixture["headers"].items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_PUT = do_POST = do_TRACE = _answer

    def log_message(self, *_) -> None:
        pass


@pytest.fixture(scope="module")
def replay():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Replay)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()
    thread.join()


def replayed(replay: str, name: str) -> requests.Response:
    request = answer(name)["request"]
    return requests.request(request["method"], f"{replay}/{name}{request['path']}",
                            json=request.get("body"), timeout=10)


@pytest.mark.parametrize("name, kind, reason", [
    ("put_fake_email", "member", "invalid_email"),
    ("put_fake_email_translated_title", "member", "invalid_email"),
    ("put_compliance_state", "member", "compliance_state"),
    ("put_compliance_state_translated_title", "member", "compliance_state"),
    ("put_forgotten_email", "member", "forgotten_email"),
    ("put_forgotten_email_translated_title", "member", "forgotten_email"),
    ("put_wrong_type_merge_value", "member", "invalid_merge_fields"),
    ("event_unknown_member", "event", "member_not_found"),
    ("status_disagrees", "event", "member_not_found"),
    ("method_not_allowed", "member", None),
])
def test_recorded_refusals_are_classified(replay, name, kind, reason):
    error = MailchimpError.from_response(replayed(replay, name))
    assert error.status == answer(name)["status"]  # the HTTP status, whatever the body says
    assert skip_reason(error, kind) == reason


def test_a_refusal_explains_itself_by_field_or_detail(replay):
    wrong_type = MailchimpError.from_response(replayed(replay, "put_wrong_type_merge_value"))
    assert wrong_type.explanation == "SCORE: Please enter a number"
    fake = MailchimpError.from_response(replayed(replay, "put_fake_email"))
    assert fake.errors == [] and fake.explanation == (
        "test@gm***.com looks fake or invalid, please enter a real email address.")


@pytest.fixture
def emulator():
    with MailchimpEmulator(seed=SEED, api_key=API_KEY) as emu:
        yield emu


@pytest.mark.parametrize("name", [
    "put_fake_email", "batch_fake_email", "put_unknown_merge_tag",
    "put_wrong_type_merge_value", "put_compliance_state", "put_forgotten_email",
    "event_unknown_member", "method_not_allowed",
])
def test_the_emulator_answers_as_mailchimp_does(emulator, name):
    fixture = answer(name)
    request = fixture["request"]
    response = requests.request(
        request["method"], emulator.base_url.removesuffix("/3.0") + request["path"],
        json=request.get("body"), auth=("any", API_KEY), timeout=10)
    assert response.status_code == fixture["status"]
    for header, value in fixture["headers"].items():
        assert response.headers[header] == value
    body = response.json()
    expected = fixture["body"]
    if "instance" in expected:  # a problem: the same document, id aside
        assert set(body) == set(expected)
    assert {k: v for k, v in body.items() if k not in VOLATILE} == {
        k: v for k, v in expected.items() if k not in VOLATILE}


def test_skipped_members_say_what_mailchimp_refused(emulator, tmp_path, monkeypatch):
    """Through the whole pipeline: a fake-looking address is an invalid_email
    skip (not a dead letter), a refused value an invalid_merge_fields skip
    naming the field and Mailchimp's message."""
    monkeypatch.setenv("MAILCHIMP_API_KEY", API_KEY)
    config = tmp_path / "sync.json"
    config.write_text(json.dumps({"syncs": [{
        "name": "members", "audience_id": LIST_ID, "email_property": "email",
        "send_users": {"enabled": True, "properties": ["FNAME", "SCORE"]}}]}))

    def user(insert_id, email, **props):
        return {"user_id": f"user-{insert_id}", "event_type": "signed_up",
                "insert_id": insert_id, "user_properties": {"email": email, **props}}

    records = [user("m1", "temp@mailinator.com", FNAME="Temp"),
               user("m2", "j***@example.com", FNAME="Masked"),
               user("m3", "nofname@example.com", SCORE=3),  # FNAME is required
               user("m4", "ok@example.com", FNAME="Ok", SCORE="7", PLANET="Mars")]
    out = tmp_path / "out"
    assert main(["--sync_config", str(config),
                 "--input_files", str(write_jsonl(tmp_path / "in.jsonl", records)),
                 "--output_dir", str(out), "--mailchimp_base_url", emulator.base_url]) == 0
    fake = "looks fake or invalid, please enter a real email address."
    skipped = sorted(read_outputs(out, "skipped_members"), key=lambda s: s["insert_id"])
    assert [(s["insert_id"], s["kind"], s["reason"], s["email"], s.get("detail"))
            for s in skipped] == [
        ("m1", "member", "invalid_email", "temp@mailinator.com", f"temp@mailinator.com {fake}"),
        ("m2", "member", "invalid_email", "j***@example.com", f"j***@example.com {fake}"),
        ("m3", "member", "invalid_merge_fields", "nofname@example.com",
         "FNAME: Please enter a value")]
    assert read_outputs(out, "dead_letter") == []
    assert emulator.member(LIST_ID, "ok@example.com")["merge_fields"] == {"FNAME": "Ok", "SCORE": 7}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["members"]["upserted"] == 1
    assert summary["members"]["skipped"] == {"invalid_email": 2, "invalid_merge_fields": 1}
