"""Sync config: every mistake rejected at start-up, naming the key."""
from __future__ import annotations

import json

import pytest

from pipeline.config import ConfigError, load_config, parse_config

GOOD = {"name": "n", "audience_id": "a1", "send_events": {"enabled": True}}


def config_with(**changes):
    return {"syncs": [{**GOOD, **changes}]}


def users_with(**send_users):
    return config_with(send_users={"enabled": True, **send_users})


def test_defaults():
    sync = parse_config(config_with()).syncs[0]
    assert (sync.enabled, sync.status_if_new, sync.email_property) == (
        True, "subscribed", "email")
    assert sync.send_events.event_types == ["*"]
    assert sync.send_events.occurred_at == "ingestion"
    assert not sync.send_users.enabled
    assert (sync.send_users.tags, sync.send_users.tags_property,
            sync.send_users.marketing_permissions,
            sync.send_users.merge_field_types) == ([], None, {}, {})
    assert (sync.send_cohorts.enabled, sync.send_cohorts.cohorts,
            sync.send_cohorts.create_members) == (False, ["*"], False)


def test_tags_permissions_and_merge_field_types():
    users = parse_config(users_with(
        properties=["FNAME", "BDAY"], tags=["  app users ", "x" * 100],
        tags_property="plan_tags", marketing_permissions={"a1b2c3": "email_consent"},
        merge_field_types={"BDAY": "birthday"})).syncs[0].send_users
    assert users.tags == ["app users", "x" * 100]  # trimmed
    assert users.tags_property == "plan_tags"
    assert users.marketing_permissions == {"a1b2c3": "email_consent"}
    assert users.merge_field_types == {"BDAY": "birthday"}


def test_a_sync_may_send_cohorts_only_and_selects_them_by_name_or_id():
    everything = parse_config({"syncs": [{
        "name": "n", "audience_id": "a1",
        "send_cohorts": {"enabled": True}}]}).syncs[0].send_cohorts
    assert everything.selects("Power users", "c1")
    chosen = parse_config(config_with(send_cohorts={
        "enabled": True, "cohorts": ["Power users", "c9"],
        "create_members": True})).syncs[0].send_cohorts
    assert chosen.create_members
    assert chosen.selects("Power users", "c1")
    assert chosen.selects("Renamed", "c9")
    assert not chosen.selects("Churned", "c2")
    assert not chosen.selects(None, None)


@pytest.mark.parametrize("config, message", [
    (config_with(colour="blue"), "syncs[0] (n).colour: unknown key"),
    ({"syncs": [{"name": "n", "send_events": {"enabled": True}}]},
     "syncs[0] (n).audience_id: Field required"),
    (config_with(status_if_new="cleaned"), "syncs[0] (n).status_if_new: Input should be"),
    (config_with(send_events={"enabled": True, "filters": [
        {"property": "user_id", "op": "matches", "value": "x"}]}),
     "syncs[0] (n).send_events.filters[0].op: Input should be 'is_set'"),
    (config_with(send_events={"enabled": True, "filters": [
        {"property": "user_id", "op": "equals"}]}), "op 'equals' needs a value"),
    (config_with(send_events={"enabled": True, "filters": [
        {"property": "user_id", "op": "in", "value": "x"}]}),
     "op 'in' needs a non-empty list value"),
    (config_with(send_events={"enabled": True, "filters": [
        {"property": "plan", "op": "is_set"}]}), "unknown property path 'plan'"),
    (config_with(send_events={"enabled": True, "properties": [
        "event_properties.plan", "user_properties.plan"]}),
     "'event_properties.plan' and 'user_properties.plan' would both be sent as 'plan'"),
    (config_with(send_users={"enabled": True, "properties": ["first name"]}),
     "'first name' is not a Mailchimp merge tag"),
    (config_with(send_events={"enabled": False}),
     "enable send_events, send_users or send_cohorts"),
    (users_with(tags=["app-users", "  "]),
     "syncs[0] (n).send_users.tags[1]: a tag name is empty"),
    (users_with(tags=["x" * 101]),
     "send_users.tags[0]: tag 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...' is 101 "
     "characters long; Mailchimp allows at most 100"),
    (users_with(tags=[" vip", "vip "]), "send_users.tags: tag(s) listed twice: vip"),
    (users_with(tags="vip"), "send_users.tags: Input should be a valid list"),
    (users_with(tags_property=" "), "send_users.tags_property: String should have"),
    (users_with(marketing_permissions={"a1b2c3": ""}),
     "send_users.marketing_permissions.a1b2c3: String should have"),
    (users_with(marketing_permissions={"a1b2c3": True}),
     "send_users.marketing_permissions.a1b2c3: text expected, got the boolean"),
    (users_with(properties=["BDAY"], merge_field_types={"BDAY": "calendar"}),
     "send_users.merge_field_types.BDAY: Input should be 'text', 'number'"),
    (users_with(properties=["FNAME"], merge_field_types={"BDAY": "birthday"}),
     "send_users.merge_field_types: BDAY: not in send_users.properties"),
    (users_with(properties=["FNAME"], merge_field_types={"b day": "text"}),
     "'b day' is not a Mailchimp merge tag"),
    (config_with(send_cohorts={"enabled": True, "cohorts": []}),
     "send_cohorts.cohorts: List should have at least 1 item"),
    (config_with(send_cohorts={"enabled": True, "cohorts": [" "]}),
     "send_cohorts.cohorts[0]: String should have at least 1 character"),
    (config_with(send_cohorts={"enabled": True, "create_member": True}),
     "send_cohorts.create_member: unknown key"),
    ({"syncs": [GOOD, GOOD]}, "duplicate sync name(s): n"),
    ({"syncs": [{**GOOD, "enabled": False}]}, "no sync is enabled"),
    ({"syncs": []}, "syncs: List should have at least 1 item"),
])
def test_mistakes_name_the_key(config, message):
    with pytest.raises(ConfigError) as error:
        parse_config(config)
    assert message in str(error.value)


def test_yaml_and_json_files(tmp_path):
    (tmp_path / "s.yaml").write_text(
        "syncs:\n  - name: n\n    audience_id: a1\n"
        "    send_users: {enabled: true, properties: [FNAME]}\n")
    (tmp_path / "s.json").write_text(json.dumps(config_with()))
    assert load_config(str(tmp_path / "s.yaml")).syncs[0].send_users.properties == ["FNAME"]
    assert load_config(str(tmp_path / "s.json")).syncs[0].name == "n"


def test_unreadable_files_say_so(tmp_path):
    with pytest.raises(ConfigError, match="cannot read sync config"):
        load_config(str(tmp_path / "missing.yaml"))
    (tmp_path / "bad.yaml").write_text("syncs: [\n")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_config(str(tmp_path / "bad.yaml"))


def test_a_disabled_sync_stays_in_the_file_but_does_not_run():
    config = parse_config({"syncs": [GOOD, {**GOOD, "name": "off", "enabled": False,
                                            "send_events": {"enabled": False}}]})
    assert [s.name for s in config.syncs] == ["n", "off"]
    assert [s.name for s in config.enabled] == ["n"]
