"""Amplitude cohort messages -> a tag named after the cohort, active while
the user is in it: `python -m pipeline` on a file, the real FnApiRunner,
real HTTP to the emulator."""
from __future__ import annotations

from tests.helpers import AUDIENCE, read_outputs, run_sync

COHORTS = {"name": "cohorts", "audience_id": AUDIENCE, "email_property": "user_id",
           "send_cohorts": {"enabled": True, "cohorts": ["Power users", "c-42"]}}


def _message(message_id: str, in_cohort: bool, *users: str,
             name: str = "Power users", cohort_id: str = "c-1") -> dict:
    return {"cohort_name": name, "cohort_id": cohort_id, "in_cohort": in_cohort,
            "computed_time": "1700000000", "message_id": message_id,
            "users": [{"user_id": u} for u in users]}


def _tag_calls(emulator) -> list[tuple[str, str, str]]:
    return [(r["path"].split("/")[-2], t["name"], t["status"])
            for r in emulator.requests if r["path"].endswith("/tags")
            for t in r["body"]["tags"]]


def test_entering_makes_the_tag_active_and_a_stranger_is_skipped(
        emulator, tmp_path, monkeypatch):
    summary, out = run_sync(emulator, tmp_path, monkeypatch, [COHORTS], [
        _message("m1", True, "existing@example.com", "stranger@example.com", "")])
    assert emulator.tags(AUDIENCE, "existing@example.com") == ["Power users"]
    assert emulator.member(AUDIENCE, "stranger@example.com") is None
    assert summary["records_in"] == 1  # one message, one outcome per user
    assert summary["cohorts"]["delivered"] == 1
    assert summary["cohorts"]["skipped"] == {"member_not_found": 1, "anonymous": 1}
    skipped = read_outputs(out, "skipped_members")
    assert {(s["kind"], s["reason"]) for s in skipped} == {
        ("cohort", "member_not_found"), ("cohort", "anonymous")}


def test_leaving_makes_it_inactive_and_a_duplicate_message_is_dropped(
        emulator, tmp_path, monkeypatch):
    summary, _ = run_sync(emulator, tmp_path, monkeypatch, [COHORTS], [
        _message("m1", True, "existing@example.com"),
        _message("m1", True, "existing@example.com"),  # redelivered
        _message("m2", False, "existing@example.com", cohort_id="c-42",
                 name="Power users")])
    assert summary["duplicates"] == 1
    calls = _tag_calls(emulator)
    assert [status for *_, status in calls] == ["active", "inactive"]
    assert emulator.tags(AUDIENCE, "existing@example.com") == []


def test_create_members_creates_users_not_in_the_audience(
        emulator, tmp_path, monkeypatch):
    sync = {**COHORTS, "status_if_new": "pending",
            "send_cohorts": {"enabled": True, "create_members": True}}
    summary, _ = run_sync(emulator, tmp_path, monkeypatch, [sync], [
        _message("m1", True, "stranger@example.com", "gone@example.com",
                 name="Trial")])
    stranger = emulator.member(AUDIENCE, "stranger@example.com")
    assert stranger["status"] == "pending"
    assert emulator.tags(AUDIENCE, "stranger@example.com") == ["Trial"]
    assert emulator.member(AUDIENCE, "gone@example.com")["status"] == "unsubscribed"
    assert summary["cohorts"]["delivered"] == 2
    assert summary["members"]["upserted"] == 2


def test_cohorts_a_sync_does_not_name_are_not_selected(emulator, tmp_path, monkeypatch):
    summary, _ = run_sync(emulator, tmp_path, monkeypatch, [COHORTS], [
        _message("m1", True, "existing@example.com", name="Churned", cohort_id="c-9")])
    assert summary["cohorts"]["skipped"] == {"not_selected": 1}
    assert _tag_calls(emulator) == []


def test_the_email_can_come_from_the_users_properties(emulator, tmp_path, monkeypatch):
    sync = {**COHORTS, "email_property": "email"}
    message = _message("m1", True)
    message["users"] = [{"user_id": "u1",
                         "user_properties": {"email": "existing@example.com"}}]
    run_sync(emulator, tmp_path, monkeypatch, [sync], [message])
    assert emulator.tags(AUDIENCE, "existing@example.com") == ["Power users"]


def test_a_cohort_message_is_no_event_and_no_users_record(emulator, tmp_path, monkeypatch):
    """A sync that also sends events and users skips the message for both
    as not selected: its counts still add up to the records read."""
    sync = {**COHORTS, "send_events": {"enabled": True},
            "send_users": {"enabled": True}}
    summary, _ = run_sync(emulator, tmp_path, monkeypatch, [sync], [
        _message("m1", True, "existing@example.com")])
    assert summary["events"]["skipped"] == {"not_selected": 1}
    assert summary["members"]["skipped"] == {"not_selected": 1}
    assert summary["members"]["upserted"] == 0
    assert summary["cohorts"]["delivered"] == 1


def test_a_message_of_several_hundred_users_is_one_record_and_an_outcome_each(
        emulator, tmp_path, monkeypatch):
    sync = {**COHORTS, "send_cohorts": {"enabled": True, "create_members": True}}
    users = [f"user{n}@example.com" for n in range(300)]
    summary, _ = run_sync(emulator, tmp_path, monkeypatch, [sync], [
        _message("m1", True, *users)])
    assert summary["records_in"] == 1
    assert summary["cohorts"]["delivered"] == 300
    assert all(emulator.tags(AUDIENCE, u) == ["Power users"] for u in users)


def test_the_final_summary_names_the_cohort_users(emulator, tmp_path, monkeypatch, capsys):
    run_sync(emulator, tmp_path, monkeypatch, [COHORTS], [
        _message("m1", True, "existing@example.com", "stranger@example.com")])
    out = capsys.readouterr().out
    assert "cohort users tagged    1" in out
    assert "cohort users skipped   1 (member_not_found 1)" in out
