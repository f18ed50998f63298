"""Sync config: every mistake rejected at start-up, naming the key."""
from __future__ import annotations

import json

import pytest

from pipeline.config import ConfigError, load_config, parse_config

GOOD = {"name": "n", "audience_id": "a1", "send_events": {"enabled": True}}


def config_with(**changes):
    return {"syncs": [{**GOOD, **changes}]}


def test_defaults():
    sync = parse_config(config_with()).syncs[0]
    assert (sync.enabled, sync.status_if_new, sync.email_property) == (
        True, "subscribed", "email")
    assert sync.send_events.event_types == ["*"]
    assert sync.send_events.occurred_at == "ingestion"
    assert not sync.send_users.enabled


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
     "enable send_events or send_users"),
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
