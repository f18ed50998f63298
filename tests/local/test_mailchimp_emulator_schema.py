"""The Mailchimp emulator against Mailchimp's own OpenAPI document
(../shared/mailchimp/marketing-subset.openapi.json beside the project).

Every body the emulator accepts must validate against the operation's
request schema, every body the schema rejects must be refused with a 400,
and every answer must match the operation's response schemas.
"""
from __future__ import annotations

import copy
import datetime
import json
import re
from pathlib import Path
from typing import Any

import pytest
import requests
from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from pipeline.local.mailchimp_emulator import MailchimpEmulator
from tests.local.test_mailchimp_emulator import (ADDRESS, KEY, LIST_ID, SEED, ApiSession,
                                                 md5)

SHARED = Path(__file__).resolve().parents[3] / "shared"
OPENAPI = SHARED / "mailchimp" / "marketing-subset.openapi.json"
DOCUMENT_URI = "urn:mailchimp:marketing-subset"

# The recorded path of a request → the document's path template.
TEMPLATES = [
    (re.compile(r"/3\.0/lists/[^/]+/members/[^/]+/events"),
     "/3.0/lists/{list_id}/members/{subscriber_hash}/events"),
    (re.compile(r"/3\.0/lists/[^/]+/members/[^/]+/tags"),
     "/3.0/lists/{list_id}/members/{subscriber_hash}/tags"),
    (re.compile(r"/3\.0/lists/[^/]+/members/[^/]+"), "/3.0/lists/{list_id}/members/{subscriber_hash}"),
    (re.compile(r"/3\.0/lists/[^/]+/members"), "/3.0/lists/{list_id}/members"),
    (re.compile(r"/3\.0/lists/[^/]+/merge-fields"), "/3.0/lists/{list_id}/merge-fields"),
    (re.compile(r"/3\.0/lists/[^/]+"), "/3.0/lists/{list_id}"),
]


def _date_time(value: object) -> bool:
    """RFC 3339 date-time: jsonschema checks it only with an optional package."""
    if not isinstance(value, str):
        return True  # a format constrains strings only
    if not re.fullmatch(r"\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)", value):
        return False
    try:
        datetime.datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


FORMATS = FormatChecker()
FORMATS.checks("date-time")(_date_time)


class OpenApi:
    """Validators for the document's request and response schemas."""

    def __init__(self, document: dict[str, Any]):
        resource = Resource.from_contents(document, default_specification=DRAFT202012)
        self._registry = Registry().with_resource(DOCUMENT_URI, resource)
        self._document = document

    def _validator(self, *pointer: str) -> Draft202012Validator:
        escaped = "/".join(part.replace("~", "~0").replace("/", "~1") for part in pointer)
        return Draft202012Validator({"$ref": f"{DOCUMENT_URI}#/{escaped}"},
                                    registry=self._registry, format_checker=FORMATS)

    def request(self, template: str, method: str) -> Draft202012Validator:
        return self._validator("paths", template, method.lower(), "requestBody", "content",
                               "application/json", "schema")

    def response(self, template: str, method: str, status: int) -> Draft202012Validator | None:
        responses = self._document["paths"][template][method.lower()]["responses"]
        code = str(status) if str(status) in responses else "default"
        content = responses[code].get("content", {})
        if not content:
            return None
        media_type = next(iter(content))
        return self._validator("paths", template, method.lower(), "responses", code, "content",
                               media_type, "schema")


@pytest.fixture(scope="module")
def openapi() -> OpenApi:
    if not OPENAPI.exists():
        pytest.skip(f"Mailchimp's OpenAPI subset is not there: {OPENAPI} (the shared "
                    "folder beside the project) is missing")
    return OpenApi(json.loads(OPENAPI.read_text(encoding="utf-8")))


def template_of(path: str) -> str:
    return next(template for pattern, template in TEMPLATES if pattern.fullmatch(path))


def member_path(email: str) -> str:
    return f"/lists/{LIST_ID}/members/{md5(email)}"


NEW = "new@example.com"
# The audience with a marketing permission, p1, that member bodies may set.
GDPR_SEED = copy.deepcopy(SEED)
GDPR_SEED["lists"][0]["marketing_permissions"] = [
    {"marketing_permission_id": "p1", "text": "Email"}]
# (method, path under /3.0, JSON body): accepted and rejected bodies of each operation.
CORPUS: list[tuple[str, str, Any]] = [
    ("PUT", member_path(NEW), {"email_address": NEW, "status_if_new": "subscribed"}),
    ("PUT", member_path(NEW), {"email_address": NEW, "status": "pending",
                               "merge_fields": {"FNAME": "New", "ADDRESS": ADDRESS, "AGE": 3}}),
    ("PUT", member_path("full@example.com"), {
        "email_address": "full@example.com", "status_if_new": "transactional",
        "email_type": "html", "language": "fr", "vip": True, "ip_signup": "192.0.2.1",
        "interests": {"abc123": True}, "location": {"latitude": 48.85, "longitude": 2.35},
        "marketing_permissions": [{"marketing_permission_id": "p1", "enabled": True}],
        "timestamp_signup": "2024-05-01T12:30:00+00:00", "timestamp_opt": "2024-05-01 12:30:00",
        "merge_fields": None}),
    ("PUT", member_path("ts@example.com"), {"email_address": "ts@example.com",
                                            "status_if_new": "subscribed",
                                            "timestamp_opt": "2024-05-01T12:30:00+0200"}),
    ("PUT", member_path(NEW), {"email_address": NEW}),
    ("PUT", member_path(NEW), {"email_address": NEW, "status": "subscribed",
                               "status_if_new": "pending"}),
    ("PUT", member_path(NEW), {"status_if_new": "subscribed"}),
    ("PUT", member_path(NEW), {"email_address": NEW, "status_if_new": "archived"}),
    ("PUT", member_path(NEW), {"email_address": NEW, "status_if_new": "subscribed", "vip": 1}),
    ("PUT", member_path(NEW), {"email_address": NEW, "status_if_new": "subscribed",
                               "interests": {"abc123": "yes"}}),
    ("PUT", member_path(NEW), {"email_address": NEW, "status_if_new": "subscribed",
                               "location": {"latitude": "north"}}),
    ("PUT", member_path(NEW), {"email_address": NEW, "status_if_new": "subscribed",
                               "timestamp_signup": "01/05/2024"}),
    ("PUT", member_path(NEW), ["not", "an", "object"]),
    ("PATCH", member_path("alice@example.com"), {"merge_fields": {"PLAN": "pro"}, "vip": False}),
    ("PATCH", member_path("alice@example.com"), {"status": "transactional"}),
    ("POST", f"/lists/{LIST_ID}", {"members": [
        {"email_address": "b1@example.com", "status_if_new": "subscribed", "tags": ["a"],
         "merge_fields": {"FNAME": "B"}, "location": None, "vip": None, "interests": {"x": None}},
        {"email_address": "alice@example.com", "status_if_new": "pending"},
        {"email_address": "b2@example.com", "status": "pending",
         "timestamp_signup": "2024-05-01T12:30:00Z"},
        {"email_address": "not an email", "status": "subscribed"},
    ], "update_existing": True, "sync_tags": None}),
    ("POST", f"/lists/{LIST_ID}", {"members": []}),
    ("POST", f"/lists/{LIST_ID}", {"members": [{"email_address": "b3@example.com"}]}),
    ("POST", f"/lists/{LIST_ID}", {"members": [{"email_address": "b3@example.com", "status": None}]}),
    ("POST", f"/lists/{LIST_ID}", {"members": [{"email_address": 3, "status": "subscribed"}]}),
    ("POST", f"/lists/{LIST_ID}", {"members": [{"email_address": "b3@example.com",
                                                "status": "subscribed", "tags": "vip"}]}),
    ("POST", f"/lists/{LIST_ID}", {"members": [{"email_address": "b3@example.com",
                                                "status": "subscribed",
                                                "timestamp_opt": "2024-05-01"}]}),
    ("POST", f"/lists/{LIST_ID}", {"members": "all"}),
    ("POST", f"/lists/{LIST_ID}", {}),
    ("POST", f"{member_path('alice@example.com')}/events", {"name": "opened"}),
    ("POST", f"{member_path('alice@example.com')}/events", {
        "name": "plan_upgraded", "properties": {"plan": "pro"}, "is_syncing": True,
        "occurred_at": "2024-05-01T12:30:00.123+02:00"}),
    ("POST", f"{member_path('alice@example.com')}/events", {"properties": {"plan": "pro"}}),
    ("POST", f"{member_path('alice@example.com')}/events", {"name": "opened", "properties": {"n": 1}}),
    ("POST", f"{member_path('alice@example.com')}/events", {"name": "opened", "is_syncing": "no"}),
    ("POST", f"{member_path('alice@example.com')}/events", {"name": "opened", "occurred_at": "now"}),
    ("POST", f"{member_path('alice@example.com')}/events", {"name": ["opened"]}),
    ("POST", f"/lists/{LIST_ID}/merge-fields", {"name": "Tier", "type": "dropdown",
                                               "options": {"choices": ["a", "b"]}, "public": True}),
    ("POST", f"/lists/{LIST_ID}/merge-fields", {"name": "Shoe size", "type": "shoe"}),
    ("POST", f"/lists/{LIST_ID}/merge-fields", {"name": "Score", "type": "number",
                                               "display_order": "1"}),
    ("POST", f"{member_path('alice@example.com')}/tags", {
        "tags": [{"name": "vip", "status": "active"}, {"name": "trial", "status": "inactive"}],
        "is_syncing": True}),
    ("POST", f"{member_path('alice@example.com')}/tags", {"tags": []}),
    ("POST", f"{member_path('alice@example.com')}/tags", {}),
    ("POST", f"{member_path('alice@example.com')}/tags", {"tags": [{"name": "vip"}]}),
    ("POST", f"{member_path('alice@example.com')}/tags", {"tags": [{"status": "active"}]}),
    ("POST", f"{member_path('alice@example.com')}/tags",
     {"tags": [{"name": "vip", "status": "on"}]}),
    ("POST", f"{member_path('alice@example.com')}/tags",
     {"tags": [{"name": 7, "status": "active"}]}),
    ("POST", f"{member_path('alice@example.com')}/tags", {"tags": ["vip"]}),
    ("POST", f"{member_path('alice@example.com')}/tags", {"tags": {"name": "vip"}}),
    ("POST", f"{member_path('alice@example.com')}/tags",
     {"tags": [{"name": "vip", "status": "active"}], "is_syncing": "yes"}),
    ("POST", f"/lists/{LIST_ID}/members", {
        "email_address": "added@example.com", "status": "subscribed", "tags": ["a", "b"],
        "marketing_permissions": [{"marketing_permission_id": "p1", "enabled": True}]}),
    ("POST", f"/lists/{LIST_ID}/members", {"email_address": "added2@example.com",
                                           "status_if_new": "subscribed"}),
    ("POST", f"/lists/{LIST_ID}/members", {"email_address": "added2@example.com",
                                           "status": "subscribed", "tags": "a"}),
    ("POST", f"/lists/{LIST_ID}/members", {"email_address": "added2@example.com",
                                           "status": "subscribed", "marketing_permissions": [
                                               {"marketing_permission_id": "p1", "enabled": "y"}]}),
]


@pytest.fixture(scope="module")
def exchanges(openapi) -> tuple[list[dict[str, Any]], list[requests.Response]]:
    """The corpus sent to a recording emulator: its records and the answers."""
    with MailchimpEmulator(seed=GDPR_SEED, api_key=KEY, record_requests=True) as emu, \
            ApiSession(emu.base_url) as api:
        answers = [api.request(method, path, json=body) for method, path, body in CORPUS]
        answers += [api.get(member_path("alice@example.com")), api.get(f"/lists/{LIST_ID}"),
                    api.get(f"/lists/{LIST_ID}/merge-fields"),
                    api.get(f"{member_path('alice@example.com')}/events"),
                    api.get(member_path("nobody@example.com")),
                    api.get(member_path("added@example.com"))]
        return emu.requests, answers


def test_accepted_bodies_validate_and_schema_rejected_bodies_are_refused(openapi, exchanges):
    records, _ = exchanges
    accepted = refused = 0
    for record in records[:len(CORPUS)]:
        template = template_of(record["path"])
        errors = list(openapi.request(template, record["method"]).iter_errors(record["body"]))
        label = f"{record['method']} {record['path']} {record['body']!r}"
        if 200 <= record["status"] < 300:
            assert not errors, f"accepted but invalid: {label}: {errors[0].message}"
            accepted += 1
        else:
            assert record["status"] == 400, label
            refused += 1
        if errors:
            assert record["status"] == 400, f"the document rejects it, the emulator took it: {label}"
    # The corpus must exercise both sides, else this test proves nothing.
    assert accepted >= 10 and refused >= 15


def test_batch_subscribe_accepts_only_schema_valid_members(openapi, exchanges):
    records, _ = exchanges
    batch_schema = openapi.request("/3.0/lists/{list_id}", "POST")
    batches = [r for r in records
               if r["method"] == "POST" and template_of(r["path"]) == "/3.0/lists/{list_id}"]
    assert {r["status"] for r in batches} == {200, 400}
    for record in batches:
        assert batch_schema.is_valid(record["body"]) == (record["status"] == 200), record["body"]


def test_answers_match_the_response_schemas(openapi, exchanges):
    records, answers = exchanges
    assert len(records) == len(answers)
    for record, answer in zip(records, answers):
        validator = openapi.response(template_of(record["path"]), record["method"], answer.status_code)
        if validator is None:
            assert answer.status_code == 204 and answer.content == b""
            continue
        errors = list(validator.iter_errors(answer.json()))
        label = f"{record['method']} {record['path']} → {answer.status_code}"
        assert not errors, f"{label}: {errors[0].message}"
