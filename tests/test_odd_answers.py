"""Every answer Mailchimp (or its edge) can give ends as an outcome: 2xx
answers with an HTML page, an empty body, `{}`, `[]`, a body cut short or one
that stalls half-way; HTML 502/503 pages. Each through BatchDelivery with a
real client over real HTTP to the emulator, which spoils the answers after it
has acted (as an edge would) or refuses with a page before. Nothing is posted
twice and no exception escapes."""
from __future__ import annotations

import json
import signal

import pytest
import requests

from pipeline.local.mailchimp_emulator import Aimed, Faults, MailchimpEmulator
from transforms.delivery import BatchDelivery
from transforms.mailchimp.client import MailchimpClient, RetryPolicy
from transforms.mailchimp.credentials import Credentials
from transforms.mailchimp.errors import MailchimpError, skip_reason
from transforms.mailchimp.merge_fields import MergeFieldCatalog
from transforms.records import DeadLetter, Delivered, MemberEvent, MemberUpsert
from tests.helpers import API_KEY, AUDIENCE, SEED
from tests.local.test_mailchimp_emulator_runtime import start_cli

SUBSCRIBE = "POST /3.0/lists/{list_id}"
PUT = "PUT /3.0/lists/{list_id}/members/{subscriber_hash}"
EVENT = "POST /3.0/lists/{list_id}/members/{subscriber_hash}/events"
MERGE_FIELDS = "GET /3.0/lists/{list_id}/merge-fields"
ATTEMPTS = 3
ALWAYS = 1000  # an aimed fault's count that outlasts every retry
SPOILED = ["200_html", "200_empty", "200_array", "cut_body", "stalled_body"]
# What the dead letter says when a spoiled answer outlasts the retries.
SPOILED_SAYS = {"200_html": "a body that is not JSON (text/html)",
                "200_empty": "an empty body",
                "200_array": "a JSON array, not an object",
                "cut_body": "its body cut short (ChunkedEncodingError)",
                "stalled_body": "its body cut short (ConnectionError)"}


def upsert(email: str, **merge_fields) -> MemberUpsert:
    return MemberUpsert("s", AUDIENCE, email, email, "subscribed", merge_fields,
                        f"id-{email}", "signed_up", json.dumps({"email": email}))


def event(email: str) -> MemberEvent:
    return MemberEvent("s", AUDIENCE, email, email, "purchase", {}, None, False,
                       f"ev-{email}", "purchase", json.dumps({"event": email}))


def deliver(*aimed: Aimed, batch: list) -> tuple[list, MailchimpEmulator]:
    """The outcomes, and the stopped emulator (its state and stats are still
    readable)."""
    # A stall longer than the read timeout: the body read times out mid-way.
    faults = Faults(aimed=aimed, timeout_stall_s=0.5)
    with MailchimpEmulator(seed=json.loads(json.dumps(SEED)), api_key=API_KEY,
                           faults=faults) as emu:
        client = MailchimpClient(emu.base_url, Credentials("api_key", API_KEY),
                                 timeout=(2.0, 0.2), sleep=lambda _: None,
                                 retry=RetryPolicy(attempts=ATTEMPTS))
        delivery = BatchDelivery(client, MergeFieldCatalog(client))
        outcomes = delivery.deliver(batch)
        return outcomes, emu


def sent(emu: MailchimpEmulator, route: str) -> int:
    return emu.stats["requests"].get(route, 0)


@pytest.mark.parametrize("kind", SPOILED)
def test_a_spoiled_batch_subscribe_answer_is_retried_and_members_land_once(kind):
    outcomes, emu = deliver(
        Aimed(kind, SUBSCRIBE), batch=[upsert("a@example.com", FNAME="Ada"),
                                        upsert("b@example.com", FNAME="Bo")])
    assert sorted(o.insert_id for o in outcomes if isinstance(o, Delivered)) == [
        "id-a@example.com", "id-b@example.com"]
    assert len(outcomes) == 2
    # The spoiled answer and one retry; batch subscribe is idempotent, so the
    # retry updated what the first call had created, no member twice.
    assert (sent(emu, SUBSCRIBE), sent(emu, PUT)) == (2, 0)
    assert emu.member(AUDIENCE, "a@example.com")["merge_fields"]["FNAME"] == "Ada"


@pytest.mark.parametrize("kind", SPOILED)
def test_a_batch_subscribe_answer_that_stays_spoiled_is_a_dead_letter(kind):
    outcomes, emu = deliver(Aimed(kind, SUBSCRIBE, ALWAYS),
                               batch=[upsert("a@example.com")])
    [dead] = outcomes
    assert isinstance(dead, DeadLetter)
    assert (dead.stage, dead.reason) == ("members", "retries_exhausted")
    assert dead.error == (f"gave up after {ATTEMPTS} attempts "
                          f"(last: HTTP 200 with {SPOILED_SAYS[kind]})")
    assert json.loads(dead.payload) == {"email": "a@example.com"}
    assert (sent(emu, SUBSCRIBE), sent(emu, PUT)) == (ATTEMPTS, 0)


def test_a_batch_subscribe_answer_without_its_lists_sends_each_member_alone():
    """`{}`: an object, but no new_members, updated_members or errors."""
    outcomes, emu = deliver(
        Aimed("200_empty_object", SUBSCRIBE),
        batch=[upsert("a@example.com", FNAME="Ada"), upsert("b@example.com")])
    assert all(isinstance(o, Delivered) for o in outcomes) and len(outcomes) == 2
    assert (sent(emu, SUBSCRIBE), sent(emu, PUT)) == (1, 2)
    assert emu.member(AUDIENCE, "a@example.com")["merge_fields"]["FNAME"] == "Ada"


@pytest.mark.parametrize("kind", SPOILED + ["200_empty_object"])
def test_an_event_answered_2xx_is_delivered_whatever_the_body(kind):
    """Mailchimp accepted it; posting it again would duplicate it."""
    outcomes, emu = deliver(Aimed(kind, EVENT, ALWAYS),
                                 batch=[event("existing@example.com")])
    assert [type(o) for o in outcomes] == [Delivered]
    assert sent(emu, EVENT) == 1
    assert len(emu.events(AUDIENCE, "existing@example.com")) == 1


@pytest.mark.parametrize("kind", ["502_html", "503_html"])
def test_an_edge_error_page_is_retried_for_events_and_members(kind):
    outcomes, emu = deliver(
        Aimed(kind, SUBSCRIBE), Aimed(kind, EVENT),
        batch=[upsert("a@example.com"), event("existing@example.com")])
    assert [type(o) for o in outcomes] == [Delivered, Delivered]
    # The page came before Mailchimp acted: the retry is the only event.
    assert (sent(emu, SUBSCRIBE), sent(emu, EVENT)) == (2, 2)
    assert len(emu.events(AUDIENCE, "existing@example.com")) == 1


@pytest.mark.parametrize("kind", ["502_html", "503_html"])
def test_an_edge_error_page_that_stays_is_a_dead_letter_and_nothing_is_posted(kind):
    outcomes, emu = deliver(
        Aimed(kind, EVENT, ALWAYS), batch=[event("existing@example.com")])
    [dead] = outcomes
    assert (dead.reason, dead.error) == (
        "retries_exhausted", f"gave up after {ATTEMPTS} attempts (last: HTTP {kind[:3]})")
    assert sent(emu, EVENT) == ATTEMPTS
    assert emu.events(AUDIENCE, "existing@example.com") == []


def test_a_put_answered_with_a_spoiled_body_is_retried():
    """A member the batch refused goes alone as PUT; its odd answer is retried."""
    outcomes, emu = deliver(
        Aimed("200_empty_object", SUBSCRIBE), Aimed("cut_body", PUT),
        batch=[upsert("a@example.com", FNAME="Ada")])
    assert [type(o) for o in outcomes] == [Delivered]
    assert (sent(emu, SUBSCRIBE), sent(emu, PUT)) == (1, 2)
    assert emu.member(AUDIENCE, "a@example.com")["merge_fields"]["FNAME"] == "Ada"


@pytest.mark.parametrize("kind", ["200_empty_object", "200_html"])
def test_merge_fields_that_never_come_dead_letter_the_members(kind):
    outcomes, emu = deliver(Aimed(kind, MERGE_FIELDS, ALWAYS),
                               batch=[upsert("a@example.com", FNAME="Ada")])
    [dead] = outcomes
    assert dead.reason == "retries_exhausted"
    says = ("no list of merge fields with tags" if kind == "200_empty_object"
            else SPOILED_SAYS[kind])
    assert dead.error.endswith(f"(last: HTTP 200 with {says})")
    assert (sent(emu, MERGE_FIELDS), sent(emu, SUBSCRIBE)) == (ATTEMPTS, 0)


def test_an_html_refusal_is_classified_by_its_status():
    page = b"<html><body><h1>403 Forbidden</h1></body></html>"
    error = MailchimpError.from_answer(403, "Forbidden", page, "text/html; charset=utf-8")
    assert (error.status, error.title) == (403, "Forbidden")
    assert error.detail == "the answer was not problem+json but text/html"
    assert skip_reason(error, "member") is None  # a dead letter, mailchimp_rejected
    not_found = MailchimpError.from_answer(404, "Not Found", page, "text/html")
    assert skip_reason(not_found, "event") == "member_not_found"


def test_the_emulator_command_line_aims_faults():
    process = start_cli("--port", "0", "--api-key", API_KEY, "--aim", "503_html", "1",
                        "GET /3.0/lists/{list_id}")
    try:
        base_url = process.stdout.readline().split(" on ", 1)[1].strip().rstrip("/")
        url, auth = f"{base_url}/lists/{AUDIENCE}", ("any", API_KEY)
        page = requests.get(url, auth=auth, timeout=5)
        assert page.status_code == 503 and page.headers["Content-Type"].startswith("text/html")
        # Then the API itself: no seed, so no such audience.
        assert requests.get(url, auth=auth, timeout=5).json()["status"] == 404
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=10)
    finally:
        process.kill()
    assert process.returncode == 0


def test_the_emulator_command_line_refuses_an_unknown_fault():
    process = start_cli("--port", "0", "--api-key", API_KEY, "--aim", "418", "1", "GET /")
    out, err = process.communicate(timeout=10)
    assert process.returncode == 2 and "unknown fault '418'" in err
