"""MailchimpClient over real HTTP to the emulator: retries, Retry-After,
what is never retried, problem+json as typed errors, and the tally of
throttling and retries that the runner gets as Beam counters."""
from __future__ import annotations

import apache_beam as beam
import pytest
import requests
from apache_beam.metrics.metric import MetricsFilter

from pipeline.local.mailchimp_emulator import Aimed, Faults, MailchimpEmulator
from transforms.mailchimp.client import MailchimpClient, RetryPolicy, _retry_after
from transforms.mailchimp.credentials import Credentials, Endpoint
from transforms.mailchimp.errors import DeliveryFailed, MailchimpError, skip_reason
from transforms.mailchimp.tally import CallTally
from transforms.records import NAMESPACE
from transforms.throttling import report_throttling
from tests.helpers import API_KEY, AUDIENCE, SEED, beam_pipeline

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


# --- the tally: what the runner is told -------------------------------------

def test_throttling_and_retries_are_tallied_then_drained():
    with MailchimpEmulator(seed=SEED, api_key=API_KEY,
                           faults=Faults(p429=1.0, retry_after=7)) as emu:
        client, _ = client_for(emu)
        for _ in range(2):
            with pytest.raises(DeliveryFailed):
                client.merge_fields(AUDIENCE)
    # Two requests throttled, three retries each, 7 s before each retry.
    assert client.stats.drain() == {"throttled_requests": 2, "retries_429": 6,
                                    "cumulativeThrottlingSeconds": 42,
                                    "requests_sent": 8}
    assert client.stats.drain() == {}


def test_retries_are_tallied_by_cause_and_only_429s_are_throttling():
    route = "PUT /3.0/lists/{list_id}/members/{subscriber_hash}"
    faults = Faults(aimed=(Aimed("503", route, 1), Aimed("502_html", route, 1),
                           Aimed("reset", route, 1), Aimed("200_html", route, 1)))
    with MailchimpEmulator(seed=SEED, api_key=API_KEY, faults=faults) as emu:
        client, _ = client_for(emu, attempts=5)
        client.upsert_member(AUDIENCE, "new@example.com",
                             {"email_address": "new@example.com", "status_if_new": "subscribed"})
    assert client.stats.drain() == {"retries_503": 1, "retries_502": 1,
                                    "retries_connection": 1, "retries_bad_answer": 1,
                                    "requests_sent": 5}


def test_timeouts_are_tallied_as_such():
    with MailchimpEmulator(seed=SEED, api_key=API_KEY,
                           faults=Faults(p_timeout=1.0, timeout_stall_s=1.0)) as emu:
        client = MailchimpClient(emu.base_url, KEY, timeout=(1.0, 0.2),
                                 retry=RetryPolicy(attempts=2), sleep=lambda _: None)
        with pytest.raises(DeliveryFailed, match="last: ReadTimeout"):
            client.upsert_member(AUDIENCE, "h", {})
    assert client.stats.drain() == {"retries_timeout": 1, "requests_sent": 2}


def test_throttling_seconds_keep_their_fractions_across_drains():
    tally = CallTally()
    tally.retry("429", 0.6, throttled=True)
    tally.retry("503", 5.0, throttled=False)
    assert tally.drain() == {"retries_429": 1, "retries_503": 1}
    tally.retry("429", 0.6, throttled=True)
    assert tally.drain() == {"retries_429": 1, "cumulativeThrottlingSeconds": 1}


class _CallAndReport(beam.DoFn):
    """A sink's part in miniature: the client works, the DoFn reports."""

    def __init__(self, base_url):
        self._base_url = base_url

    def process(self, _):
        client = MailchimpClient(self._base_url, KEY, retry=RetryPolicy(attempts=4),
                                 sleep=lambda _: None)
        try:
            client.merge_fields(AUDIENCE)
        except DeliveryFailed:
            pass
        report_throttling(client.stats.drain())
        yield 1


def test_the_runner_sees_throttling_as_beam_counters():
    with MailchimpEmulator(seed=SEED, api_key=API_KEY,
                           faults=Faults(p429=1.0, retry_after=2)) as emu:
        pipeline = beam_pipeline()
        _ = pipeline | beam.Create([0, 1]) | beam.ParDo(_CallAndReport(emu.base_url))
        result = pipeline.run()
        result.wait_until_finish()
    counters = {c.key.metric.name: c.committed for c in result.metrics().query(
        MetricsFilter().with_namespace(NAMESPACE))["counters"]}
    assert counters == {"throttled_requests": 2, "retries_429": 6,
                        "cumulativeThrottlingSeconds": 12, "requests_sent": 8}


@pytest.mark.parametrize("header, seconds", [("7", 7.0), ("nan", None), ("inf", None),
                                             ("Wed, 21 Oct 2015 07:28:00 GMT", None)])
def test_a_retry_after_that_is_no_number_of_seconds_falls_back_to_backoff(header, seconds):
    answer = requests.Response()
    answer.headers["Retry-After"] = header
    assert _retry_after(answer) == seconds
