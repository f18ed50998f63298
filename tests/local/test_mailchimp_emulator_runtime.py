"""The Mailchimp emulator under load and faults, its Python API and its
command line."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import requests

from pipeline.local.mailchimp_emulator import Faults, MailchimpEmulator
from tests.local.test_mailchimp_emulator import (KEY, LIST_ID, SEED, ApiSession,
                                                 assert_problem, md5, put_member)

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def concurrent_gets(base_url: str, path: str, clients: int) -> list[requests.Response]:
    """`clients` requests at once, each on its own connection."""
    barrier = threading.Barrier(clients)
    responses: list[requests.Response] = []
    lock = threading.Lock()

    def one() -> None:
        with ApiSession(base_url) as session:
            barrier.wait()
            response = session.get(path)
        with lock:
            responses.append(response)

    threads = [threading.Thread(target=one) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return responses


# --- connection limit ----------------------------------------------------------

def test_eleven_concurrent_requests_meet_the_limit_of_ten():
    with MailchimpEmulator(seed=SEED, api_key=KEY, latency_ms=300) as emu:
        responses = concurrent_gets(emu.base_url, f"/lists/{LIST_ID}", 11)
        stats = emu.stats
    statuses = sorted(r.status_code for r in responses)
    assert 429 in statuses and 200 in statuses
    for response in responses:
        if response.status_code == 429:
            assert_problem(response, 429, "Too Many Requests")
    assert stats["max_in_flight"] <= 10
    assert stats["rejected_429_limit"] == statuses.count(429)
    assert stats["max_open_connections"] == 11


def test_connection_limit_is_configurable():
    with MailchimpEmulator(seed=SEED, api_key=KEY, latency_ms=300, max_connections=2) as emu:
        responses = concurrent_gets(emu.base_url, "/ping", 4)
        assert emu.stats["max_in_flight"] <= 2
    assert [r.status_code for r in responses].count(429) >= 2


def test_reset_stats_starts_peaks_from_now():
    with MailchimpEmulator(seed=SEED, api_key=KEY, latency_ms=200) as emu:
        concurrent_gets(emu.base_url, "/ping", 3)
        assert emu.stats["max_in_flight"] >= 2
        emu.reset_stats()
        stats = emu.stats
        assert (stats["max_in_flight"], stats["requests"], stats["faults"],
                stats["rejected_429_limit"]) == (0, {}, {}, 0)
        assert stats["max_open_connections"] <= 3  # closing connections may not have closed yet
        concurrent_gets(emu.base_url, "/ping", 1)
        assert emu.stats["max_in_flight"] == 1


# --- faults --------------------------------------------------------------------

def test_p503_answers_every_request_503_and_changes_nothing():
    with MailchimpEmulator(seed=SEED, api_key=KEY, faults=Faults(p503=1.0)) as emu, \
            ApiSession(emu.base_url) as api:
        answers = [
            put_member(api, "erin@example.com"),
            api.post(f"/lists/{LIST_ID}", json={"members": [
                {"email_address": "fay@example.com", "status": "subscribed"}]}),
            api.post(f"/lists/{LIST_ID}/members/{md5('alice@example.com')}/events",
                     json={"name": "opened"}),
            api.patch(f"/lists/{LIST_ID}/members/{md5('alice@example.com')}",
                      json={"status": "unsubscribed"}),
            api.get(f"/lists/{LIST_ID}"),
        ]
        ping = api.get("/ping")
        for answer in answers:
            assert_problem(answer, 503, "Service Unavailable")
        assert ping.status_code == 200  # /ping is never faulted
        assert emu.member(LIST_ID, "erin@example.com") is None
        assert emu.member(LIST_ID, "fay@example.com") is None
        assert emu.member(LIST_ID, "alice@example.com")["status"] == "subscribed"
        assert emu.events(LIST_ID, "alice@example.com") == []
        assert emu.stats["faults"] == {"503": 5}


def test_p429_is_problem_json_with_retry_after():
    with MailchimpEmulator(seed=SEED, api_key=KEY, faults=Faults(p429=1.0, retry_after=1.5)) as emu, \
            ApiSession(emu.base_url) as api:
        response = api.get(f"/lists/{LIST_ID}")
        assert_problem(response, 429, "Too Many Requests")
        assert response.headers["Retry-After"] == "2"
        assert emu.stats["faults"] == {"429": 1}


def test_p429_empty_has_no_body_and_no_content_type():
    with MailchimpEmulator(seed=SEED, api_key=KEY, faults=Faults(p429_empty=1.0)) as emu, \
            ApiSession(emu.base_url) as api:
        response = put_member(api, "erin@example.com")
        assert response.status_code == 429
        assert response.content == b""
        assert "Content-Type" not in response.headers
        assert "Retry-After" not in response.headers
        assert emu.member(LIST_ID, "erin@example.com") is None
        assert api.get("/ping").status_code == 200  # the connection is still usable


def test_p_reset_drops_the_connection():
    with MailchimpEmulator(seed=SEED, api_key=KEY, faults=Faults(p_reset=1.0)) as emu, \
            ApiSession(emu.base_url) as api:
        with pytest.raises(requests.exceptions.ConnectionError):
            put_member(api, "erin@example.com")
        assert emu.member(LIST_ID, "erin@example.com") is None
        assert emu.stats["faults"] == {"reset": 1}


def test_p_timeout_stalls_then_closes_without_answering():
    faults = Faults(p_timeout=1.0, timeout_stall_s=0.1)
    with MailchimpEmulator(seed=SEED, api_key=KEY, faults=faults, record_requests=True) as emu, \
            ApiSession(emu.base_url) as api:
        with pytest.raises(requests.exceptions.ConnectionError):
            api.get(f"/lists/{LIST_ID}")
        assert emu.stats["faults"] == {"timeout": 1}
        assert emu.requests[0]["status"] is None


def test_faults_are_reproducible_from_the_random_seed():
    def statuses(random_seed: int) -> list[int]:
        faults = Faults(p503=0.3, p429=0.3)
        with MailchimpEmulator(seed=SEED, api_key=KEY, faults=faults,
                               random_seed=random_seed) as emu, ApiSession(emu.base_url) as api:
            return [api.get(f"/lists/{LIST_ID}").status_code for _ in range(30)]

    first = statuses(7)
    assert first == statuses(7)
    assert {200, 429, 503} <= set(first)


@pytest.mark.parametrize("kwargs", [
    {"p503": 1.5}, {"p429": -0.1}, {"p503": 0.6, "p_reset": 0.6}, {"retry_after": -1},
])
def test_faults_reject_impossible_plans(kwargs):
    with pytest.raises(ValueError):
        Faults(**kwargs)


def test_faults_is_frozen():
    with pytest.raises(AttributeError):
        Faults().p503 = 1.0  # type: ignore[misc]


# --- Python API ----------------------------------------------------------------

def test_record_requests_keeps_method_path_query_body_and_status():
    with MailchimpEmulator(seed=SEED, api_key=KEY, record_requests=True) as emu, \
            ApiSession(emu.base_url) as api:
        put_member(api, "erin@example.com")
        api.get(f"/lists/{LIST_ID}/merge-fields", params={"count": "2"})
        api.post(f"/lists/{LIST_ID}/members/{md5('erin@example.com')}/events", data=b"{oops")
        records = emu.requests
    assert records[0] == {"method": "PUT",
                          "path": f"/3.0/lists/{LIST_ID}/members/{md5('erin@example.com')}",
                          "query": {}, "status": 200,
                          "body": {"email_address": "erin@example.com", "status_if_new": "subscribed"}}
    assert (records[1]["query"], records[1]["body"]) == ({"count": "2"}, None)
    assert (records[2]["body"], records[2]["status"]) == (None, 400)


def test_requests_are_not_recorded_by_default():
    with MailchimpEmulator(seed=SEED, api_key=KEY) as emu, ApiSession(emu.base_url) as api:
        api.get("/ping")
        assert emu.requests == []


def test_bad_seed_is_rejected_with_its_reason():
    bad = {"lists": [{"id": "L1", "merge_fields": [{"tag": "ZIP", "name": "Zip", "type": "zip"}],
                      "members": [{"email_address": "a@example.com",
                                   "merge_fields": {"ZIP": "1"}}]}]}
    with pytest.raises(ValueError, match="ZIP"):
        MailchimpEmulator(seed=bad)
    fake = {"lists": [{"id": "L1", "members": [{"email_address": "a@mailinator.com"}]}]}
    with pytest.raises(ValueError, match=r"^seed list L1: a@mailinator.com looks fake or "
                                         r"invalid, please enter a real email address.$"):
        MailchimpEmulator(seed=fake)


def test_stop_closes_idle_keep_alive_connections_and_restart_works():
    emu = MailchimpEmulator(seed=SEED, api_key=KEY).start()
    with ApiSession(emu.base_url) as api:
        assert api.get("/ping").status_code == 200
        emu.stop()
        with pytest.raises(requests.exceptions.ConnectionError):
            api.get("/ping")
    with emu, ApiSession(emu.base_url) as api:
        assert api.get("/ping").status_code == 200


# --- command line --------------------------------------------------------------

def start_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    environment = {k: v for k, v in os.environ.items() if k != "MAILCHIMP_API_KEY"}
    environment["PYTHONPATH"] = str(PROJECT_ROOT)
    environment.update(env or {})
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline.local.mailchimp_emulator", *args],
        cwd=PROJECT_ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)


def test_cli_serves_until_sigterm(tmp_path):
    seed_file = tmp_path / "seed.json"
    seed_file.write_text(json.dumps(SEED))
    process = start_cli("--port", "0", "--seed", str(seed_file), "--latency-ms", "1",
                        env={"MAILCHIMP_API_KEY": KEY})
    try:
        line = process.stdout.readline()
        assert line.startswith("Mailchimp emulator listening on http://127.0.0.1:")
        base_url = line.split(" on ", 1)[1].strip()
        assert base_url.endswith("/3.0/") and not base_url.endswith(":0/3.0/")
        with ApiSession(base_url.rstrip("/")) as api:
            assert api.get("/ping").json() == {"health_status": "Everything's Chimpy!"}
            assert api.get(f"/lists/{LIST_ID}").json()["name"] == "Newsletter"
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=10)
    finally:
        process.kill()
    assert process.returncode == 0
    assert out == "" and KEY not in err


def test_cli_takes_the_key_option_and_exits_on_sigint():
    process = start_cli("--port", "0", "--api-key", "cli-key-us1", "--p503", "1.0")
    try:
        base_url = process.stdout.readline().split(" on ", 1)[1].strip().rstrip("/")
        with ApiSession(base_url, key="cli-key-us1") as api:
            assert api.get("/ping").status_code == 200
            assert_problem(api.get(f"/lists/{LIST_ID}"), 503, "Service Unavailable")
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=10)
    finally:
        process.kill()
    assert process.returncode == 0


def test_cli_without_a_key_exits_2_with_a_message():
    process = start_cli("--port", "0")
    out, err = process.communicate(timeout=10)
    assert process.returncode == 2
    assert out == ""
    assert "MAILCHIMP_API_KEY" in err and "--api-key" in err
