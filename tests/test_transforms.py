"""Each rule step on its own, in Beam's style (TestPipeline + assert_that),
with plain tests for the functions they are made of."""
from __future__ import annotations

import hashlib
import json

import apache_beam as beam
import pytest
from apache_beam.testing.util import assert_that, equal_to
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from transforms.dedupe import DropDuplicates, RecentIds
from transforms.identity import DropAnonymous, MapEmail, normalise_email, subscriber_hash
from transforms.parse import (_EVENT, _IDENTIFICATION, ParseRecords,
                              _event_fields, _identification_fields,
                              parse_payload)
from transforms.plan import PlanActions, holds
from transforms.project import ProjectProperties, event_name, stringify
from transforms.records import Action, DeadLetter, Record
from transforms.sync import Filter, Sync
from tests.helpers import beam_pipeline


def record(**fields) -> Record:
    defaults = dict(event_type="purchase", user_id="u1", device_id=None,
                    time_ms=1_700_000_000_000, insert_id="i1",
                    event_properties={}, user_properties={}, fields={},
                    payload="{}")
    return Record(**{**defaults, **fields})


def sync(**changes) -> Sync:
    return Sync.model_validate({"name": "s", "audience_id": "a", **changes})


def test_parse_records_splits_records_from_dead_letters():
    lines = [
        json.dumps({"event_type": "purchase", "user_id": "u1"}),
        json.dumps({"api_key": "k", "events": [{"event_type": "a"}, {"event_type": "b"}]}),
        json.dumps({"identification": [{"user_id": "u2", "user_properties": {"$set": {"A": 1}}}]}),
        "{broken", "[]", json.dumps({"user_id": "u3"}),
    ]
    with beam_pipeline() as p:
        parsed = p | beam.Create(lines) | ParseRecords()
        assert_that(parsed.records | beam.Map(lambda r: (r.event_type, r.is_identify)),
                    equal_to([("purchase", False), ("a", False), ("b", False),
                              ("$identify", True)]), label="records")
        assert_that(parsed.dead_letter | beam.Map(lambda d: d.reason),
                    equal_to(["malformed_json", "unrecognised_record",
                              "unrecognised_record"]), label="dead letters")


@pytest.mark.parametrize("payload, error", [
    (b"\xff{}", "invalid UTF-8"),
    ("", "empty record"),
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ('{"event_type": ""}', "event_type: String should have at least 1 character"),
    ('{"event_type": "a", "time": "yesterday"}', "time: Input should be a valid integer"),
    ('{"event_type": "a", "user_properties": []}', "user_properties: Input should be a valid dictionary"),
    ('{"event_type": "a", "event_time": "12/01/2025"}', "event_time '12/01/2025' is not"),
    ('{"events": {"event_type": "a"}}', "'events' must be a list"),
    ('{"identification": "{bad"}', "'identification' is not valid JSON"),
    ('{"event_type": "a", "user_properties": {"$set": 1}}', "user_properties.$set must be an object"),
])
def test_bad_records_say_what_is_wrong(payload, error):
    [result] = parse_payload(payload)
    assert isinstance(result, DeadLetter) and error in result.error


def test_dead_letters_never_carry_an_amplitude_api_key():
    [dead] = parse_payload('{"api_key": "amp-secret", "events": 3}')
    assert "amp-secret" not in dead.payload and '"api_key": "[redacted]"' in dead.payload


def test_export_rows_and_identify_operations():
    [row] = parse_payload(json.dumps({
        "$insert_id": "x1", "event_type": "e", "user_id": " u ",
        "event_time": "2015-08-10 12:00:00.000000", "platform": "iOS"}))
    assert (row.insert_id, row.user_id, row.time_ms, row.fields["platform"]) == (
        "x1", "u", 1_439_208_000_000, "iOS")
    [ident] = parse_payload(json.dumps({"identification": json.dumps([{
        "user_id": "u", "user_properties": {
            "$setOnce": {"A": 1, "B": 1}, "$set": {"B": 2}, "$unset": ["C"]}}])}))
    assert ident.user_properties == {"A": 1, "B": 2} and ident.unset == ("C",)


def test_a_bare_identify_object_is_an_identify_call():
    """Amplitude's Identify API object without its `identification` wrapper."""
    payload = json.dumps({"device_id": "d1", "user_id": "u", "user_properties": {
        "$set": {"email": "u@example.com"}, "$unset": {"PLAN": "-"}}})
    [ident] = parse_payload(payload)
    assert (ident.event_type, ident.is_identify, ident.user_id, ident.device_id,
            ident.user_properties, ident.unset, ident.payload) == (
        "$identify", True, "u", "d1", {"email": "u@example.com"}, ("PLAN",),
        payload)


@pytest.mark.parametrize("value", [
    "18446744073709551616123",  # beyond 64 bits: still an exact integer
    "-9223372036854775809", "1e400", "-0.0", "0.30000000000000004",
    '"\\ud800"',  # a lone surrogate: json.loads takes it
    '"caf\\u00e9 \\u2028"', '{"nested": [1, 2.5, null, true]}',
])
def test_parsed_values_are_those_of_json_loads(value):
    """The fast parser (pydantic's) and json.loads agree on every value,
    including those the fast parser refuses and json.loads reads."""
    [parsed] = parse_payload(
        '{"event_type": "a", "event_properties": {"v": %s}}' % value)
    expected = json.loads(value)
    assert parsed.event_properties == {"v": expected}
    assert type(parsed.event_properties["v"]) is type(expected)


def test_text_with_a_lone_surrogate_parses_as_json_loads_reads_it():
    """Text (a str given whole, not read from bytes) that UTF-8 cannot
    encode: the fast parser cannot read it, json.loads can."""
    [parsed] = parse_payload('{"event_type": "a", "user_id": "u\ud800"}')
    assert parsed.user_id == "u\ud800"


def test_top_level_fields_keep_the_other_insert_id_name():
    """Only the insert_id name that was read is a field: with both names,
    `$insert_id` stays one of the record's other fields."""
    [both] = parse_payload(json.dumps({"event_type": "a", "insert_id": "i",
                                       "$insert_id": "x", "platform": "iOS"}))
    assert (both.insert_id, both.fields) == ("i", {"$insert_id": "x", "platform": "iOS"})
    [export] = parse_payload(json.dumps({"event_type": "a", "$insert_id": "x"}))
    assert (export.insert_id, export.fields) == ("x", {})


# Values pydantic would refuse or coerce next to the plain ones it keeps:
# bools where ints are expected, floats for time, blank and non-ASCII
# strings, lone surrogates, big ints, nested objects.
_TRICKY_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(),
              st.integers(min_value=2 ** 63 - 2, max_value=2 ** 80),
              st.floats(allow_nan=False), st.text(max_size=5),
              st.sampled_from(["", " ", "\ud800", "x\udc00", "café", "😀",
                               "1", "2025-12-01 10:00:00"])),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.sampled_from(["$set", "$unset", "email", "\ud800", "a"]),
                      inner, max_size=3),
    max_leaves=6)
_TRICKY_ITEMS = st.dictionaries(
    st.sampled_from(["event_type", "user_id", "device_id", "time", "event_time",
                     "insert_id", "$insert_id", "event_properties",
                     "user_properties", "platform"]),
    _TRICKY_VALUES)
_ADAPTERS = [(_event_fields, _EVENT), (_identification_fields, _IDENTIFICATION)]


def _outcome(validate, item):
    """The fields, typed (True is not 1, 1.0 not 1), or the error text."""
    try:
        return json.dumps(validate(item), sort_keys=True)
    except ValidationError as e:
        return str(e)


@settings(max_examples=1500, deadline=None)
@given(_TRICKY_ITEMS, st.sampled_from(_ADAPTERS))
def test_the_fast_field_checks_give_what_pydantic_gives(item, adapters):
    """Parsing skips pydantic for records of plain types: the fields (and
    so every Record), or the error (and so every dead letter), are still
    exactly pydantic's."""
    fast, adapter = adapters
    assert _outcome(fast, item) == _outcome(adapter.validate_python, item)


@pytest.mark.parametrize("item", [
    {"event_type": "a", "user_id": "", "time": 2 ** 70, "insert_id": "é"},
    {"event_type": "a", "$insert_id": "x", "event_time": "2025-12-01 10:00:00",
     "user_properties": {"$set": {"email": "u@example.com"}}},
    {"event_type": "a", "insert_id": None, "$insert_id": "x"},
    {"event_type": "\ud800"}, {"event_type": "a", "user_id": "u\ud800"},
    {"event_type": "a", "time": True}, {"event_type": "a", "time": 1.0},
    {"event_type": ""}, {"event_type": 1}, {"user_id": "u"},
    {"event_type": "a", "event_properties": {"n": {"m": [1, {"k": None}]}}},
    {"event_type": "a", "device_id": False, "user_properties": []},
])
def test_tricky_records_parse_as_pydantic_reads_them(item):
    assert _outcome(_event_fields, item) == _outcome(_EVENT.validate_python, item)


def test_a_plain_record_needs_no_validation():
    """The fast path taken: the record's own objects, where pydantic would
    have copied each object it validated."""
    properties = {"plan": "pro"}
    fields = _event_fields({"event_type": "a", "user_id": "u", "time": 1,
                            "event_properties": properties})
    assert fields["event_properties"] is properties


@pytest.mark.parametrize("op, value, expected", [
    ("is_set", None, True), ("is_not_set", None, False),
    ("equals", "pro", True), ("equals", "free", False),
    ("not_equals", "free", True), ("in", ["free", "pro"], True),
    ("not_in", ["pro"], False), ("contains", "ro", True),
    ("greater_than", 10, True), ("less_than", 10, False),
])
def test_filter_ops(op, value, expected):
    r = record(event_properties={"plan": "pro", "amount": "12.5"})
    path = "event_properties.amount" if op in ("greater_than", "less_than") else "event_properties.plan"
    if op in ("is_set", "is_not_set"):
        path = "user_id"
    assert holds(Filter(property=path, op=op, value=value), r) is expected


def test_missing_property_only_satisfies_negative_filters():
    r = record()
    assert not holds(Filter(property="event_properties.plan", op="equals", value="x"), r)
    assert holds(Filter(property="event_properties.plan", op="not_in", value=["x"]), r)
    assert holds(Filter(property="country", op="is_not_set"), r)


def test_plan_actions_selects_events_and_forwards_every_user():
    rules = sync(send_events={"enabled": True, "event_types": ["purchase"]},
                 send_users={"enabled": True})
    records = [record(), record(event_type="page viewed", insert_id="i2"),
               record(event_type="$identify", is_identify=True, insert_id="i3")]
    with beam_pipeline() as p:
        planned = p | beam.Create(records) | PlanActions(rules)
        assert_that(planned.main | beam.Map(lambda a: (a.kind, a.record.insert_id)),
                    equal_to([("event", "i1"), ("member", "i1"), ("member", "i2"),
                              ("member", "i3")]), label="actions")
        assert_that(planned.skipped | beam.Map(lambda s: (s.reason, s.insert_id)),
                    equal_to([("not_selected", "i2"), ("not_selected", "i3")]),
                    label="skipped")


def test_drop_anonymous_and_map_email():
    actions = [Action("s", "a", "event", record(user_properties={"email": " Ada@Example.COM "})),
               Action("s", "a", "event", record(user_id=None, insert_id="anon")),
               Action("s", "a", "event", record(insert_id="none")),
               Action("s", "a", "event", record(insert_id="bad", user_properties={"email": "a@b"}))]
    with beam_pipeline() as p:
        identified = p | beam.Create(actions) | DropAnonymous()
        addressed = identified.main | MapEmail("email")
        assert_that(addressed.main | beam.Map(lambda a: (a.email, a.subscriber_hash)),
                    equal_to([("Ada@Example.COM", hashlib.md5(b"ada@example.com").hexdigest())]),
                    label="addressed")
        assert_that((identified.skipped, addressed.skipped) | beam.Flatten()
                    | beam.Map(lambda s: (s.reason, s.insert_id)),
                    equal_to([("anonymous", "anon"), ("no_email", "none"),
                              ("invalid_email", "bad")]), label="skipped")


@pytest.mark.parametrize("value, expected", [
    ("  a.b+c@mail.example.co.uk ", "a.b+c@mail.example.co.uk"),
    ("UPPER@EXAMPLE.COM", "UPPER@EXAMPLE.COM"),
    ("two@@example.com", None), ("no-at.example.com", None), ("a@example", None),
    ("sp ace@example.com", None), ("ünï@example.com", None), (42, None),
    ("a@" + "x" * 250 + ".com", None), ("a@-bad.com", None),
])
def test_normalise_email(value, expected):
    assert normalise_email(value) == expected


def test_subscriber_hash_is_md5_of_the_lower_case_address():
    assert subscriber_hash("Ada@Example.COM") == hashlib.md5(b"ada@example.com").hexdigest()


@pytest.mark.parametrize("value, expected", [
    ("s", "s"), (42, "42"), (4.5, "4.5"), (True, "true"), (False, "false"),
    (None, ""), ({"a": [1, 2]}, '{"a":[1,2]}'), ([1, "x"], '[1,"x"]'),
])
def test_stringify(value, expected):
    assert stringify(value) == expected


@pytest.mark.parametrize("event_type, expected", [
    ("purchase", "purchase"), ("page  viewed\tnow", "page_viewed_now"),
    (" signed up ", "signed_up"), ("x", None), ("a" * 30, "a" * 30),
    ("a" * 31, None), ("buy!", None),
])
def test_event_name(event_type, expected):
    assert event_name(event_type) == expected


def test_backfill_events_do_not_trigger_automations():
    rules = sync(send_events={"enabled": True, "is_syncing": True})
    [request] = list(ProjectProperties(rules).step(
        Action("s", "a", "event", record(), "ada@example.com", "h")))
    assert request.body() == {"name": "purchase", "properties": {}, "is_syncing": True}


def test_project_properties_builds_requests():
    rules = sync(send_events={"enabled": True, "occurred_at": "event_time",
                              "properties": ["event_properties.n", "platform",
                                             "user_properties.missing"]},
                 send_users={"enabled": True, "properties": ["FNAME", "PLAN", "GONE"]})
    base = record(event_properties={"n": 3}, fields={"platform": "iOS"},
                  user_properties={"FNAME": "Ada", "OTHER": 1}, unset=("GONE",))
    actions = [Action("s", "a", kind, base, "ada@example.com", "h")
               for kind in ("event", "member")]
    actions.append(Action("s", "a", "event", record(event_type="x", insert_id="short"),
                          "ada@example.com", "h"))
    with beam_pipeline() as p:
        projected = p | beam.Create(actions) | ProjectProperties(rules)
        assert_that(projected.main | beam.Map(
            lambda r: r.body() if hasattr(r, "body") else r.merge_fields),
            equal_to([{"name": "purchase", "properties": {"n": "3", "platform": "iOS"},
                       "occurred_at": "2023-11-14T22:13:20+00:00"},
                      {"GONE": "", "FNAME": "Ada"}]), label="requests")
        assert_that(projected.skipped | beam.Map(lambda s: (s.reason, s.insert_id)),
                    equal_to([("invalid_event_name", "short")]), label="skipped")


def test_recent_ids_remember_between_half_and_all_of_their_capacity():
    recent = RecentIds(capacity=4)
    assert [recent.seen(k) for k in "abab"] == [False, False, True, True]
    for k in "cd":  # a new generation starts: a and b are still remembered
        assert not recent.seen(k)
    assert recent.seen("a") and recent.seen("d")
    for k in "efg":  # two generations on, a is forgotten
        recent.seen(k)
    assert not recent.seen("a")


def test_drop_duplicates_by_insert_id():
    records = [record(insert_id="x"), record(insert_id="x"), record(insert_id=None),
               record(insert_id=None), record(insert_id="y")]
    with beam_pipeline() as p:
        unique = p | beam.Create(records) | DropDuplicates()
        assert_that(unique.records | beam.Map(lambda r: r.insert_id),
                    equal_to(["x", None, None, "y"]), label="kept")
        assert_that(unique.duplicates | beam.Map(lambda d: d.insert_id),
                    equal_to(["x"]), label="dropped")


@pytest.mark.parametrize("payload, error", [
    ('{"event_type": "a", "event_properties": {"x": NaN}}', "NaN is not a JSON value"),
    ('{"event_type": "a", "time": Infinity}', "Infinity is not a JSON value"),
])
def test_non_json_numbers_are_malformed(payload, error):
    [dead] = parse_payload(payload)
    assert dead.reason == "malformed_json" and error in dead.error


def test_a_byte_order_mark_does_not_cost_the_first_line():
    [record] = parse_payload("\ufeff" + json.dumps({"event_type": "a"}).encode("utf-8").decode())
    assert record.event_type == "a"
