"""The Mailchimp emulator's member tags, marketing permissions (GDPR) and
members list, over real HTTP on loopback."""
from __future__ import annotations

import copy
import datetime
from typing import Any

import pytest
import requests

from pipeline.local.mailchimp_emulator import MailchimpEmulator
from tests.local.test_mailchimp_emulator import (KEY, LIST_ID, SEED, ApiSession,
                                                 assert_problem, error_fields, md5,
                                                 put_member)

ALICE = "alice@example.com"
PERMISSIONS = [{"marketing_permission_id": "p-email", "text": "Email"},
               {"marketing_permission_id": "p-ads", "text": "Customized online advertising"}]


def _seed() -> dict[str, Any]:
    """SEED, its first audience with GDPR permissions and a tagged member."""
    seed = copy.deepcopy(SEED)
    audience = seed["lists"][0]
    audience["marketing_permissions"] = copy.deepcopy(PERMISSIONS)
    audience["members"].append({
        "email_address": "tagged@example.com", "status": "subscribed",
        "tags": ["early", "beta"],
        "marketing_permissions": [{"marketing_permission_id": "p-ads", "enabled": True}]})
    return seed


@pytest.fixture
def emu():
    with MailchimpEmulator(seed=_seed(), api_key=KEY) as emulator:
        yield emulator


@pytest.fixture
def api(emu):
    with ApiSession(emu.base_url) as session:
        yield session


def tags_path(email: str, list_id: str = LIST_ID) -> str:
    return f"/lists/{list_id}/members/{md5(email)}/tags"


def post_tags(api: ApiSession, email: str, *tags: tuple[str, str], **extra: Any) -> requests.Response:
    return api.post(tags_path(email), json={
        "tags": [{"name": name, "status": status} for name, status in tags], **extra})


def names(member: dict[str, Any]) -> list[str]:
    return [tag["name"] for tag in member["tags"]]


# --- tags ----------------------------------------------------------------------

def test_tags_set_active_are_created_and_shown_on_the_member(emu, api):
    response = post_tags(api, ALICE, ("vip", "active"), ("app-users", "active"),
                         is_syncing=True)
    assert response.status_code == 204 and response.content == b""
    member = api.get(f"/lists/{LIST_ID}/members/{md5(ALICE)}").json()
    assert names(member) == ["vip", "app-users"] and member["tags_count"] == 2
    assert all(isinstance(tag["id"], int) for tag in member["tags"])
    assert emu.tags(LIST_ID, ALICE) == ["vip", "app-users"]


def test_get_member_tags_lists_each_with_its_id_and_date_added(api):
    before = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    post_tags(api, ALICE, ("vip", "active"))
    answer = api.get(tags_path(ALICE)).json()
    assert answer["total_items"] == 1
    [tag] = answer["tags"]
    assert tag["name"] == "vip" and isinstance(tag["id"], int)
    assert datetime.datetime.fromisoformat(tag["date_added"]) >= before


def test_a_tag_keeps_its_id_across_members_and_matches_any_case(api):
    post_tags(api, ALICE, ("VIP", "active"))
    put_member(api, "erin@example.com")
    post_tags(api, "erin@example.com", ("vip", "active"))
    alice = api.get(tags_path(ALICE)).json()["tags"]
    erin = api.get(tags_path("erin@example.com")).json()["tags"]
    # The audience's one tag, spelt as it was created.
    assert [(t["id"], t["name"]) for t in alice] == [(t["id"], t["name"]) for t in erin]
    assert erin[0]["name"] == "VIP"


def test_inactive_removes_a_tag_and_an_unknown_inactive_tag_changes_nothing(emu, api):
    post_tags(api, "tagged@example.com", ("early", "inactive"), ("never-seen", "inactive"))
    assert emu.tags(LIST_ID, "tagged@example.com") == ["beta"]
    assert post_tags(api, ALICE, ("never-seen", "inactive")).status_code == 204
    assert emu.tags(LIST_ID, ALICE) == []


def test_setting_an_active_tag_again_keeps_it_once_with_its_first_date(api):
    post_tags(api, ALICE, ("vip", "active"))
    first = api.get(tags_path(ALICE)).json()["tags"]
    post_tags(api, ALICE, ("vip", "active"), ("VIP", "active"))
    assert api.get(tags_path(ALICE)).json()["tags"] == first


def test_tags_of_an_unknown_member_or_audience_are_404(api):
    for path in (tags_path("nobody@example.com"), tags_path(ALICE, "unknown")):
        assert_problem(api.post(path, json={"tags": [{"name": "vip", "status": "active"}]}),
                       404, "Resource Not Found")
        assert_problem(api.get(path), 404, "Resource Not Found")


def test_the_address_itself_may_stand_for_the_hash(emu, api):
    response = api.post(f"/lists/{LIST_ID}/members/Alice@Example.com/tags",
                        json={"tags": [{"name": "vip", "status": "active"}]})
    assert response.status_code == 204
    assert emu.tags(LIST_ID, ALICE) == ["vip"]


@pytest.mark.parametrize("name, message", [
    ("x" * 101, "Tag names must be at most 100 characters long"),
    ("   ", "Tag names must not be blank"),
])
def test_a_bad_tag_name_is_invalid_resource_and_changes_nothing(emu, api, name, message):
    response = post_tags(api, ALICE, ("fine", "active"), (name, "active"))
    problem = assert_problem(response, 400, "Invalid Resource")
    assert problem["errors"] == [{"field": "tags[1].name", "message": message}]
    assert emu.tags(LIST_ID, ALICE) == []


def test_a_tag_name_of_100_characters_is_taken(emu, api):
    assert post_tags(api, ALICE, ("x" * 100, "active")).status_code == 204
    assert emu.tags(LIST_ID, ALICE) == ["x" * 100]


@pytest.mark.parametrize("body, fields", [
    ({}, ["tags"]),
    ({"tags": [{"name": "vip"}]}, ["tags[0].status"]),
    ({"tags": [{"name": "vip", "status": "on"}]}, ["tags[0].status"]),
    ({"tags": ["vip"]}, ["tags[0]"]),
    ({"tags": [{"name": "vip", "status": "active"}], "is_syncing": "yes"}, ["is_syncing"]),
])
def test_a_tags_body_the_document_refuses_is_invalid_resource(api, body, fields):
    response = api.post(tags_path(ALICE), json=body)
    assert_problem(response, 400, "Invalid Resource")
    assert error_fields(response) == fields


def test_get_member_shows_50_tags_and_counts_them_all(emu, api):
    post_tags(api, ALICE, *[(f"t{i:02d}", "active") for i in range(60)])
    member = api.get(f"/lists/{LIST_ID}/members/{md5(ALICE)}").json()
    assert len(member["tags"]) == 50 and member["tags_count"] == 60
    page = api.get(tags_path(ALICE), params={"count": 20, "offset": 50}).json()
    assert [t["name"] for t in page["tags"]] == [f"t{i}" for i in range(50, 60)]
    assert page["total_items"] == 60
    assert len(emu.tags(LIST_ID, ALICE)) == 60


def test_seed_members_carry_their_tags(api):
    member = api.get(f"/lists/{LIST_ID}/members/{md5('tagged@example.com')}").json()
    assert names(member) == ["early", "beta"] and member["tags_count"] == 2


def test_the_state_shows_every_tag(emu, api):
    post_tags(api, ALICE, *[(f"t{i:02d}", "active") for i in range(55)])
    state = requests.get(emu.base_url.removesuffix("/3.0") + "/_emulator/state", timeout=5).json()
    member = state["lists"][LIST_ID]["members"][md5(ALICE)]
    assert len(member["tags"]) == 55 and member["tags_count"] == 55


def test_batch_subscribe_makes_members_tags_active(emu, api):
    response = api.post(f"/lists/{LIST_ID}", json={"update_existing": True, "members": [
        {"email_address": "new@example.com", "status_if_new": "subscribed", "tags": ["a", "b"]},
        {"email_address": "tagged@example.com", "status_if_new": "subscribed", "tags": ["c"]},
    ]})
    answer = response.json()
    assert answer["total_created"] == 1 and answer["total_updated"] == 1
    assert names(answer["new_members"][0]) == ["a", "b"]
    assert emu.tags(LIST_ID, "new@example.com") == ["a", "b"]
    assert emu.tags(LIST_ID, "tagged@example.com") == ["early", "beta", "c"]


def test_batch_subscribe_with_sync_tags_replaces_the_tags_it_names(emu, api):
    api.post(f"/lists/{LIST_ID}", json={"update_existing": True, "sync_tags": True, "members": [
        {"email_address": "tagged@example.com", "status_if_new": "subscribed",
         "tags": ["beta", "c"]},
        {"email_address": ALICE, "status_if_new": "subscribed"},  # no tags: left alone
    ]})
    assert emu.tags(LIST_ID, "tagged@example.com") == ["beta", "c"]
    post_tags(api, ALICE, ("kept", "active"))
    api.post(f"/lists/{LIST_ID}", json={"update_existing": True, "sync_tags": True, "members": [
        {"email_address": ALICE, "status_if_new": "subscribed"}]})
    assert emu.tags(LIST_ID, ALICE) == ["kept"]


def test_a_batch_member_with_a_bad_tag_name_fails_alone(emu, api):
    answer = api.post(f"/lists/{LIST_ID}", json={"members": [
        {"email_address": "ok@example.com", "status_if_new": "subscribed", "tags": ["fine"]},
        {"email_address": "long@example.com", "status_if_new": "subscribed",
         "tags": ["y" * 101]},
    ]}).json()
    assert answer["total_created"] == 1 and answer["error_count"] == 1
    [error] = answer["errors"]
    assert error["email_address"] == "long@example.com" and error["field"] == "tags[0]"
    assert error["error_code"] == "ERROR_GENERIC"
    assert emu.member(LIST_ID, "long@example.com") is None


def test_put_member_ignores_tags_as_the_document_has_none(emu, api):
    response = put_member(api, ALICE, tags=["ignored"])
    assert response.status_code == 200 and response.json()["tags"] == []
    assert emu.tags(LIST_ID, ALICE) == []


def test_add_member_takes_tags_and_refuses_an_existing_member(emu, api):
    response = api.post(f"/lists/{LIST_ID}/members", json={
        "email_address": "added@example.com", "status": "pending", "tags": ["signup"]})
    assert response.status_code == 200
    assert response.json()["status"] == "pending" and names(response.json()) == ["signup"]
    again = api.post(f"/lists/{LIST_ID}/members", json={
        "email_address": "Added@example.com", "status": "subscribed"})
    assert_problem(again, 400, "Member Exists")
    assert emu.member(LIST_ID, "added@example.com")["status"] == "pending"


# --- marketing permissions -----------------------------------------------------

def test_list_info_says_whether_the_audience_has_marketing_permissions(api):
    assert api.get(f"/lists/{LIST_ID}").json()["marketing_permissions"] is True
    assert api.get("/lists/f6e5d4c3b2").json()["marketing_permissions"] is False


def test_members_show_every_permission_of_their_audience_disabled_by_default(api):
    member = api.get(f"/lists/{LIST_ID}/members/{md5(ALICE)}").json()
    assert member["marketing_permissions"] == [
        {"marketing_permission_id": "p-email", "text": "Email", "enabled": False},
        {"marketing_permission_id": "p-ads", "text": "Customized online advertising",
         "enabled": False}]
    seeded = api.get(f"/lists/{LIST_ID}/members/{md5('tagged@example.com')}").json()
    assert [p["enabled"] for p in seeded["marketing_permissions"]] == [False, True]


def test_members_of_an_audience_without_permissions_show_none(api):
    member = api.get(f"/lists/f6e5d4c3b2/members/{md5('dave@example.com')}").json()
    assert "marketing_permissions" not in member


def _enabled(api: ApiSession, email: str) -> dict[str, bool]:
    member = api.get(f"/lists/{LIST_ID}/members/{md5(email)}").json()
    return {p["marketing_permission_id"]: p["enabled"] for p in member["marketing_permissions"]}


def test_put_and_patch_set_consents(api):
    response = put_member(api, "new@example.com", marketing_permissions=[
        {"marketing_permission_id": "p-email", "enabled": True}])
    assert response.status_code == 200
    assert _enabled(api, "new@example.com") == {"p-email": True, "p-ads": False}
    put_member(api, "new@example.com", marketing_permissions=[
        {"marketing_permission_id": "p-ads", "enabled": True}])
    assert _enabled(api, "new@example.com") == {"p-email": True, "p-ads": True}
    response = api.patch(f"/lists/{LIST_ID}/members/{md5('new@example.com')}", json={
        "marketing_permissions": [{"marketing_permission_id": "p-email", "enabled": False}]})
    assert response.status_code == 200
    assert _enabled(api, "new@example.com") == {"p-email": False, "p-ads": True}


def test_add_member_sets_consents(api):
    api.post(f"/lists/{LIST_ID}/members", json={
        "email_address": "added@example.com", "status": "subscribed",
        "marketing_permissions": [{"marketing_permission_id": "p-ads", "enabled": True}]})
    assert _enabled(api, "added@example.com") == {"p-email": False, "p-ads": True}


@pytest.mark.parametrize("method", ["PUT", "PATCH", "POST"])
def test_an_unknown_permission_id_is_invalid_resource_naming_it(emu, api, method):
    body = {"email_address": ALICE, "status": "subscribed", "merge_fields": {"FNAME": "Changed"},
            "marketing_permissions": [{"marketing_permission_id": "p-email", "enabled": True},
                                      {"marketing_permission_id": "nope42", "enabled": True}]}
    path = f"/lists/{LIST_ID}/members" + ("" if method == "POST" else f"/{md5(ALICE)}")
    if method == "POST":
        body["email_address"] = "brand-new@example.com"
    response = api.request(method, path, json=body)
    problem = assert_problem(response, 400, "Invalid Resource")
    assert "nope42" in problem["detail"]
    assert error_fields(response) == ["marketing_permissions[1].marketing_permission_id"]
    # Nothing changed.
    assert emu.member(LIST_ID, ALICE)["merge_fields"]["FNAME"] == "Alice"
    assert _enabled(api, ALICE) == {"p-email": False, "p-ads": False}
    assert emu.member(LIST_ID, "brand-new@example.com") is None


def test_an_audience_without_permissions_refuses_any_id(api):
    response = put_member(api, "dave@example.com", list_id="f6e5d4c3b2", marketing_permissions=[
        {"marketing_permission_id": "p-email", "enabled": True}])
    assert "p-email" in assert_problem(response, 400, "Invalid Resource")["detail"]


def test_batch_subscribe_ignores_marketing_permissions_as_the_document_has_none(api):
    answer = api.post(f"/lists/{LIST_ID}", json={"members": [
        {"email_address": "new@example.com", "status_if_new": "subscribed",
         "marketing_permissions": [{"marketing_permission_id": "p-email", "enabled": True}]},
    ]}).json()
    assert answer["total_created"] == 1 and answer["error_count"] == 0
    assert _enabled(api, "new@example.com") == {"p-email": False, "p-ads": False}


# --- the members list and sparse answers ---------------------------------------

def test_members_list_paginates_in_order_added(api):
    for i in range(12):
        put_member(api, f"m{i:02d}@example.com")
    first = api.get(f"/lists/{LIST_ID}/members").json()
    later = api.get(f"/lists/{LIST_ID}/members", params={"count": 10, "offset": 10}).json()
    assert first["list_id"] == LIST_ID and first["total_items"] == 16
    emails = [m["email_address"] for m in first["members"] + later["members"]]
    assert emails[:4] == ["Alice@Example.com", "bob@example.com", "carol@example.com",
                          "tagged@example.com"]
    assert emails[4:] == [f"m{i:02d}@example.com" for i in range(12)]
    assert_problem(api.get(f"/lists/{LIST_ID}/members", params={"count": 1001}),
                   400, "Invalid Resource")
    assert_problem(api.get("/lists/unknown/members"), 404, "Resource Not Found")


def test_fields_find_an_audiences_permission_ids_from_one_member(api):
    answer = api.get(f"/lists/{LIST_ID}/members", params={
        "count": 1, "fields": "members.marketing_permissions.marketing_permission_id"}).json()
    assert answer == {"members": [{"marketing_permissions": [
        {"marketing_permission_id": "p-email"}, {"marketing_permission_id": "p-ads"}]}]}


def test_fields_and_exclude_fields_narrow_get_answers(api):
    path = f"/lists/{LIST_ID}/members/{md5(ALICE)}"
    assert api.get(path, params={"fields": "email_address, status"}).json() == {
        "email_address": "Alice@Example.com", "status": "subscribed"}
    member = api.get(path, params={"exclude_fields": "merge_fields,tags,_links"}).json()
    assert "merge_fields" not in member and "tags" not in member
    assert member["email_address"] == "Alice@Example.com" and "tags_count" in member
    page = api.get(f"/lists/{LIST_ID}/members", params={
        "fields": "total_items,members.email_address", "count": 2}).json()
    assert page == {"members": [{"email_address": "Alice@Example.com"},
                                {"email_address": "bob@example.com"}], "total_items": 4}


def test_a_seed_with_an_unknown_or_repeated_permission_is_refused():
    seed = _seed()
    seed["lists"][0]["members"][0]["marketing_permissions"] = [
        {"marketing_permission_id": "p-zzz", "enabled": True}]
    with pytest.raises(ValueError, match=f"seed list {LIST_ID}: .*p-zzz"):
        MailchimpEmulator(seed=seed, api_key=KEY)
    seed = _seed()
    seed["lists"][0]["marketing_permissions"].append(PERMISSIONS[0])
    with pytest.raises(ValueError, match="p-email is defined twice"):
        MailchimpEmulator(seed=seed, api_key=KEY)
    seed = _seed()
    seed["lists"][0]["members"][0]["tags"] = ["z" * 101]
    with pytest.raises(ValueError, match="at most 100 characters"):
        MailchimpEmulator(seed=seed, api_key=KEY)
