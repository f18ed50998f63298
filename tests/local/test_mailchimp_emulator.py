"""The Mailchimp emulator's API behaviour, over real HTTP on loopback.

Also home of the helpers the other test_mailchimp_emulator_*.py files use.
"""
from __future__ import annotations

import hashlib
import uuid
from typing import Any

import pytest
import requests

from pipeline.local.mailchimp_emulator import MailchimpEmulator

KEY = "test-key-7f3a9c-us6"
LIST_ID = "a1b2c3d4e5"
REQUIRED_LIST_ID = "f6e5d4c3b2"
PROBLEM_TYPE = "https://mailchimp.com/developer/marketing/docs/errors/"


def _field(tag: str, type_: str, **extra: Any) -> dict[str, Any]:
    return {"tag": tag, "name": tag.title(), "type": type_, "required": False,
            "options": {}, **extra}


SEED: dict[str, Any] = {
    "lists": [
        {
            "id": LIST_ID,
            "name": "Newsletter",
            "double_optin": False,
            "merge_fields": [
                _field("FNAME", "text"),
                _field("AGE", "number"),
                _field("ADDRESS", "address"),
                _field("PHONE", "phone"),
                _field("JOINED", "date"),
                _field("BDAY", "birthday"),
                _field("SITE", "url"),
                _field("AVATAR", "imageurl"),
                _field("PLAN", "radio", options={"choices": ["free", "pro"]}),
                _field("COLOR", "dropdown", options={"choices": ["red", "green"]}),
                _field("ZIP", "zip"),
            ],
            "members": [
                {"email_address": "Alice@Example.com", "status": "subscribed",
                 "merge_fields": {"FNAME": "Alice"}},
                {"email_address": "bob@example.com", "status": "unsubscribed",
                 "merge_fields": {}},
                {"email_address": "carol@example.com", "status": "cleaned",
                 "merge_fields": {}},
            ],
        },
        {
            "id": REQUIRED_LIST_ID,
            "name": "Strict",
            "double_optin": True,
            "merge_fields": [_field("FNAME", "text", required=True)],
            "members": [{"email_address": "dave@example.com", "status": "subscribed",
                         "merge_fields": {"FNAME": "Dave"}}],
        },
    ],
    "forgotten": ["gone@example.com"],
}


class ApiSession(requests.Session):
    """A session on one emulator's /3.0 root, authenticated with KEY."""

    def __init__(self, base_url: str, key: str | None = KEY):
        super().__init__()
        self.base_url = base_url
        if key is not None:
            self.auth = ("anystring", key)

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 10)
        return super().request(method, self.base_url + url, *args, **kwargs)


def md5(email: str) -> str:
    return hashlib.md5(email.lower().encode()).hexdigest()


def assert_problem(response: requests.Response, status: int, title: str) -> dict[str, Any]:
    """The response is Mailchimp's problem+json for `status` and `title`."""
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/problem+json")
    assert int(response.headers["Content-Length"]) == len(response.content)
    problem = response.json()
    assert {"type", "title", "status", "detail", "instance"} <= problem.keys()
    assert problem["type"] == PROBLEM_TYPE
    assert problem["title"] == title
    assert problem["status"] == status
    assert isinstance(problem["detail"], str) and problem["detail"]
    uuid.UUID(problem["instance"])
    # Errors name fields when there are any; a fake-looking address's
    # "Invalid Resource" has none (see test_fake_looking_address_*).
    for error in problem.get("errors", []):
        assert set(error) == {"field", "message"}
    return problem


def error_fields(response: requests.Response) -> list[str]:
    return [error["field"] for error in response.json()["errors"]]


def put_member(api: ApiSession, email: str, list_id: str = LIST_ID,
               path_key: str | None = None, **body: Any) -> requests.Response:
    body = {"email_address": email, **body}
    if "status" not in body:
        body.setdefault("status_if_new", "subscribed")
    return api.put(f"/lists/{list_id}/members/{path_key or md5(email)}", json=body)


@pytest.fixture
def emu():
    with MailchimpEmulator(seed=SEED, api_key=KEY) as emulator:
        yield emulator


@pytest.fixture
def api(emu):
    with ApiSession(emu.base_url) as session:
        yield session


# --- auth and ping -----------------------------------------------------------

def test_ping_with_basic_auth_any_user_name(emu):
    for user in ("anystring", "someone-else"):
        response = requests.get(emu.base_url + "/ping", auth=(user, KEY), timeout=5)
        assert response.status_code == 200
        assert response.json() == {"health_status": "Everything's Chimpy!"}


def test_ping_with_bearer_key(emu):
    response = requests.get(emu.base_url + "/ping", timeout=5,
                            headers={"Authorization": f"Bearer {KEY}"})
    assert response.json() == {"health_status": "Everything's Chimpy!"}


@pytest.mark.parametrize("headers", [
    {},
    {"Authorization": "Bearer wrong-key-us6"},
    {"Authorization": "Basic " + "bm90IGJhc2U2NA"},  # not base64 of user:key
    {"Authorization": "Basic dXNlcg=="},  # "user": no password
    {"Authorization": f"Token {KEY}"},
], ids=["missing", "wrong-bearer", "bad-base64", "no-password", "unknown-scheme"])
def test_missing_or_wrong_key_is_401(emu, headers):
    response = requests.get(emu.base_url + "/lists/" + LIST_ID, headers=headers, timeout=5)
    assert_problem(response, 401, "API Key Invalid")


def test_wrong_basic_password_is_401_and_no_key_is_echoed(emu, capfd):
    wrong = "wrong-7f3a9c-us6"
    response = requests.get(emu.base_url + "/ping", auth=("user", wrong), timeout=5)
    assert_problem(response, 401, "API Key Invalid")
    with ApiSession(emu.base_url) as api:
        answers = [response, api.get("/ping"), put_member(api, "bad email@example.com"),
                   api.get("/lists/nope")]
    for answer in answers:
        text = answer.text + str(answer.headers)
        assert KEY not in text and wrong not in text
    out, err = capfd.readouterr()
    assert KEY not in out + err and wrong not in out + err


def test_keep_alive_serves_many_requests_on_one_connection(emu, api):
    assert api.get("/ping").status_code == 200
    assert api.get("/lists/nope").status_code == 404
    assert put_member(api, "erin@example.com").status_code == 200
    assert api.post(f"/lists/{LIST_ID}/members/{md5('erin@example.com')}/events",
                    json={"name": "opened"}).status_code == 204
    assert api.get("/ping").status_code == 200
    assert emu.stats["max_open_connections"] == 1


# --- lists and routing -------------------------------------------------------

def test_get_list_info_counts_subscribed_members(api):
    response = api.get(f"/lists/{LIST_ID}")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json() == {"id": LIST_ID, "name": "Newsletter", "double_optin": False,
                               "marketing_permissions": False,
                               "stats": {"member_count": 1}}


@pytest.mark.parametrize("path", [
    "/lists/unknown",
    "/lists/unknown/merge-fields",
    f"/lists/{LIST_ID}/members/{md5('nobody@example.com')}",
    f"/lists/{LIST_ID}/members/nobody@example.com/events",
    "/campaigns",
])
def test_unknown_resources_are_404(api, path):
    assert_problem(api.get(path), 404, "Resource Not Found")


@pytest.mark.parametrize("method, path, allowed", [
    ("DELETE", f"/lists/{LIST_ID}", "GET, POST"),
    ("PUT", "/ping", "GET"),
    ("POST", f"/lists/{LIST_ID}/members/{md5('alice@example.com')}", "GET, PUT, PATCH"),
])
def test_wrong_method_is_405(api, method, path, allowed):
    response = api.request(method, path, json={})
    assert_problem(response, 405, "Method Not Allowed")
    assert response.headers["Allow"] == allowed


@pytest.mark.parametrize("method", ["TRACE", "OPTIONS", "HEAD", "PROPFIND"])
def test_methods_no_route_serves_are_405_problems_not_501(api, method):
    response = api.request(method, f"/lists/{LIST_ID}")
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, POST"
    assert response.headers["Content-Type"].startswith("application/problem+json")
    if method != "HEAD":  # a HEAD answer carries no body
        assert_problem(response, 405, "Method Not Allowed")
    assert api.get("/ping").status_code == 200  # the connection stayed in step


@pytest.mark.parametrize("body", [b"{not json", b"", b"\xff\xfe", b'{"name": NaN}'])
def test_undecodable_body_is_json_parse_exception(api, body):
    response = api.post(f"/lists/{LIST_ID}/members/{md5('alice@example.com')}/events",
                        data=body, headers={"Content-Type": "application/json"})
    assert_problem(response, 400, "JSON Parse Exception")


# --- merge fields ------------------------------------------------------------

def test_merge_fields_paginate_with_total_items():
    seed = {"lists": [{"id": "L25", "name": "Many", "merge_fields": [
        _field(f"F{i:02d}", "text") for i in range(25)]}]}
    with MailchimpEmulator(seed=seed, api_key=KEY) as emu, ApiSession(emu.base_url) as api:
        pages = [api.get("/lists/L25/merge-fields", params={"count": 10, "offset": offset}).json()
                 for offset in (0, 10, 20)]
        default_page = api.get("/lists/L25/merge-fields").json()
        too_many = api.get("/lists/L25/merge-fields", params={"count": 1001})
        negative = api.get("/lists/L25/merge-fields", params={"offset": -1})
    assert [len(page["merge_fields"]) for page in pages] == [10, 10, 5]
    assert {page["total_items"] for page in pages} == {25}
    tags = [field["tag"] for page in pages for field in page["merge_fields"]]
    assert tags == [f"F{i:02d}" for i in range(25)]
    assert [field["merge_id"] for page in pages for field in page["merge_fields"]] == list(range(1, 26))
    assert pages[0]["list_id"] == "L25"
    assert set(pages[0]["merge_fields"][0]) == {
        "merge_id", "tag", "name", "type", "required", "options", "list_id"}
    assert len(default_page["merge_fields"]) == 10
    assert error_fields(too_many) == ["count"]
    assert_problem(negative, 400, "Invalid Resource")


def test_create_merge_field_defaults_its_tag_and_is_usable(api):
    response = api.post(f"/lists/{LIST_ID}/merge-fields",
                        json={"name": "Favourite colour", "type": "text"})
    assert response.status_code == 200
    created = response.json()
    assert created["tag"] == "FAVOURITEC"
    assert created["merge_id"] == 12 and created["list_id"] == LIST_ID
    member = put_member(api, "erin@example.com", merge_fields={"FAVOURITEC": "teal"})
    assert member.json()["merge_fields"]["FAVOURITEC"] == "teal"


@pytest.mark.parametrize("body, field", [
    ({"name": "First name", "type": "text", "tag": "fname"}, "tag"),  # tags are upper-cased
    ({"name": "No type"}, "type"),
    ({"type": "text"}, "name"),
    ({"name": "Colour", "type": "colour"}, "type"),
    ({"name": "Plan", "type": "radio", "options": {"choices": "free"}}, "options.choices"),
])
def test_create_merge_field_rejects_bad_definitions(api, body, field):
    response = api.post(f"/lists/{LIST_ID}/merge-fields", json=body)
    assert_problem(response, 400, "Invalid Resource")
    assert error_fields(response) == [field]


# --- PUT member --------------------------------------------------------------

def test_put_creates_member_with_status_if_new(api, emu):
    response = put_member(api, "Erin@Example.com", status_if_new="pending",
                          merge_fields={"FNAME": "Erin"})
    assert response.status_code == 200
    member = response.json()
    assert member["id"] == md5("erin@example.com")
    assert member["email_address"] == "Erin@Example.com"
    assert member["status"] == "pending"
    assert member["list_id"] == LIST_ID
    assert len(member["unique_email_id"]) == 10 and member["last_changed"]
    assert member["merge_fields"]["FNAME"] == "Erin"
    assert member["merge_fields"]["AGE"] == ""  # every merge field shows, empty when unset
    assert emu.member(LIST_ID, "ERIN@example.COM") == member
    assert api.get(f"/lists/{LIST_ID}/members/{md5('erin@example.com')}").json() == member
    assert api.get(f"/lists/{LIST_ID}/members/erin@example.com").json() == member


def test_put_new_member_with_status_uses_it(api):
    response = put_member(api, "erin@example.com", status="transactional")
    assert response.json()["status"] == "transactional"


def test_put_existing_member_ignores_status_if_new(api, emu):
    response = put_member(api, "alice@example.com", status_if_new="pending",
                          merge_fields={"AGE": 36})
    assert response.status_code == 200
    assert response.json()["status"] == "subscribed"
    assert emu.member(LIST_ID, "alice@example.com")["merge_fields"]["FNAME"] == "Alice"
    assert emu.member(LIST_ID, "alice@example.com")["merge_fields"]["AGE"] == 36
    bob = put_member(api, "bob@example.com", status_if_new="subscribed")
    assert bob.json()["status"] == "unsubscribed"


def test_put_existing_member_with_status_changes_it(api, emu):
    assert put_member(api, "alice@example.com", status="unsubscribed").json()["status"] == "unsubscribed"
    assert emu.member(LIST_ID, "alice@example.com")["status"] == "unsubscribed"


def test_put_accepts_the_email_in_the_path(api):
    response = put_member(api, "erin@example.com", path_key="Erin%40example.com")
    assert response.status_code == 200
    assert response.json()["id"] == md5("erin@example.com")


def test_put_rejects_a_hash_that_does_not_match_the_email(api, emu):
    response = put_member(api, "erin@example.com", path_key=md5("frank@example.com"))
    assert_problem(response, 400, "Invalid Resource")
    assert error_fields(response) == ["email_address"]
    assert emu.member(LIST_ID, "erin@example.com") is None


@pytest.mark.parametrize("body, field", [
    ({"email_address": "erin@example.com"}, "status_if_new"),
    ({"email_address": "erin@example.com", "status": "subscribed",
      "status_if_new": "subscribed"}, "status"),  # the document's oneOf: one, not both
    ({"status_if_new": "subscribed"}, "email_address"),
    ({"email_address": "erin@example.com", "status_if_new": "archived"}, "status_if_new"),
    ({"email_address": "erin@example.com", "status_if_new": "subscribed", "vip": "yes"}, "vip"),
    ({"email_address": "erin@example.com", "status_if_new": "subscribed",
      "merge_fields": ["FNAME"]}, "merge_fields"),
    ({"email_address": "erin@example.com", "status_if_new": "subscribed",
      "timestamp_signup": "yesterday"}, "timestamp_signup"),
])
def test_put_rejects_bodies_the_schema_rejects(api, emu, body, field):
    response = api.put(f"/lists/{LIST_ID}/members/{md5('erin@example.com')}", json=body)
    assert_problem(response, 400, "Invalid Resource")
    assert error_fields(response) == [field]
    assert emu.member(LIST_ID, "erin@example.com") is None


@pytest.mark.parametrize("email, status", [
    ("bob@example.com", "subscribed"),
    ("bob@example.com", "pending"),
    ("carol@example.com", "subscribed"),
    ("carol@example.com", "pending"),
])
def test_unsubscribed_or_cleaned_member_cannot_be_resubscribed(api, emu, email, status):
    before = emu.member(LIST_ID, email)
    response = put_member(api, email, status=status, merge_fields={"FNAME": "Changed"})
    problem = assert_problem(response, 400, "Member In Compliance State")
    assert problem["detail"] == (f"{email} is in a compliance state due to unsubscribe, bounce, "
                                 "or compliance review and cannot be subscribed.")
    assert emu.member(LIST_ID, email) == before


def test_compliance_state_allows_other_changes(api):
    assert put_member(api, "bob@example.com", status="unsubscribed",
                      merge_fields={"FNAME": "Bob"}).status_code == 200
    carol = put_member(api, "carol@example.com", status="transactional")
    assert carol.json()["status"] == "transactional"


def test_forgotten_email_is_not_subscribed(api, emu):
    response = put_member(api, "Gone@Example.com")
    problem = assert_problem(response, 400, "Forgotten Email Not Subscribed")
    assert problem["detail"] == ("Gone@Example.com was permanently deleted and cannot be "
                                 "re-imported. The contact must re-subscribe to get back on "
                                 "the list.")
    assert emu.member(LIST_ID, "gone@example.com") is None


@pytest.mark.parametrize("email", [
    "test@gm***.com", "j***@example.com", "someone@mailinator.com", "X@MAILINATOR.COM",
    "a@eu.mailinator.com", "a@yopmail.com", "a@guerrillamail.com",
])
def test_fake_looking_address_gets_mailchimps_answer_without_errors(api, emu, email):
    """The emulator's rule: a "*" anywhere, or a disposable-mail domain."""
    response = put_member(api, email)
    problem = assert_problem(response, 400, "Invalid Resource")
    assert problem["detail"] == f"{email} looks fake or invalid, please enter a real email address."
    assert "errors" not in problem
    assert emu.member(LIST_ID, email) is None


@pytest.mark.parametrize("email", ["a@notmailinator.com", "mailinator.com@example.com",
                                   "a@mailinator.com.example.org"])
def test_addresses_merely_resembling_fake_ones_are_accepted(api, email):
    assert put_member(api, email).status_code == 200


@pytest.mark.parametrize("email", [
    "no-at-sign.example.com", "two@@example.com", "a@b@example.com", "user@localhost",
    "user name@example.com", " user@example.com", "user@example.c", "user@.example.com",
    "@example.com",
])
def test_implausible_email_is_invalid_resource(api, emu, email):
    response = put_member(api, email)
    assert_problem(response, 400, "Invalid Resource")
    assert error_fields(response) == ["email_address"]
    assert emu.member(LIST_ID, email) is None


# --- merge field values ------------------------------------------------------

ADDRESS = {"addr1": "1 Main St", "city": "Springfield", "state": "IL", "zip": "62701"}
# tag → (accepted value → stored value, rejected values)
TYPE_CASES = {
    "FNAME": ([("Ada", "Ada"), ("é" * 127, "é" * 127)],
              [5, True, "x" * 256, "é" * 128, {"first": "Ada"}]),
    "AGE": ([(42, 42), ("42", 42), ("-4.5", -4.5), (1.5, 1.5)],
            ["forty", True, "4,5", {"n": 1}, None]),
    "ADDRESS": ([(ADDRESS, {**ADDRESS, "addr2": "", "country": ""}),
                 ({**ADDRESS, "country": "US"}, {**ADDRESS, "addr2": "", "country": "US"})],
                ["1 Main St, Springfield", {"addr1": "1 Main St"}, {**ADDRESS, "zip": 62701},
                 {**ADDRESS, "city": ""}]),
    "PHONE": ([("+1 555 0100", "+1 555 0100")], [5550100, ["555"]]),
    "JOINED": ([("2024-02-29", "2024-02-29")], ["2023-02-29", "29/02/2024", "2024-2-1", 20240229]),
    "BDAY": ([("02/29", "02/29"), ("12/31", "12/31")], ["13/01", "2/3", "04/31", "1990-02-03"]),
    "SITE": ([("https://example.com/a", "https://example.com/a")],
             ["example.com", "ftp://example.com", "https://", 7]),
    "AVATAR": ([("http://img.example.com/a.png", "http://img.example.com/a.png")],
               ["a.png", "//img.example.com/a.png"]),
    "PLAN": ([("pro", "pro")], ["enterprise", "Pro", 1]),
    "COLOR": ([("red", "red")], ["blue", ["red"]]),
    "ZIP": ([("02139", "02139")], ["2139", "021390", "ABCDE", 2139]),
}


@pytest.mark.parametrize("tag", TYPE_CASES)
def test_merge_field_values_are_checked_by_type(api, emu, tag):
    accepted, rejected = TYPE_CASES[tag]
    for value in rejected:
        response = put_member(api, "typed@example.com", merge_fields={tag: value})
        assert_problem(response, 400, "Invalid Resource")
        assert error_fields(response) == [tag], value
    assert emu.member(LIST_ID, "typed@example.com") is None
    for value, stored in accepted:
        response = put_member(api, "typed@example.com", merge_fields={tag: value})
        assert response.status_code == 200, (value, response.text)
        assert response.json()["merge_fields"][tag] == stored
    cleared = put_member(api, "typed@example.com", merge_fields={tag: ""})
    assert cleared.json()["merge_fields"][tag] == ""


def test_unknown_merge_tags_are_dropped_silently(api, emu):
    """As Mailchimp answers (recorded): accepted, the unknown tags gone."""
    response = put_member(api, "erin@example.com",
                          merge_fields={"FNAME": "Erin", "PLANET": "Mars", "fname": "x"})
    assert response.status_code == 200
    assert response.json()["merge_fields"]["FNAME"] == "Erin"
    stored = emu.member(LIST_ID, "erin@example.com")["merge_fields"]
    assert "PLANET" not in stored and "fname" not in stored
    patched = api.patch(f"/lists/{LIST_ID}/members/{md5('erin@example.com')}",
                        json={"merge_fields": {"PLANET": "Venus", "AGE": 7}})
    assert patched.status_code == 200 and "PLANET" not in patched.json()["merge_fields"]
    wrong_type = put_member(api, "erin@example.com", merge_fields={"PLANET": "Mars", "AGE": "old"})
    assert_problem(wrong_type, 400, "Invalid Resource")
    assert wrong_type.json()["errors"] == [{"field": "AGE", "message": "Please enter a number"}]


def test_required_merge_field_needed_for_new_members_only(api, emu):
    missing = put_member(api, "erin@example.com", list_id=REQUIRED_LIST_ID)
    assert_problem(missing, 400, "Invalid Resource")
    assert error_fields(missing) == ["FNAME"]
    empty = put_member(api, "erin@example.com", list_id=REQUIRED_LIST_ID, merge_fields={"FNAME": ""})
    assert error_fields(empty) == ["FNAME"]
    assert emu.member(REQUIRED_LIST_ID, "erin@example.com") is None
    assert put_member(api, "erin@example.com", list_id=REQUIRED_LIST_ID,
                      merge_fields={"FNAME": "Erin"}).status_code == 200
    assert put_member(api, "dave@example.com", list_id=REQUIRED_LIST_ID).status_code == 200
    skipped = api.put(f"/lists/{REQUIRED_LIST_ID}/members/{md5('fay@example.com')}",
                      params={"skip_merge_validation": "true"},
                      json={"email_address": "fay@example.com", "status_if_new": "subscribed"})
    assert skipped.status_code == 200


# --- PATCH member ------------------------------------------------------------

def test_patch_updates_merge_fields_and_status(api, emu):
    path = f"/lists/{LIST_ID}/members/{md5('alice@example.com')}"
    response = api.patch(path, json={"merge_fields": {"PLAN": "pro"}, "status": "unsubscribed"})
    assert response.status_code == 200
    assert response.json()["status"] == "unsubscribed"
    assert emu.member(LIST_ID, "alice@example.com")["merge_fields"]["PLAN"] == "pro"
    assert emu.member(LIST_ID, "alice@example.com")["merge_fields"]["FNAME"] == "Alice"


@pytest.mark.parametrize("email, body, status, title", [
    ("alice@example.com", {"status": "transactional"}, 400, "Invalid Resource"),
    ("alice@example.com", {"merge_fields": {"ZIP": "1"}}, 400, "Invalid Resource"),
    ("bob@example.com", {"status": "subscribed"}, 400, "Member In Compliance State"),
    ("nobody@example.com", {"status": "subscribed"}, 404, "Resource Not Found"),
])
def test_patch_rejections_change_nothing(api, emu, email, body, status, title):
    before = emu.member(LIST_ID, email)
    response = api.patch(f"/lists/{LIST_ID}/members/{md5(email)}", json=body)
    assert_problem(response, status, title)
    assert emu.member(LIST_ID, email) == before


# --- batch subscribe ---------------------------------------------------------

def batch(api: ApiSession, members: list[dict[str, Any]], **body: Any) -> requests.Response:
    return api.post(f"/lists/{LIST_ID}", json={"members": members, **body})


def test_batch_creates_updates_and_reports_errors(api, emu):
    response = batch(api, [
        {"email_address": "new@example.com", "status_if_new": "pending",
         "merge_fields": {"FNAME": "New"}},
        {"email_address": "alice@example.com", "status_if_new": "pending",
         "merge_fields": {"FNAME": "Alicia"}},
        {"email_address": "not-an-email", "status_if_new": "subscribed"},
        {"email_address": "gone@example.com", "status_if_new": "subscribed"},
        {"email_address": "zed@example.com", "status_if_new": "subscribed",
         "merge_fields": {"ZIP": "123"}},
        {"email_address": "bob@example.com", "status": "subscribed"},
        {"email_address": "temp@mailinator.com", "status_if_new": "subscribed"},
        {"email_address": "tagged@example.com", "status_if_new": "subscribed",
         "merge_fields": {"PLANET": "Mars", "FNAME": "Tag"}},  # unknown tag: dropped
    ], update_existing=True)
    assert response.status_code == 200
    result = response.json()
    assert [m["email_address"] for m in result["new_members"]] == [
        "new@example.com", "tagged@example.com"]
    assert result["new_members"][0]["status"] == "pending"
    assert "PLANET" not in result["new_members"][1]["merge_fields"]
    assert [m["email_address"] for m in result["updated_members"]] == ["Alice@Example.com"]
    assert (result["total_created"], result["total_updated"], result["error_count"]) == (2, 1, 5)
    errors = {e["email_address"]: e for e in result["errors"]}
    assert set(errors) == {"not-an-email", "gone@example.com", "zed@example.com",
                           "bob@example.com", "temp@mailinator.com"}
    assert errors["temp@mailinator.com"]["error"] == (
        "temp@mailinator.com looks fake or invalid, please enter a real email address.")
    for error in result["errors"]:
        assert set(error) == {"email_address", "error", "error_code", "field", "field_message"}
        assert error["error_code"] == "ERROR_GENERIC" and error["error"]
    assert errors["not-an-email"]["field"] == "email_address"
    assert errors["zed@example.com"]["field"] == "ZIP"
    assert errors["zed@example.com"]["field_message"]
    assert "permanently deleted" in errors["gone@example.com"]["error"]
    assert "compliance state" in errors["bob@example.com"]["error"]
    assert emu.member(LIST_ID, "alice@example.com")["status"] == "subscribed"
    assert emu.member(LIST_ID, "alice@example.com")["merge_fields"]["FNAME"] == "Alicia"
    assert emu.member(LIST_ID, "bob@example.com")["status"] == "unsubscribed"
    assert emu.member(LIST_ID, "zed@example.com") is None


def test_batch_update_existing_with_status_overwrites_existing_status(api, emu):
    result = batch(api, [{"email_address": "alice@example.com", "status": "pending"}],
                   update_existing=True).json()
    assert result["total_updated"] == 1
    assert emu.member(LIST_ID, "alice@example.com")["status"] == "pending"


def test_batch_update_existing_with_status_if_new_keeps_existing_status(api, emu):
    result = batch(api, [
        {"email_address": "alice@example.com", "status_if_new": "transactional"},
        {"email_address": "bob@example.com", "status_if_new": "subscribed"},
        {"email_address": "new@example.com", "status_if_new": "transactional"},
    ], update_existing=True).json()
    assert (result["total_created"], result["total_updated"], result["error_count"]) == (1, 2, 0)
    assert emu.member(LIST_ID, "alice@example.com")["status"] == "subscribed"
    assert emu.member(LIST_ID, "bob@example.com")["status"] == "unsubscribed"
    assert emu.member(LIST_ID, "new@example.com")["status"] == "transactional"


def test_batch_without_update_existing_reports_contact_exists(api, emu):
    result = batch(api, [{"email_address": "alice@example.com", "status": "unsubscribed",
                          "merge_fields": {"FNAME": "Changed"}}]).json()
    assert result["error_count"] == 1 and result["total_updated"] == 0
    assert result["errors"][0]["error_code"] == "ERROR_CONTACT_EXISTS"
    assert result["errors"][0]["email_address"] == "alice@example.com"
    assert emu.member(LIST_ID, "alice@example.com")["status"] == "subscribed"
    assert emu.member(LIST_ID, "alice@example.com")["merge_fields"]["FNAME"] == "Alice"


def test_batch_of_more_than_500_members_is_rejected(api, emu):
    members = [{"email_address": f"m{i}@example.com", "status_if_new": "subscribed"}
               for i in range(501)]
    response = batch(api, members)
    assert_problem(response, 400, "Invalid Resource")
    assert error_fields(response) == ["members"]
    assert emu.member(LIST_ID, "m0@example.com") is None
    assert batch(api, members[:500]).json()["total_created"] == 500


@pytest.mark.parametrize("body, field", [
    ({"members": [{"email_address": "new@example.com"}]}, "members[0].status_if_new"),
    ({"members": [{"email_address": "new@example.com", "status": None}]}, "members[0].status"),
    ({"members": [{"email_address": "new@example.com", "status_if_new": "gone"}]},
     "members[0].status_if_new"),
    ({"members": {"email_address": "new@example.com"}}, "members"),
    ({"update_existing": True}, "members"),
    ({"members": [], "update_existing": "yes"}, "update_existing"),
])
def test_batch_rejects_bodies_the_schema_rejects(api, emu, body, field):
    response = api.post(f"/lists/{LIST_ID}", json=body)
    assert_problem(response, 400, "Invalid Resource")
    assert error_fields(response) == [field]
    assert emu.member(LIST_ID, "new@example.com") is None


def test_batch_required_merge_fields_and_skip_merge_validation(api, emu):
    members = [{"email_address": "erin@example.com", "status_if_new": "subscribed"}]
    strict = api.post(f"/lists/{REQUIRED_LIST_ID}", json={"members": members}).json()
    assert strict["errors"][0]["field"] == "FNAME"
    lenient = api.post(f"/lists/{REQUIRED_LIST_ID}", params={"skip_merge_validation": "true"},
                       json={"members": members}).json()
    assert lenient["total_created"] == 1


def test_batch_duplicates_in_one_request(api, emu):
    members = [{"email_address": "dup@example.com", "status_if_new": "subscribed"},
               {"email_address": "DUP@example.com", "status_if_new": "pending"}]
    skipped = api.post(f"/lists/{LIST_ID}", params={"skip_duplicate_check": "true"},
                       json={"members": members}).json()
    assert (skipped["total_created"], skipped["error_count"]) == (1, 0)
    repeated = api.post(f"/lists/{LIST_ID}", json={"members": members}).json()
    assert [e["error_code"] for e in repeated["errors"]] == ["ERROR_CONTACT_EXISTS"] * 2
    assert emu.member(LIST_ID, "dup@example.com")["status"] == "subscribed"


# --- member events -----------------------------------------------------------

def events_path(email: str) -> str:
    return f"/lists/{LIST_ID}/members/{md5(email)}/events"


def test_post_event_is_204_and_stored(api, emu):
    body = {"name": "plan-upgraded_2", "properties": {"plan": "pro", "seats": "3"},
            "is_syncing": True, "occurred_at": "2024-05-01T12:30:00Z"}
    response = api.post(events_path("alice@example.com"), json=body)
    assert response.status_code == 204
    assert response.content == b""
    assert "Content-Type" not in response.headers
    assert api.post(events_path("alice@example.com"), json={"name": "xy"}).status_code == 204
    assert emu.events(LIST_ID, "ALICE@example.com")[0] == body
    assert emu.events(LIST_ID, "alice@example.com")[1]["is_syncing"] is False
    listed = api.get(events_path("alice@example.com")).json()
    assert listed["total_items"] == 2
    assert listed["events"][0] == {"name": "plan-upgraded_2", "occurred_at": "2024-05-01T12:30:00Z",
                                   "properties": {"plan": "pro", "seats": "3"}}


def test_events_paginate(api):
    for i in range(12):
        api.post(events_path("alice@example.com"), json={"name": f"event_{i:02d}"})
    first = api.get(events_path("alice@example.com")).json()
    last = api.get(events_path("alice@example.com"), params={"count": 5, "offset": 10}).json()
    assert (len(first["events"]), first["total_items"]) == (10, 12)
    assert [e["name"] for e in last["events"]] == ["event_10", "event_11"]


def test_event_for_unknown_member_is_404(api, emu):
    response = api.post(events_path("nobody@example.com"), json={"name": "opened"})
    assert_problem(response, 404, "Resource Not Found")
    assert emu.events(LIST_ID, "nobody@example.com") == []


@pytest.mark.parametrize("body, field", [
    ({"name": "x"}, "name"),
    ({"name": "x" * 31}, "name"),
    ({"name": "signed up"}, "name"),
    ({"name": "café"}, "name"),
    ({"properties": {"plan": "pro"}}, "name"),
    ({"name": 42}, "name"),
    ({"name": "opened", "properties": {"seats": 3}}, "properties.seats"),
    ({"name": "opened", "properties": {"flag": None}}, "properties.flag"),
    ({"name": "opened", "properties": ["plan"]}, "properties"),
    ({"name": "opened", "is_syncing": "true"}, "is_syncing"),
    ({"name": "opened", "occurred_at": "yesterday"}, "occurred_at"),
    ({"name": "opened", "occurred_at": "2024-05-01T12:30:00"}, "occurred_at"),  # no time zone
    ({"name": "opened", "occurred_at": "2024-13-01T12:30:00Z"}, "occurred_at"),
])
def test_invalid_events_are_rejected(api, emu, body, field):
    response = api.post(events_path("alice@example.com"), json=body)
    assert_problem(response, 400, "Invalid Resource")
    assert error_fields(response) == [field]
    assert emu.events(LIST_ID, "alice@example.com") == []


def test_chunked_request_bodies_are_read(api, emu):
    chunks = iter([b'{"name": "op', b'ened", "properties": {}}'])
    assert api.post(events_path("alice@example.com"), data=chunks).status_code == 204
    assert emu.events(LIST_ID, "alice@example.com")[0]["name"] == "opened"
    assert api.get("/ping").status_code == 200  # the stream stayed in step


@pytest.mark.parametrize("name", ["ab", "x" * 30, "Signed_Up-2"])
def test_event_names_of_2_to_30_allowed_characters_are_accepted(api, name):
    assert api.post(events_path("alice@example.com"), json={"name": name}).status_code == 204


# --- inspection ----------------------------------------------------------------

def test_inspection_endpoints_need_no_key(emu, api):
    put_member(api, "erin@example.com")
    api.post(events_path("erin@example.com"), json={"name": "opened"})
    root = emu.base_url.removesuffix("/3.0")
    state = requests.get(root + "/_emulator/state", timeout=5).json()
    assert state["lists"][LIST_ID]["members"][md5("erin@example.com")]["status"] == "subscribed"
    assert state["lists"][LIST_ID]["events"][md5("erin@example.com")][0]["name"] == "opened"
    stats = requests.get(root + "/_emulator/stats", timeout=5).json()
    assert stats["requests"] == {
        "PUT /3.0/lists/{list_id}/members/{subscriber_hash}": 1,
        "POST /3.0/lists/{list_id}/members/{subscriber_hash}/events": 1}
    assert stats == emu.stats
    assert set(stats) == {"max_in_flight", "max_open_connections", "requests", "faults",
                          "rejected_429_limit"}
    assert requests.post(root + "/_emulator/reset_stats", timeout=5).status_code == 204
    assert emu.stats["requests"] == {}
    assert_problem(requests.get(root + "/_emulator/nothing", timeout=5), 404, "Resource Not Found")
