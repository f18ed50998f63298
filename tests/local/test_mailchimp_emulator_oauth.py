"""The Mailchimp emulator's OAuth side: its stand-in for
https://login.mailchimp.com/oauth2/metadata and the API taken with the
token, over real HTTP on loopback; the command line's --oauth-token."""
from __future__ import annotations

import signal

import pytest
import requests

from pipeline.local.mailchimp_emulator import Faults, MailchimpEmulator
from tests.local.test_mailchimp_emulator import KEY, LIST_ID, SEED, assert_problem
from tests.local.test_mailchimp_emulator_runtime import start_cli

TOKEN = "oauth-7c1d9e2f4a6b8c0d"


@pytest.fixture
def emu():
    with MailchimpEmulator(seed=SEED, api_key=KEY, oauth_token=TOKEN) as emulator:
        yield emulator


def metadata(url: str, authorization: str | None) -> requests.Response:
    headers = {"Authorization": authorization} if authorization else {}
    return requests.get(url, headers=headers, timeout=5)


def test_metadata_names_the_emulator_as_the_tokens_api_endpoint(emu):
    response = metadata(emu.oauth_metadata_url, f"OAuth {TOKEN}")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    answer = response.json()
    assert answer["api_endpoint"] == emu.root_url == emu.base_url.removesuffix("/3.0")
    assert answer["dc"] == "us1" and answer["role"] == "owner"
    assert answer["login_url"] == "https://login.mailchimp.com"
    assert {"accountname", "user_id", "login"} <= answer.keys()
    assert TOKEN not in response.text
    # As a client uses it: api_endpoint + "/3.0", the token as a bearer.
    ping = requests.get(answer["api_endpoint"] + "/3.0/ping", timeout=5,
                        headers={"Authorization": f"Bearer {TOKEN}"})
    assert ping.json() == {"health_status": "Everything's Chimpy!"}


def test_metadata_takes_the_token_as_a_bearer_too(emu):
    assert metadata(emu.oauth_metadata_url, f"Bearer {TOKEN}").status_code == 200


@pytest.mark.parametrize("authorization", [
    None, "OAuth wrong-token", f"OAuth {TOKEN}x", f"Bearer {KEY}", "OAuth",
    f"Basic {TOKEN}"], ids=["missing", "wrong", "longer", "api-key", "empty", "basic"])
def test_metadata_refuses_anything_but_the_token_as_invalid_token(emu, authorization):
    response = metadata(emu.oauth_metadata_url, authorization)
    assert response.status_code == 401
    answer = response.json()
    assert answer["error"] == "invalid_token" and answer["error_description"]
    assert TOKEN not in response.text and KEY not in response.text


def test_metadata_answers_get_only(emu):
    response = requests.post(emu.oauth_metadata_url, timeout=5,
                             headers={"Authorization": f"OAuth {TOKEN}"})
    assert response.status_code == 405 and response.headers["Allow"] == "GET"


def test_without_a_token_metadata_refuses_every_caller():
    with MailchimpEmulator(seed=SEED, api_key=KEY) as emu:
        assert metadata(emu.oauth_metadata_url, f"OAuth {KEY}").status_code == 401
        assert metadata(emu.oauth_metadata_url, "OAuth ").status_code == 401


def test_the_api_takes_the_key_or_the_token_and_nothing_else(emu):
    def get(authorization):
        return requests.get(f"{emu.base_url}/lists/{LIST_ID}", timeout=5,
                            headers={"Authorization": authorization})
    assert get(f"Bearer {TOKEN}").status_code == 200
    assert get(f"OAuth {TOKEN}").status_code == 200
    assert requests.get(f"{emu.base_url}/lists/{LIST_ID}", auth=("any", KEY),
                        timeout=5).status_code == 200
    assert_problem(get("Bearer not-the-token"), 401, "API Key Invalid")


def test_an_emulator_with_only_a_token_takes_no_key():
    with MailchimpEmulator(seed=SEED, api_key=None, oauth_token=TOKEN) as emu:
        refused = requests.get(f"{emu.base_url}/ping", auth=("any", KEY), timeout=5)
        taken = requests.get(f"{emu.base_url}/ping", timeout=5,
                             headers={"Authorization": f"Bearer {TOKEN}"})
    assert_problem(refused, 401, "API Key Invalid")
    assert taken.status_code == 200


def test_metadata_is_not_the_api_no_faults_latency_limit_or_counting():
    with MailchimpEmulator(seed=SEED, api_key=KEY, oauth_token=TOKEN,
                           faults=Faults(p503=1.0), max_connections=1) as emu:
        assert metadata(emu.oauth_metadata_url, f"OAuth {TOKEN}").status_code == 200
        assert emu.stats["requests"] == {}


def test_cli_takes_the_token_from_the_option_or_the_environment():
    for args, env in ((("--oauth-token", TOKEN), {}), ((), {"MAILCHIMP_OAUTH_TOKEN": TOKEN})):
        process = start_cli("--port", "0", *args, env=env)
        try:
            base_url = process.stdout.readline().split(" on ", 1)[1].strip().rstrip("/")
            root = base_url.removesuffix("/3.0")
            answer = metadata(root + "/oauth2/metadata", f"OAuth {TOKEN}").json()
            assert answer["api_endpoint"] == root
            ping = requests.get(base_url + "/ping", timeout=5,
                                headers={"Authorization": f"Bearer {TOKEN}"})
            assert ping.status_code == 200
            process.send_signal(signal.SIGTERM)
            out, err = process.communicate(timeout=10)
        finally:
            process.kill()
        assert process.returncode == 0 and TOKEN not in out + err


def test_cli_without_a_key_or_a_token_exits_2_saying_so():
    process = start_cli("--port", "0", env={"MAILCHIMP_OAUTH_TOKEN": ""})
    out, err = process.communicate(timeout=30)
    assert process.returncode == 2
    assert "--api-key or --oauth-token" in err and "Traceback" not in err
