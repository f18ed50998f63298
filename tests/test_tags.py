"""send_users' tags and marketing permissions, end to end: `python -m
pipeline` on a file, the real FnApiRunner, real HTTP to the emulator."""
from __future__ import annotations

from tests.helpers import AUDIENCE, GDPR_ADS, GDPR_EMAIL, read_outputs, run_sync

USERS = {"name": "users", "audience_id": AUDIENCE, "email_property": "email",
         "send_users": {"enabled": True, "properties": ["FNAME"],
                        "tags": ["app-users"], "tags_property": "plan_tags"}}


def _user(email: str, **properties) -> dict:
    return {"user_id": email, "event_type": "signed_in",
            "insert_id": f"{email}-{sorted(properties.items())}",
            "user_properties": {"email": email, **properties}}


def test_static_tags_and_tags_from_a_property(emulator, tmp_path, monkeypatch):
    summary, out = run_sync(emulator, tmp_path, monkeypatch, [USERS], [
        _user("one@example.com", plan_tags="  pro  "),
        _user("two@example.com", plan_tags=["beta", "pro", "", "x" * 101]),
        _user("two@example.com", plan_tags="vip"),  # a later record adds one
        _user("three@example.com")])
    assert emulator.tags(AUDIENCE, "one@example.com") == ["app-users", "pro"]
    assert sorted(emulator.tags(AUDIENCE, "two@example.com")) == [
        "app-users", "beta", "pro", "vip"]
    assert emulator.tags(AUDIENCE, "three@example.com") == ["app-users"]
    tag_calls = [r for r in emulator.requests if r["path"].endswith("/tags")]
    assert len(tag_calls) == 3  # one a member, after its upsert
    assert all(t["status"] == "active" for r in tag_calls for t in r["body"]["tags"])
    skipped = read_outputs(out, "skipped_values")
    assert sorted(s["reason"] for s in skipped) == ["empty", "too_long"]
    assert summary["skipped_values"] == {"tag.empty": 1, "tag.too_long": 1}
    assert summary["members"]["upserted"] == 4


def test_no_tags_configured_means_no_tag_calls(emulator, tmp_path, monkeypatch):
    sync = {**USERS, "send_users": {"enabled": True, "properties": ["FNAME"]}}
    run_sync(emulator, tmp_path, monkeypatch, [sync], [_user("one@example.com", plan_tags="pro")])
    assert not [r for r in emulator.requests if r["path"].endswith("/tags")]
    assert emulator.tags(AUDIENCE, "one@example.com") == []


def test_marketing_permissions_are_sent_only_where_configured(
        gdpr_emulator, tmp_path, monkeypatch):
    sync = {**USERS, "send_users": {"enabled": True, "properties": ["FNAME"],
                                    "marketing_permissions": {GDPR_EMAIL: "email_consent"}}}
    summary, out = run_sync(gdpr_emulator, tmp_path, monkeypatch, [sync], [
        _user("yes@example.com", email_consent=True, ads_consent=True),
        _user("no@example.com", email_consent="false"),
        _user("unsaid@example.com"),
        _user("odd@example.com", email_consent="maybe")])

    def enabled(email):
        member = gdpr_emulator.member(AUDIENCE, email)
        return {p["marketing_permission_id"]: p["enabled"]
                for p in member["marketing_permissions"]}

    assert enabled("yes@example.com") == {GDPR_EMAIL: True, GDPR_ADS: False}
    assert enabled("no@example.com") == {GDPR_EMAIL: False, GDPR_ADS: False}
    sent = [r["body"] for r in gdpr_emulator.requests if r["method"] == "PUT"]
    assert sorted(b["email_address"] for b in sent) == ["no@example.com", "yes@example.com"]
    assert all(p["marketing_permission_id"] == GDPR_EMAIL
               for b in sent for p in b["marketing_permissions"])
    subscribed = [m for r in gdpr_emulator.requests if r["method"] == "POST"
                  and r["path"] == f"/3.0/lists/{AUDIENCE}" for m in r["body"]["members"]]
    assert {m["email_address"] for m in subscribed} == {"unsaid@example.com",
                                                        "odd@example.com"}
    assert all("marketing_permissions" not in m for m in subscribed)
    assert summary["skipped_values"] == {"marketing_permission.not_boolean": 1}
    assert summary["members"]["upserted"] == 4


def test_the_final_summary_names_the_tags_not_sent(emulator, tmp_path, monkeypatch, capsys):
    run_sync(emulator, tmp_path, monkeypatch, [USERS], [_user("one@example.com", plan_tags="")])
    assert "tags, permissions not sent tag.empty 1" in capsys.readouterr().out
