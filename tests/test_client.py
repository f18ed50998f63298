"""MailchimpClient over real HTTP to the emulator: retries, Retry-After,
what is never retried, and problem+json as typed errors."""
from __future__ import annotations

import pytest

from pipeline.local.mailchimp_emulator import Faults, MailchimpEmulator
from transforms.mailchimp.client import MailchimpClient, RetryPolicy
from transforms.mailchimp.credentials import Credentials, Endpoint
from transforms.mailchimp.errors import DeliveryFailed, MailchimpError, skip_reason
from tests.helpers import API_KEY, AUDIENCE, SEED

KEY = Credentials("api_key", API_KEY)


def client_for(emu, attempts=4):
    waits = []
    client = MailchimpClient(emu.base_url, KEY, retry=RetryPolicy(attempts=attempts),
                             sleep=waits.append)
    return client, waits


def test_throttling_is_retried_honouring_retry_after():
    with MailchimpEmulator(seed=SEED, api_key=API_KEY,
                           faults=Faults(p429=1.0, retry_after=7)) as emu:
        client, waits = client_for(emu)
        with pytest.raises(DeliveryFailed, match="gave up after 4 attempts .last: HTTP 429"):
            client.merge_fields(AUDIENCE)
    assert waits == [7, 7, 7]  # between the 4 attempts, none after the last


def test_server_errors_back_off_exponentially_with_jitter():
    with MailchimpEmulator(seed=SEED, api_key=API_KEY, faults=Faults(p503=1.0)) as emu:
        client, waits = client_for(emu, attempts=5)
        with pytest.raises(DeliveryFailed):
            client.upsert_member(AUDIENCE, "x", {})
    caps = [0.5, 1.0, 2.0, 4.0]
    assert len(waits) == 4 and all(0 <= w <= cap for w, cap in zip(waits, caps))


def test_empty_429_bodies_are_understood():
    with MailchimpEmulator(seed=SEED, api_key=API_KEY,
                           faults=Faults(p429_empty=1.0)) as emu:
        client, _ = client_for(emu, attempts=2)
        with pytest.raises(DeliveryFailed, match="HTTP 429"):
            client.merge_fields(AUDIENCE)


def test_events_are_not_retried_once_they_may_have_been_sent():
    with MailchimpEmulator(seed=SEED, api_key=API_KEY, faults=Faults(p_reset=1.0)) as emu:
        client, waits = client_for(emu)
        with pytest.raises(DeliveryFailed, match="not retried"):
            client.post_event(AUDIENCE, "h", {"name": "ok"})
        assert waits == []
        # A member upsert is idempotent, so the same fault is retried.
        with pytest.raises(DeliveryFailed, match="gave up after 4 attempts"):
            client.upsert_member(AUDIENCE, "h", {})
        assert len(waits) == 3


def test_refusals_are_typed_and_not_retried(emulator):
    client, waits = client_for(emulator)
    with pytest.raises(MailchimpError) as error:
        client.post_event(AUDIENCE, "0" * 32, {"name": "purchase"})
    assert (error.value.status, error.value.title) == (404, "Resource Not Found")
    assert skip_reason(error.value, "event") == "member_not_found"
    with pytest.raises(MailchimpError) as error:
        client.upsert_member(AUDIENCE, "gone@example.com",
                             {"email_address": "gone@example.com", "status": "subscribed"})
    assert skip_reason(error.value, "member") == "compliance_state"
    assert waits == []


def test_wrong_key_is_401_and_never_echoed():
    with MailchimpEmulator(seed=SEED, api_key=API_KEY) as emu:
        client = MailchimpClient(emu.base_url, Credentials("api_key", "b4dk3y9q-us6"))
        with pytest.raises(MailchimpError) as error:
            client.ping()
    assert error.value.status == 401 and "b4dk3y9q" not in str(error.value)


def test_credentials_resolve_data_centre_and_stay_secret():
    credentials = Credentials.from_env({"MAILCHIMP_API_KEY": "abc123-us6"})
    assert credentials.api_root() == "https://us6.api.mailchimp.com/3.0"
    assert "abc123" not in repr(credentials)
    assert Credentials.from_env({"MAILCHIMP_OAUTH_TOKEN": "t"}).authorization == "Bearer t"
    with pytest.raises(ValueError, match="no data-centre suffix"):
        Credentials("api_key", "nodc").api_root()
    with pytest.raises(ValueError, match="set MAILCHIMP_API_KEY"):
        Credentials.from_env({})
    assert Endpoint("http://x/3.0/").root(credentials) == "http://x/3.0"
