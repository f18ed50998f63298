"""Property-based tests (hypothesis) of the product's rules: parsing, email
normalisation and hashing, property stringification, event names, merge
field conversion, and what the rule functions make of messy Amplitude
events: a request Mailchimp's OpenAPI document accepts, or a skip with a
documented reason."""
from __future__ import annotations

import datetime
import hashlib
import json
import math
import re

from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from pipeline.local.mailchimp.merge_fields import MergeField
from transforms.identity import (_drop_anonymous, _map_email, normalise_email,
                                 subscriber_hash)
from transforms.mailchimp.merge_fields import Unconvertible, convert, prepare
from transforms.parse import MAX_DEPTH, parse_payload
from transforms.plan import NOT_SELECTED, plan
from transforms.project import _project, event_name, stringify
from transforms.records import (Action, DeadLetter, MemberEvent, MemberUpsert,
                                Record, Skipped)
from transforms.sync import Sync
from tests.helpers import request_schema_validator

FAST = settings(max_examples=250, deadline=None)
WITH_FIXTURE = settings(max_examples=250, deadline=None,
                        suppress_health_check=[HealthCheck.function_scoped_fixture])

# MISSION.md's skip reasons a rule step may give, and the counted-only one.
RULE_SKIPS = {"anonymous", "no_email", "invalid_email", "invalid_event_name",
              NOT_SELECTED}
PARSE_DEAD = {"malformed_json", "unrecognised_record"}
EVENTS_PATH = "/3.0/lists/{list_id}/members/{subscriber_hash}/events"
MEMBER_PATH = "/3.0/lists/{list_id}/members/{subscriber_hash}"
_EVENT_NAME = re.compile(r"[A-Za-z0-9_-]{2,30}")
_HEX32 = re.compile(r"[0-9a-f]{32}")
_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")

# ----------------------------------------------------------------- strategies
# Text as JSON can carry it: any code point, lone surrogates ("\ud800") too.
any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=40)
messy_text = st.one_of(
    any_text, st.sampled_from(["", " ", "\t\n", "\u3000", "NaN", "1e999", "-0",
                               "12.50", "2024-02-29", "3/7", "http://x.y",
                               "HTTPS://Example.com/a", "02134", "12345-6789",
                               "free", "pro", "\ud800", "a" * 300]))
numbers = st.one_of(
    st.integers(), st.integers(min_value=-10**30, max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True))
scalars = st.one_of(st.none(), st.booleans(), numbers, messy_text)
AMPLITUDE_KEYS = ["event_type", "user_id", "device_id", "time", "insert_id",
                  "$insert_id", "event_time", "event_properties",
                  "user_properties", "events", "identification", "api_key",
                  "$set", "$setOnce", "$unset", "$add", "email", "platform"]
keys = st.one_of(st.sampled_from(AMPLITUDE_KEYS), any_text)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(keys, inner, max_size=4)),
    max_leaves=20)
finite_json = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(),
              st.floats(allow_nan=False, allow_infinity=False), any_text),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(any_text, inner, max_size=4)),
    max_leaves=20)


def nested(depth: int, leaf="x"):
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


# The values of Amplitude events' fields, plausible and not.
emails = st.one_of(
    st.emails(), st.emails().map(lambda e: f"  {e.upper()}\t"),
    st.sampled_from(["ada@example.com", "Ada@Example.COM", "a@b", "a@@b.com",
                     ".a@b.com", "a.@b.com", "a@b.com.", "jösé@example.com",
                     "a b@example.com", "", "   ", "x" * 300 + "@example.com"]),
    scalars, st.lists(st.emails(), max_size=2))
event_types = st.one_of(
    st.sampled_from(["purchase", "page viewed", "  signed   up ", "$identify",
                     "a", "ab", "x" * 30, "x" * 31, "sign.up", "café", "🎉",
                     "   ", ""]),
    any_text, st.from_regex(r"[A-Za-z0-9_ -]{0,35}", fullmatch=True))
tag_values = st.one_of(
    scalars, st.dictionaries(st.sampled_from(
        ["addr1", "addr2", "city", "state", "zip", "country"]), scalars, max_size=6),
    st.lists(scalars, max_size=3))
TAGS = ["FNAME", "SCORE", "SIGNUP", "BDAY", "ADDR", "ZIP", "PLAN", "SITE", "PHONE",
        "COMPANY"]
merge_values = st.fixed_dictionaries({}, optional={tag: tag_values for tag in TAGS})
with_email = st.builds(lambda email, props: {"email": email, **props},
                       emails, merge_values)
user_properties = st.one_of(
    with_email, with_email,
    st.fixed_dictionaries({}, optional={
        "$set": with_email,
        "$setOnce": st.dictionaries(st.sampled_from(TAGS), tag_values, max_size=3),
        "$unset": st.one_of(st.lists(st.sampled_from(TAGS), max_size=3),
                            st.dictionaries(st.sampled_from(TAGS), scalars,
                                            max_size=3)),
        "$add": st.dictionaries(any_text, numbers, max_size=2)}),
    st.none(), st.dictionaries(keys, json_values, max_size=3))
user_ids = st.one_of(
    st.emails(), st.emails().map(lambda e: f" {e.swapcase()} "),
    st.sampled_from(["user-1", "", "   ", "Ada@Example.COM", "a@b"]),
    st.text(max_size=10), st.none())
# Plausible-but-messy events: the types Amplitude documents, messy values.
amplitude_events = st.fixed_dictionaries(
    {"event_type": event_types, "user_id": user_ids,
     "user_properties": user_properties},
    optional={
        "device_id": st.one_of(st.text(max_size=10), st.none()),
        "time": st.one_of(st.integers(min_value=0, max_value=4_102_444_800_000),
                          st.integers(min_value=-2**63, max_value=2**63),
                          st.none()),
        "event_time": st.sampled_from(
            ["2015-08-10 12:00:00.000000", "2015-08-10 12:00:00"]),
        "insert_id": st.one_of(st.text(max_size=8), st.none()),
        "event_properties": st.one_of(
            st.dictionaries(st.sampled_from(["plan", "amount", "obj", "x"]),
                            json_values, max_size=4), st.none()),
        "platform": json_values,
    })
# ... some tidier, so that plenty reach Mailchimp as events ...
tidy_events = st.builds(
    lambda base, event_type, user_id, email: {
        **base, "event_type": event_type, "user_id": user_id,
        "user_properties": {**base["user_properties"], "email": email}
        if isinstance(base["user_properties"], dict) else {"email": email}},
    amplitude_events, st.from_regex(r"[A-Za-z][A-Za-z0-9_ -]{1,29}", fullmatch=True),
    st.emails(), st.emails())
FIELDS = ["event_type", "user_id", "device_id", "time", "event_time", "insert_id",
          "event_properties", "user_properties"]
# ... and some with one field of any type at all.
wrong_typed_events = st.builds(lambda base, field, value: {**base, field: value},
                               amplitude_events, st.sampled_from(FIELDS), json_values)
payloads = st.one_of(
    amplitude_events, amplitude_events, tidy_events, wrong_typed_events,
    st.builds(lambda events, key: {"api_key": key, "events": events},
              st.lists(st.one_of(amplitude_events, scalars), max_size=3),
              st.text(max_size=8)),
    st.builds(lambda items: {"identification": items}, st.one_of(
        st.lists(st.one_of(st.fixed_dictionaries({}, optional={
            "user_id": user_ids, "user_properties": user_properties}), scalars),
            max_size=3),
        scalars)))

SYNCS = [
    Sync.model_validate({
        "name": "both", "audience_id": "aud1", "email_property": "email",
        "send_events": {"enabled": True, "properties": [
            "event_properties.plan", "event_properties.amount",
            "event_properties.obj", "platform", "user_properties.email",
            "insert_id", "time"], "occurred_at": "event_time"},
        "send_users": {"enabled": True, "properties": TAGS}}),
    Sync.model_validate({
        "name": "by_user_id", "audience_id": "aud2", "email_property": "user_id",
        "status_if_new": "pending",
        "send_events": {"enabled": True, "event_types": ["purchase", "page viewed"],
                        "filters": [{"property": "event_properties.amount",
                                     "op": "greater_than", "value": 1}],
                        "is_syncing": True},
        "send_users": {"enabled": True, "properties": ["FNAME"]}}),
]
FIELD_TYPES = ["text", "number", "address", "phone", "date", "url", "imageurl",
               "radio", "dropdown", "birthday", "zip"]
_pad = st.sampled_from(["", " ", "\t", "\n"])
_digits = st.characters(categories=["Nd"])  # any script's digits
_near = {  # values close to what each type takes, where converters slip
    "number": st.from_regex(r"\s?[+-]?\d{0,4}(\.\d{0,3})?(e[+-]?\d{1,4})?\s?",
                            fullmatch=True),
    "date": st.from_regex(r"\d{1,4}[-/]\d{1,2}[-/]\d{1,4}([T ]\d\d:\d\d(:\d\d)?)?",
                          fullmatch=True),
    "birthday": st.from_regex(r"\d{1,2}/\d{1,2}", fullmatch=True),
    "zip": st.one_of(st.from_regex(r"[0-9]{4,6}(-[0-9]{3,5})?", fullmatch=True),
                     st.from_regex(r"[0-9]{5}-[0-9]{4}", fullmatch=True),
                     st.text(_digits, min_size=5, max_size=5)),
    "url": st.from_regex(r"(?i)(https?|ftp)://\S{0,12}", fullmatch=True),
    "address": st.fixed_dictionaries(
        {k: st.one_of(st.text(max_size=6), st.integers(), scalars)
         for k in ("addr1", "city", "state", "zip")},
        optional={"addr2": scalars, "country": scalars}),
}
_near["imageurl"] = _near["url"]
typed_values = st.sampled_from(FIELD_TYPES).flatmap(lambda kind: st.tuples(
    st.just(kind), st.one_of(
        tag_values,
        st.tuples(_pad, _near.get(kind, messy_text), _pad).map(
            lambda t: t[0] + t[1] + t[2] if isinstance(t[1], str) else t[1]))))
CATALOG = {
    "FNAME": {"tag": "FNAME", "type": "text"},
    "SCORE": {"tag": "SCORE", "type": "number"},
    "SIGNUP": {"tag": "SIGNUP", "type": "date"},
    "BDAY": {"tag": "BDAY", "type": "birthday"},
    "ADDR": {"tag": "ADDR", "type": "address"},
    "ZIP": {"tag": "ZIP", "type": "zip"},
    "PLAN": {"tag": "PLAN", "type": "dropdown",
             "options": {"choices": ["free", "pro"]}},
    "SITE": {"tag": "SITE", "type": "url"},
    "PHONE": {"tag": "PHONE", "type": "phone"},
}

_validators: dict = {}


def validator(openapi: dict, path: str, method: str):
    """One JSON Schema validator per operation, built once."""
    if (path, method) not in _validators:
        _validators[path, method] = request_schema_validator(openapi, path, method)
    return _validators[path, method]


# ---------------------------------------------------------------- parse


def check_parsed(results: list) -> None:
    assert results, "every payload ends somewhere"
    for result in results:
        if isinstance(result, DeadLetter):
            assert result.stage == "parse" and result.reason in PARSE_DEAD
            assert isinstance(result.error, str) and result.error.strip()
            assert isinstance(result.payload, str)
            json.dumps(result.payload)  # writable as a dead-letter line
        else:
            assert isinstance(result, Record)
            assert isinstance(result.event_type, str) and result.event_type
            assert result.user_id is None or (
                isinstance(result.user_id, str) and result.user_id == result.user_id.strip()
                and result.user_id)
            assert result.time_ms is None or type(result.time_ms) is int
            assert result.insert_id is None or isinstance(result.insert_id, str)
            assert isinstance(result.event_properties, dict)
            assert isinstance(result.user_properties, dict)
            assert all(isinstance(name, str) for name in result.unset)
            assert isinstance(result.payload, str) and result.payload


@FAST
@given(st.text(st.characters(codec=None, exclude_categories=())))
def test_parse_never_raises_on_any_text(text):
    check_parsed(list(parse_payload(text)))


@FAST
@given(st.binary())
def test_parse_never_raises_on_any_bytes(raw):
    results = list(parse_payload(raw))
    check_parsed(results)
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        [dead] = results
        assert (dead.reason, dead.error[:13]) == ("malformed_json", "invalid UTF-8")


def _is_json(text: str) -> bool:
    def refuse(constant):
        raise ValueError(constant)
    try:
        json.loads(text, parse_constant=refuse)
    except ValueError:
        return False
    return True


@FAST
@given(st.one_of(json_values, payloads))
def test_parse_never_raises_on_any_json_value(value):
    text = json.dumps(value)
    results = list(parse_payload(text))
    check_parsed(results)
    if not _is_json(text):  # json.dumps wrote Infinity or NaN somewhere
        [dead] = results
        assert dead.reason == "malformed_json"
    elif not isinstance(value, dict):
        [dead] = results
        assert dead.reason == "unrecognised_record"
        assert dead.error.startswith("expected a JSON object, got ")
    key = value.get("api_key") if isinstance(value, dict) else None
    if isinstance(key, str) and key != "[redacted]":
        assert not any(f'"api_key": {json.dumps(key)}' in r.payload for r in results)


@FAST
@given(st.integers(min_value=1, max_value=3 * MAX_DEPTH),
       st.sampled_from(["event_properties", "user_properties", "platform"]))
def test_parse_caps_nesting_at_a_fixed_depth(depth, field):
    record = {"event_type": "deep", "user_id": "u"}
    record[field] = {"v": nested(depth)} if field.endswith("properties") else nested(depth)
    levels = depth + (2 if field.endswith("properties") else 1)  # + record (+ dict)
    [result] = parse_payload(json.dumps(record))
    if levels > MAX_DEPTH:
        assert isinstance(result, DeadLetter)
        assert (result.reason, result.error) == (
            "malformed_json", f"nested too deeply (more than {MAX_DEPTH} levels)")
    else:
        assert isinstance(result, Record)


def test_parse_dead_letters_deep_nesting_past_the_recursion_limit():
    for text in ("[" * 100_000 + "]" * 100_000,
                 json.dumps({"identification": "[" * 50_000 + "]" * 50_000})):
        [dead] = parse_payload(text)
        assert isinstance(dead, DeadLetter) and "nested too deeply" in dead.error


# ---------------------------------------------------------------- email


def check_email(value) -> None:
    email = normalise_email(value)
    if email is None:
        return
    assert isinstance(value, str) and email == value.strip()
    assert email.isascii() and email == email.strip() and len(email) <= 254
    local, at, domain = email.partition("@")
    assert at and local and "@" not in domain and "." in domain
    assert not domain.startswith(".") and not domain.endswith(".")
    assert not local.startswith(".") and not local.endswith(".") and ".." not in local
    assert normalise_email(email) == email


@FAST
@given(st.one_of(json_values, emails, any_text))
def test_normalise_email_never_raises(value):
    check_email(value)


@FAST
@given(st.emails(), st.sampled_from(["", " ", "\t", "\n ", "\u3000"]))
def test_plausible_emails_survive_normalisation(email, pad):
    tld = email.rsplit(".", 1)[-1]
    assume(tld.isascii() and tld.isalpha())
    assert normalise_email(pad + email + pad) == email
    check_email(pad + email + pad)


@FAST
@given(st.one_of(st.emails(), st.text()))
def test_subscriber_hash_is_md5_of_the_lower_case_address(text):
    digest = subscriber_hash(text)
    assert _HEX32.fullmatch(digest)
    assert digest == hashlib.md5(text.lower().encode()).hexdigest()
    email = normalise_email(text)
    if email is not None:
        for variant in (email.upper(), email.lower(), email.swapcase()):
            assert subscriber_hash(variant) == digest


# ---------------------------------------------------------------- stringify


@FAST
@given(json_values)
def test_stringify_never_raises_and_returns_a_string(value):
    text = stringify(value)
    assert isinstance(text, str)
    if isinstance(value, str):
        assert text == value
    elif value is None:
        assert text == ""
    elif isinstance(value, bool):
        assert text == ("true" if value else "false")
    elif isinstance(value, (int, float)):
        back = json.loads(text)
        assert back == value or (math.isnan(back) and math.isnan(value))
        assert type(back) is type(value)


@FAST
@given(finite_json.filter(lambda v: isinstance(v, (dict, list))))
def test_stringify_writes_objects_and_arrays_as_compact_json(value):
    text = stringify(value)
    back = json.loads(text)
    assert back == value
    # Compact: the canonical compact form of what it holds, no spaces added.
    assert text == json.dumps(back, separators=(",", ":"), ensure_ascii=False)


# ---------------------------------------------------------------- event names


@FAST
@given(st.one_of(any_text, event_types))
def test_event_name_is_none_or_what_mailchimp_takes(event_type):
    name = event_name(event_type)
    assert name is None or _EVENT_NAME.fullmatch(name)


@FAST
@given(st.lists(st.from_regex(r"[A-Za-z0-9_-]{1,8}", fullmatch=True),
                min_size=1, max_size=4),
       st.lists(st.sampled_from([" ", "\t", "  ", "\n", " \t "]), min_size=4,
                max_size=4))
def test_event_name_joins_words_with_underscores(words, gaps):
    event_type = gaps[0] + "".join(w + gaps[i % 3 + 1] for i, w in enumerate(words))
    expected = "_".join(words)
    name = event_name(event_type)
    if 2 <= len(expected) <= 30:
        assert name == expected
    else:
        assert name is None


# ---------------------------------------------------------------- merge fields


def field_of(kind: str) -> dict:
    field = {"tag": "T", "type": kind}
    if kind in ("radio", "dropdown"):
        field["options"] = {"choices": ["free", "pro", "42", "true"]}
    return field


@FAST
@given(st.one_of(typed_values, st.tuples(st.just("unknown_type"), tag_values)))
def test_convert_returns_a_sendable_value_or_says_why_not(typed):
    kind, value = typed
    field = field_of(kind)
    try:
        converted = convert(value, field)
    except Unconvertible as e:
        assert str(e)
        return
    # Sendable: strict JSON (no NaN/Infinity), UTF-8 encodable.
    json.dumps(converted, allow_nan=False).encode("utf-8")
    if value is None or value == "":
        assert converted == ""
    elif kind == "number":
        assert type(converted) in (int, float) and math.isfinite(converted)
    elif kind == "address":
        assert isinstance(converted, dict) and all(
            isinstance(v, str) for v in converted.values())
    else:
        assert isinstance(converted, str)
        if kind in ("radio", "dropdown"):
            assert converted in field["options"]["choices"]
        if kind in ("text", "phone", "unknown_type"):
            assert len(converted.encode("utf-8")) <= 255


@FAST
@given(typed_values)
def test_what_convert_returns_the_emulator_accepts(typed):
    """The emulator checks merge values as Mailchimp does: a value the
    pipeline converted must not get its member refused."""
    kind, value = typed
    field = field_of(kind)
    try:
        converted = convert(value, field)
    except Unconvertible:
        return
    merge_field = MergeField(1, "T", "T", kind, options=field.get("options", {}))
    merge_field.normalise(converted)  # raises ValueError if refused


@FAST
@given(st.dictionaries(st.sampled_from(TAGS + ["OTHER"]), tag_values, max_size=8))
def test_prepare_partitions_the_tags(values):
    sendable, unknown, invalid = prepare(values, CATALOG)
    assert set(sendable) | set(unknown) | set(invalid) == set(values)
    assert not (set(sendable) & set(unknown) or set(sendable) & set(invalid)
                or set(unknown) & set(invalid))
    assert set(unknown) == {t for t in values if t not in CATALOG}
    assert all(isinstance(why, str) and why for why in invalid.values())
    json.dumps(sendable, allow_nan=False)


# ---------------------------------------------------------------- the rules end to end


def apply_rules(sync: Sync, record: Record) -> list[list]:
    """Per planned action, what plan -> drop anonymous -> map email ->
    project makes of it (each step's outputs fed to the next)."""
    outcomes = []
    for planned in plan(sync, record):
        results, stage = [planned], [
            _drop_anonymous,
            lambda a: _map_email(sync.email_property, a),
            lambda a: _project(sync, a)]
        for step in stage:
            results = [out for r in results
                       for out in (step(r) if isinstance(r, Action) else [r])]
        outcomes.append(results)
    return outcomes


@WITH_FIXTURE
@given(st.lists(payloads, min_size=1, max_size=4))
def test_messy_events_become_valid_requests_or_documented_skips(openapi, events):
    event_schema = validator(openapi, EVENTS_PATH, "post")
    member_schema = validator(openapi, MEMBER_PATH, "put")
    for value in events:
        for record in parse_payload(json.dumps(value)):
            if isinstance(record, DeadLetter):
                assert record.reason in PARSE_DEAD
                continue
            for sync in SYNCS:
                kinds = []
                for outcome in apply_rules(sync, record):
                    # Exactly one place per action.
                    [result] = outcome
                    kinds.append(result)
                    event(getattr(result, "reason", type(result).__name__))
                    check_request(sync, record, result, event_schema, member_schema)
                assert len(kinds) == sync.send_users.enabled + sync.send_events.enabled


def check_request(sync: Sync, record: Record, result, event_schema, member_schema):
    if isinstance(result, Skipped):
        assert result.reason in RULE_SKIPS, result.reason
        assert result.sync == sync.name
        if result.reason == NOT_SELECTED:
            assert result.kind == "event"
        return
    assert normalise_email(result.email) == result.email
    assert result.subscriber_hash == hashlib.md5(
        result.email.lower().encode()).hexdigest()
    if isinstance(result, MemberEvent):
        assert not record.is_identify
        body = result.body()
        event_schema.validate(body)
        assert 2 <= len(body["name"]) <= 30 and _EVENT_NAME.fullmatch(body["name"])
        assert all(isinstance(v, str) for v in body["properties"].values())
        json.dumps(body, allow_nan=False)
        if "occurred_at" in body:
            assert _RFC3339.fullmatch(body["occurred_at"])
            assert datetime.datetime.fromisoformat(body["occurred_at"]).tzinfo
        return
    assert isinstance(result, MemberUpsert), result
    assert result.status_if_new == sync.status_if_new
    assert set(result.merge_fields) <= set(sync.send_users.properties)
    sendable, _, _ = prepare(result.merge_fields, CATALOG)
    body = {"email_address": result.email, "status_if_new": result.status_if_new}
    if sendable:
        body["merge_fields"] = sendable
    member_schema.validate(body)
    json.dumps(body, allow_nan=False)
