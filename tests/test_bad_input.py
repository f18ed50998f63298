"""Bad input, one pipeline run: every bad record ends in one place with a
specific reason (a parse dead letter with its original text, a skip, or a
member upserted without the merge field that did not fit), and the run
completes with every record accounted for.

One file holds all the records below plus a few good ones; it runs once
(module fixture) through `python -m pipeline`'s main() against the local
Mailchimp emulator, and each case looks its own outcome up in what the run
wrote and what the emulator received.
"""
from __future__ import annotations

import dataclasses
import json
from collections import Counter
from typing import Optional

import pytest

from pipeline.__main__ import main
from pipeline.local.mailchimp_emulator import MailchimpEmulator
from tests.helpers import API_KEY, read_outputs

AUDIENCE = "audbad0001"      # the "users" sync: members and events
UID_AUDIENCE = "audbad0002"  # the "by_user_id" sync: events, user_id is the email
SEED = {"lists": [
    {"id": AUDIENCE, "name": "Bad input", "double_optin": False,
     "merge_fields": [
         {"tag": "FNAME", "name": "First name", "type": "text"},
         {"tag": "SCORE", "name": "Score", "type": "number"},
         {"tag": "SIGNUP", "name": "Signed up", "type": "date"},
         {"tag": "BDAY", "name": "Birthday", "type": "birthday"},
         {"tag": "ADDR", "name": "Address", "type": "address"},
         {"tag": "ZIP", "name": "Zip", "type": "zip"},
         {"tag": "PLAN", "name": "Plan", "type": "dropdown",
          "options": {"choices": ["free", "pro"]}}],
     "members": []},
    {"id": UID_AUDIENCE, "name": "By user id", "double_optin": False,
     "merge_fields": [],
     "members": [{"email_address": "uid@example.com", "status": "subscribed"}]},
]}
TAGS = ["FNAME", "SCORE", "SIGNUP", "BDAY", "ADDR", "ZIP", "PLAN", "COMPANY"]
SYNCS = {"syncs": [
    {"name": "users", "audience_id": AUDIENCE, "email_property": "email",
     "send_events": {"enabled": True, "event_types": ["*"],
                     "properties": ["insert_id", "event_properties.big",
                                    "event_properties.deep",
                                    "event_properties.value"]},
     "send_users": {"enabled": True, "properties": TAGS}},
    {"name": "by_user_id", "audience_id": UID_AUDIENCE,
     "email_property": "user_id",
     "send_events": {"enabled": True, "event_types": ["uid_event"],
                     "properties": ["insert_id"]}},
]}
SYNC_NAMES = [s["name"] for s in SYNCS["syncs"]]

MB = "m" * (1 << 20)
DEEP_OK = "[" * 90 + "]" * 90  # with the record and event_properties: 92 levels


@dataclasses.dataclass(frozen=True)
class Case:
    """One input line and everything it must become.

    dead: parse dead letters, (payload, reason, error fragment) each;
    member/event: the "users" sync's outcome for the record the line holds
    ("upserted"/"delivered", a skip reason, "not_selected"), None when the
    line holds no usable record; uid_event: the "by_user_id" sync's.
    """
    id: str
    line: str | bytes
    dead: tuple[tuple[str, str, str], ...] = ()
    records: int = 1
    insert_id: Optional[str] = None
    member: Optional[str] = None
    event: Optional[str] = None
    uid_event: Optional[str] = None
    email: Optional[str] = None
    merge: tuple[tuple[str, object], ...] = ()     # merge fields it must have
    invalid: tuple[tuple[str, str], ...] = ()      # tag, why (reported)
    unknown: tuple[str, ...] = ()
    props: tuple[tuple[str, str], ...] = ()        # event properties it must have

    @property
    def parsed(self) -> int:
        return self.records - len(self.dead)


def dead(case_id: str, line: str | bytes, reason: str, error: str,
         payload: Optional[str] = None) -> Case:
    """A line that never becomes a record: one parse dead letter."""
    text = line if payload is None else payload
    return Case(case_id, line, dead=((text, reason, error),))


def unrecognised(case_id: str, record: dict, error: str) -> Case:
    line = json.dumps(record, ensure_ascii=False)
    return dead(case_id, line, "unrecognised_record", error)


def event(iid: str, event_type: str = "bad_input", **changes) -> dict:
    """An identified user's event; its email is `iid@example.com`."""
    record = {"event_type": event_type, "user_id": f"user-{iid}",
              "insert_id": iid, "time": 1_700_000_000_000,
              "user_properties": {"email": f"{iid}@example.com"}}
    record.update(changes)
    return record


def with_email(iid: str, email, **changes) -> dict:
    return event(iid, user_properties={"email": email}, **changes)


def with_props(iid: str, **props) -> dict:
    return event(iid, user_properties={"email": f"{iid}@example.com", **props})


def skipped(iid: str, record: dict | str, reason: str, *, member: str = None,
            event: str = None, **expect) -> Case:
    """A parsed record whose member and event are skipped with `reason`
    (unless member/event say otherwise)."""
    line = record if isinstance(record, str) else json.dumps(
        record, ensure_ascii=False)
    return Case(iid, line, insert_id=iid, member=member or reason,
                event=event or reason, uid_event="not_selected", **expect)


def delivered(iid: str, record: dict | str, *, event: str = "delivered",
              **expect) -> Case:
    """A parsed record whose member is upserted (and event delivered, unless
    told otherwise)."""
    line = record if isinstance(record, str) else json.dumps(
        record, ensure_ascii=False)
    expect.setdefault("email", f"{iid}@example.com")
    return Case(iid, line, insert_id=iid, member="upserted", event=event,
                uid_event="not_selected", **expect)


def invalid_merge(iid: str, tag: str, value, why: str) -> Case:
    """A merge field value that does not fit its type: the member still
    goes, without it, and the tag is reported as invalid."""
    return delivered(iid, with_props(iid, FNAME="Kept", **{tag: value}),
                     merge=(("FNAME", "Kept"), (tag, "")),
                     invalid=((tag, why),))


CASES = [
    # --- not JSON -----------------------------------------------------------
    dead("json_truncated", '{"event_type": "purchase", "user_id": "u"',
         "malformed_json", "invalid JSON: Expecting ',' delimiter"),
    dead("json_single_quotes", "{'event_type': 'purchase'}", "malformed_json",
         "invalid JSON: Expecting property name enclosed in double quotes"),
    dead("json_trailing_comma", '{"event_type": "purchase",}', "malformed_json",
         "invalid JSON: Expecting property name enclosed in double quotes"),
    dead("json_bare_word", "purchase", "malformed_json",
         "invalid JSON: Expecting value"),
    dead("json_two_objects", '{"event_type": "a"} {"event_type": "b"}',
         "malformed_json", "invalid JSON: Extra data"),
    dead("json_raw_control_char", '{"event_type": "a\x00b"}', "malformed_json",
         "invalid JSON: Invalid control character"),
    # A byte-order mark (as an editor may start a file with) is not content.
    delivered("json_byte_order_mark", "\ufeff" + json.dumps(event("json_byte_order_mark"))),
    dead("json_huge_integer", '{"event_type": "a", "time": 1' + "0" * 5000 + "}",
         "malformed_json", "invalid JSON: Exceeds the limit (4300 digits)"),
    # --- not UTF-8 (written as raw bytes) ---------------------------------
    dead("utf8_latin1", b'{"event_type": "caf\xe9"}', "malformed_json",
         "invalid UTF-8", payload='{"event_type": "caf\\xe9"}'),
    dead("utf8_truncated_sequence", b'{"event_type": "euro \xe2\x82"}',
         "malformed_json", "invalid UTF-8",
         payload='{"event_type": "euro \\xe2\\x82"}'),
    dead("utf8_encoded_surrogate", b'{"event_type": "\xed\xa0\x80"}',
         "malformed_json", "invalid UTF-8",
         payload='{"event_type": "\\xed\\xa0\\x80"}'),
    # --- nothing there ------------------------------------------------------
    dead("empty_line", "", "malformed_json", "empty record"),
    dead("whitespace_line", "  \t  ", "malformed_json", "empty record"),
    dead("unicode_space_line", "\u3000\u00a0", "malformed_json", "empty record"),
    # --- JSON, but not an object --------------------------------------------
    dead("array", '[{"event_type": "a"}]', "unrecognised_record",
         "expected a JSON object, got an array"),
    dead("string", '"purchase"', "unrecognised_record",
         "expected a JSON object, got a string"),
    dead("number", "42", "unrecognised_record",
         "expected a JSON object, got a number"),
    dead("null", "null", "unrecognised_record", "expected a JSON object, got null"),
    dead("true", "true", "unrecognised_record",
         "expected a JSON object, got a boolean"),
    # --- not an Amplitude record ------------------------------------------
    unrecognised("missing_event_type", {"user_id": "u", "insert_id": "x1"},
                 "not an Amplitude record: no 'event_type', 'events', "
                 "'identification' or identified 'user_properties'"),
    unrecognised("bare_identify_properties_list",
                 {"user_id": "u", "user_properties": ["$set"]},
                 "user_properties: Input should be a valid dictionary"),
    unrecognised("bare_identify_set_list",
                 {"user_id": "u", "user_properties": {"$set": ["a"]}},
                 "user_properties.$set must be an object"),
    dead("empty_object", "{}", "unrecognised_record",
         "not an Amplitude record: no 'event_type'"),
    # --- wrong types, field by field ----------------------------------------
    unrecognised("event_type_number", {"event_type": 42},
                 "event_type: Input should be a valid string"),
    unrecognised("event_type_list", {"event_type": ["purchase"]},
                 "event_type: Input should be a valid string"),
    unrecognised("event_type_null", {"event_type": None, "user_id": None,
                                     "time": None},
                 "event_type: Input should be a valid string"),
    unrecognised("event_type_empty", {"event_type": "", "user_id": "u"},
                 "event_type: String should have at least 1 character"),
    unrecognised("user_id_number", {"event_type": "a", "user_id": 123},
                 "user_id: Input should be a valid string"),
    unrecognised("user_id_object", {"event_type": "a", "user_id": {"id": 1}},
                 "user_id: Input should be a valid string"),
    unrecognised("user_id_bool", {"event_type": "a", "user_id": True},
                 "user_id: Input should be a valid string"),
    unrecognised("device_id_number", {"event_type": "a", "device_id": 5},
                 "device_id: Input should be a valid string"),
    unrecognised("time_string", {"event_type": "a", "time": "yesterday"},
                 "time: Input should be a valid integer"),
    unrecognised("time_float", {"event_type": "a", "time": 1_700_000_000_000.5},
                 "time: Input should be a valid integer"),
    unrecognised("time_bool", {"event_type": "a", "time": True},
                 "time: Input should be a valid integer"),
    unrecognised("insert_id_number", {"event_type": "a", "insert_id": 7},
                 "insert_id: Input should be a valid string"),
    unrecognised("export_insert_id_number", {"event_type": "a", "$insert_id": 8},
                 "$insert_id: Input should be a valid string"),
    unrecognised("export_event_time_garbage",
                 {"event_type": "a", "$insert_id": "x", "event_time": "yesterday"},
                 "event_time 'yesterday' is not 'YYYY-MM-DD HH:MM:SS[.ffffff]'"),
    unrecognised("event_properties_list", {"event_type": "a", "event_properties": [1]},
                 "event_properties: Input should be a valid dictionary"),
    unrecognised("event_properties_string",
                 {"event_type": "a", "event_properties": "plan=pro"},
                 "event_properties: Input should be a valid dictionary"),
    unrecognised("user_properties_list",
                 {"event_type": "a", "user_properties": ["a@example.com"]},
                 "user_properties: Input should be a valid dictionary"),
    unrecognised("user_properties_string",
                 {"event_type": "a", "user_properties": "email=a@example.com"},
                 "user_properties: Input should be a valid dictionary"),
    # --- HTTP API bodies -----------------------------------------------------
    dead("events_not_a_list",
         '{"api_key": "amp-secret-1", "events": {"event_type": "a"}}',
         "unrecognised_record", "'events' must be a list of events",
         payload='{"api_key": "[redacted]", "events": {"event_type": "a"}}'),
    unrecognised("events_empty", {"events": []}, "'events' is an empty list"),
    Case("events_items_not_objects", json.dumps(
        {"api_key": "amp-secret-2",
         "events": [17, "not an event", False, event("batch_ok")]}),
        dead=(("17", "unrecognised_record", "expected a JSON object, got a number"),
              ('"not an event"', "unrecognised_record",
               "expected a JSON object, got a string"),
              ("false", "unrecognised_record",
               "expected a JSON object, got a boolean")),
        records=4, insert_id="batch_ok", member="upserted", event="delivered",
        uid_event="not_selected", email="batch_ok@example.com"),
    Case("events_item_with_key_and_bad_field",
         json.dumps({"events": [{"api_key": "amp-secret-3", "event_type": 5}]}),
         dead=(('{"api_key": "[redacted]", "event_type": 5}',
                "unrecognised_record",
                "event_type: Input should be a valid string"),)),
    # --- Identify API payloads -----------------------------------------------
    unrecognised("identification_number", {"identification": 5},
                 "'identification' must be a list"),
    unrecognised("identification_bool", {"identification": True},
                 "'identification' must be a list"),
    unrecognised("identification_empty", {"identification": []},
                 "'identification' is an empty list"),
    unrecognised("identification_bad_json_string", {"identification": "{bad"},
                 "'identification' is not valid JSON"),
    unrecognised("identification_string_nested_5000",
                 {"identification": "[" * 5000 + "]" * 5000},
                 "'identification' is nested too deeply"),
    Case("identification_items_wrong", json.dumps({"identification": [
        "user-1", {"user_id": 5}, {"user_id": "u", "user_properties": {"$set": 7}}]}),
        records=3,
        dead=(('"user-1"', "unrecognised_record",
               "expected a JSON object, got a string"),
              ('{"user_id": 5}', "unrecognised_record",
               "user_id: Input should be a valid string"),
              ('{"user_id": "u", "user_properties": {"$set": 7}}',
               "unrecognised_record", "user_properties.$set must be an object"))),
    # --- $identify with bad operations ---------------------------------------
    unrecognised("identify_set_list", event("x", "$identify", user_properties={
        "$set": ["email"]}), "user_properties.$set must be an object"),
    unrecognised("identify_set_false", event("x", "$identify", user_properties={
        "$set": False}), "user_properties.$set must be an object"),
    unrecognised("identify_setonce_string", event("x", "$identify", user_properties={
        "$setOnce": "FNAME=Ada"}), "user_properties.$setOnce must be an object"),
    unrecognised("identify_unset_string", event("x", "$identify", user_properties={
        "$unset": "FNAME"}), "user_properties.$unset must be an object or list"),
    unrecognised("identify_unset_numbers", event("x", "$identify", user_properties={
        "$unset": [1, 2]}), "user_properties.$unset must list property names"),
    # --- nesting --------------------------------------------------------------
    dead("nested_5000_levels", '{"event_type": "a", "event_properties": {"deep": '
         + "[" * 5000 + "]" * 5000 + "}}", "malformed_json", "nested too deeply"),
    dead("nested_150_levels", '{"event_type": "a", "event_properties": {"deep": '
         + "[" * 150 + "]" * 150 + "}}", "malformed_json",
         "nested too deeply (more than 100 levels)"),
    delivered("nested_92_levels", event("nested_92_levels", event_properties={
        "deep": json.loads(DEEP_OK)}), props=(("deep", DEEP_OK),)),
    # --- huge values: the event goes with the whole string; the merge field,
    # limited to 255 bytes, is left out and reported -------------------------
    delivered("huge_1mb", event("huge_1mb", event_properties={"big": MB},
                                user_properties={"email": "huge_1mb@example.com",
                                                 "FNAME": MB}),
              props=(("big", MB),), merge=(("FNAME", ""),),
              invalid=(("FNAME", "longer than 255 bytes"),)),
    # --- emails ---------------------------------------------------------------
    skipped("email_unicode", with_email("email_unicode", "jösé@exämple.com"),
            "invalid_email"),
    skipped("email_space_inside", with_email("email_space_inside",
                                             "ada lovelace@example.com"),
            "invalid_email"),
    skipped("email_two_at", with_email("email_two_at", "ada@home@example.com"),
            "invalid_email"),
    skipped("email_no_tld", with_email("email_no_tld", "ada@example"),
            "invalid_email"),
    skipped("email_leading_dot", with_email("email_leading_dot",
                                            ".ada@example.com"), "invalid_email"),
    skipped("email_trailing_dot_local", with_email("email_trailing_dot_local",
                                                   "ada.@example.com"),
            "invalid_email"),
    skipped("email_trailing_dot_domain", with_email("email_trailing_dot_domain",
                                                    "ada@example.com."),
            "invalid_email"),
    skipped("email_300_chars", with_email("email_300_chars",
                                          "a" * 288 + "@example.com"),
            "invalid_email"),
    skipped("email_empty", with_email("email_empty", ""), "no_email"),
    skipped("email_whitespace", with_email("email_whitespace", " \t "), "no_email"),
    skipped("email_null", with_email("email_null", None), "no_email"),
    skipped("email_number", with_email("email_number", 42), "invalid_email"),
    skipped("email_list", with_email("email_list", ["a@example.com"]),
            "invalid_email"),
    delivered("email_padded", with_email("email_padded", "  Padded@Example.COM\t"),
              email="Padded@Example.COM"),
    # --- who: anonymous, user_id as the email ---------------------------------
    skipped("anonymous", {"event_type": "bad_input", "device_id": "d-1",
                          "insert_id": "anonymous",
                          "user_properties": {"email": "anon@example.com"}},
            "anonymous"),
    skipped("user_id_blank", event("user_id_blank", user_id="   "), "anonymous"),
    dataclasses.replace(skipped("uid_email_ok", {
        "event_type": "uid_event", "user_id": "  UID@Example.com ",
        "insert_id": "uid_email_ok"}, "no_email"), uid_event="delivered"),
    dataclasses.replace(skipped("uid_email_invalid", {
        "event_type": "uid_event", "user_id": "not-an-email",
        "insert_id": "uid_email_invalid"}, "no_email"), uid_event="invalid_email"),
    dataclasses.replace(skipped("uid_email_unknown", {
        "event_type": "uid_event", "user_id": "stranger@example.com",
        "insert_id": "uid_email_unknown"}, "no_email"),
        uid_event="member_not_found"),
    # --- event names ------------------------------------------------------------
    delivered("name_1_char", event("name_1_char", "a"), event="invalid_event_name"),
    delivered("name_31_chars", event("name_31_chars", "a" * 31),
              event="invalid_event_name"),
    delivered("name_30_chars", event("name_30_chars", "b" * 30)),
    delivered("name_2_chars", event("name_2_chars", "ab")),
    delivered("name_with_dot", event("name_with_dot", "sign.up"),
              event="invalid_event_name"),
    delivered("name_unicode", event("name_unicode", "café_visit"),
              event="invalid_event_name"),
    delivered("name_emoji", event("name_emoji", "🎉party"),
              event="invalid_event_name"),
    delivered("name_whitespace_only", event("name_whitespace_only", "   "),
              event="invalid_event_name"),
    delivered("name_inner_whitespace", event("name_inner_whitespace",
                                             "  page \t viewed "),
              props=(("insert_id", "name_inner_whitespace"),)),
    # --- merge field values that do not fit their type -------------------------
    invalid_merge("mf_number_word", "SCORE", "twelve", "not a number"),
    invalid_merge("mf_number_bool", "SCORE", True, "not a number"),
    invalid_merge("mf_number_nan_string", "SCORE", "NaN", "not a finite number"),
    dead("mf_number_nan_token",
         '{"event_type": "bad_input", "user_id": "u", "insert_id": '
         '"mf_number_nan_token", "user_properties": {"email": '
         '"mf_number_nan_token@example.com", "SCORE": NaN}}',
         "malformed_json", "NaN is not a JSON value"),
    invalid_merge("mf_number_infinite", "SCORE", "1e999", "not a finite number"),
    invalid_merge("mf_date_words", "SIGNUP", "next tuesday", "not a date"),
    invalid_merge("mf_date_list", "SIGNUP", [2024, 2, 29], "not a date"),
    invalid_merge("mf_date_impossible", "SIGNUP", "2023-02-30", "not a date"),
    invalid_merge("mf_birthday_impossible", "BDAY", "13/45", "not a month/day"),
    invalid_merge("mf_birthday_bool", "BDAY", True, "not a date"),
    invalid_merge("mf_address_string", "ADDR", "1 Main St, Springfield",
                  "an address must be an object"),
    invalid_merge("mf_address_incomplete", "ADDR", {"addr1": "1 Main St"},
                  "address lacks city, state, zip"),
    invalid_merge("mf_address_blank_part", "ADDR", {
        "addr1": "   ", "city": "Springfield", "state": "IL", "zip": "62701"},
        "address lacks addr1"),
    invalid_merge("mf_address_object_part", "ADDR", {
        "addr1": {"line": 1}, "city": "Springfield", "state": "IL", "zip": "62701"},
        "address addr1 is not text"),
    invalid_merge("mf_zip_letters", "ZIP", "ABCDE", "not a US ZIP code"),
    invalid_merge("mf_zip_list", "ZIP", [62701], "not a US ZIP code"),
    invalid_merge("mf_dropdown_other", "PLAN", "gold",
                  "not one of the field's choices"),
    invalid_merge("mf_dropdown_object", "PLAN", {"plan": "pro"},
                  "an object or list is not text"),
    delivered("mf_text_object", with_props("mf_text_object", FNAME={"first": "Ada"}),
              merge=(("FNAME", ""),),
              invalid=(("FNAME", "an object or list is not text"),)),
    delivered("mf_text_lone_surrogate",
              '{"event_type": "bad_input", "user_id": "u", "insert_id": '
              '"mf_text_lone_surrogate", "user_properties": {"email": '
              '"mf_text_lone_surrogate@example.com", "FNAME": "\\ud800"}}',
              merge=(("FNAME", ""),), invalid=(("FNAME", "not valid Unicode text"),)),
    delivered("mf_unknown_tag", with_props("mf_unknown_tag", FNAME="Kept",
                                           COMPANY="Acme"),
              merge=(("FNAME", "Kept"),), unknown=("COMPANY",)),
    # --- nulls where values go -------------------------------------------------
    skipped("null_everywhere", {"event_type": "bad_input", "user_id": "u",
                                "insert_id": "null_everywhere", "device_id": None,
                                "time": None, "event_properties": None,
                                "user_properties": None}, "no_email"),
    delivered("null_values", event("null_values", user_properties={
        "email": "null_values@example.com", "FNAME": None, "SCORE": None},
        event_properties={"value": None}),
        merge=(("FNAME", ""), ("SCORE", "")), props=(("value", ""),)),
    # --- good records among the bad -------------------------------------------
    delivered("good_all_fields", with_props(
        "good_all_fields", FNAME="Ada", SCORE="12.50", SIGNUP="2024/02/29",
        BDAY="3/7", ZIP=2134, PLAN="pro",
        ADDR={"addr1": "1 Main St", "city": "Springfield", "state": "IL",
              "zip": 62701}),
        merge=(("FNAME", "Ada"), ("SCORE", 12.5), ("SIGNUP", "2024-02-29"),
               ("BDAY", "03/07"), ("ZIP", "02134"), ("PLAN", "pro"),
               ("ADDR", {"addr1": "1 Main St", "addr2": "", "city": "Springfield",
                         "state": "IL", "zip": "62701", "country": ""})),
        props=(("insert_id", "good_all_fields"),)),
    delivered("good_identify", event("good_identify", "$identify", user_properties={
        "$set": {"email": "good_identify@example.com", "FNAME": "Grace"},
        "$setOnce": {"PLAN": "free"}, "$unset": {"SCORE": "-"},
        "$add": {"logins": 1}}), event="not_selected",
        merge=(("FNAME", "Grace"), ("PLAN", "free"), ("SCORE", ""))),
    Case("good_identification_object", json.dumps({"identification": {
        "user_id": "user-ident", "user_properties": {
            "$set": {"email": "identification@example.com", "FNAME": "Obj"}}}}),
        member="upserted", event="not_selected", uid_event="not_selected",
        email="identification@example.com", merge=(("FNAME", "Obj"),)),
]
CASES_BY_ID = {case.id: case for case in CASES}
assert len(CASES_BY_ID) == len(CASES), "case ids must be unique"


def _line_bytes(case: Case) -> bytes:
    return case.line if isinstance(case.line, bytes) else case.line.encode("utf-8")


@dataclasses.dataclass
class Run:
    summary: dict
    dead_letters: list[dict]
    skipped: list[dict]
    merge_reports: list[dict]
    members: dict[str, Optional[dict]]       # email -> member, per case
    events: dict[str, list[dict]]            # email -> events, per case
    uid_events: list[dict]
    member_bodies: list[dict]                # every member body sent


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Run:
    """All cases in one file, one run of the pipeline."""
    tmp = tmp_path_factory.mktemp("bad_input")
    records = tmp / "records.jsonl"
    records.write_bytes(b"\n".join(_line_bytes(c) for c in CASES) + b"\n")
    config = tmp / "sync.json"
    config.write_text(json.dumps(SYNCS))
    output_dir = tmp / "out"
    with pytest.MonkeyPatch.context() as env, MailchimpEmulator(
            seed=json.loads(json.dumps(SEED)), api_key=API_KEY,
            record_requests=True) as emulator:
        env.setenv("MAILCHIMP_API_KEY", API_KEY)
        status = main(["--sync_config", str(config), "--input_files", str(records),
                       "--output_dir", str(output_dir),
                       "--mailchimp_base_url", emulator.base_url])
        assert status == 0
        emails = {c.email for c in CASES if c.email}
        bodies = [m for r in emulator.requests
                  if r["method"] in ("POST", "PUT") and r["body"]
                  and not r["path"].endswith("/events")
                  for m in r["body"].get("members", [r["body"]])]
        return Run(
            summary=json.loads((output_dir / "summary.json").read_text()),
            dead_letters=read_outputs(output_dir, "dead_letter"),
            skipped=read_outputs(output_dir, "skipped_members"),
            merge_reports=read_outputs(output_dir, "unknown_merge_fields"),
            members={e: emulator.member(AUDIENCE, e) for e in emails},
            events={e: emulator.events(AUDIENCE, e) for e in emails},
            uid_events=emulator.events(UID_AUDIENCE, "uid@example.com"),
            member_bodies=bodies)


def _skips(run: Run, sync: str, kind: str, insert_id: str) -> list[str]:
    return [s["reason"] for s in run.skipped if s["sync"] == sync
            and s["kind"] == kind and s.get("insert_id") == insert_id]


def _check_event(run: Run, case: Case, sync: str, expected: Optional[str]):
    reasons = _skips(run, sync, "event", case.insert_id) if case.insert_id else []
    if expected is None:  # the line holds no record: nothing to skip
        assert reasons == []
        return
    if expected in ("delivered", "not_selected"):
        # Not-selected events are counted, never written.
        assert reasons == [], (sync, reasons)
    else:
        assert reasons == [expected], (sync, reasons)
    if sync == "by_user_id":
        posted = [e for e in run.uid_events
                  if e["properties"].get("insert_id") == case.insert_id]
        assert len(posted) == (expected == "delivered")
        return
    posted = [e for events in run.events.values() for e in events
              if e["properties"].get("insert_id") == case.insert_id]
    if expected != "delivered":
        assert posted == [], sync
        return
    [posted] = posted
    assert 2 <= len(posted["name"]) <= 30
    for key, value in case.props:
        assert posted["properties"][key] == value, key


def _check_member(run: Run, case: Case):
    reasons = _skips(run, "users", "member", case.insert_id) if case.insert_id else []
    if case.member != "upserted":
        assert reasons == ([case.member] if case.member else [])
        return
    assert reasons == []
    member = run.members[case.email]
    assert member is not None and member["email_address"] == case.email
    assert member["status"] == "subscribed"
    for tag, value in case.merge:
        assert member["merge_fields"][tag] == value, tag
    # What did not fit was never sent, and is reported with its reason.
    sent = [b.get("merge_fields", {}) for b in run.member_bodies
            if b["email_address"] == case.email]
    assert sent
    left_out = {tag for tag, _ in case.invalid} | set(case.unknown)
    assert not any(tag in fields for fields in sent for tag in left_out)
    reports = [r for r in run.merge_reports if r["email"] == case.email]
    if not left_out:
        assert reports == []
        return
    [report] = reports
    assert (report["sync"], report["audience_id"]) == ("users", AUDIENCE)
    assert report["fields"] == list(case.unknown)
    assert set(report.get("invalid", {})) == {tag for tag, _ in case.invalid}
    for tag, why in case.invalid:
        assert why in report["invalid"][tag], (tag, report["invalid"][tag])


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_each_record_ends_where_it_should(run, case):
    for payload, reason, error in case.dead:
        found = [d for d in run.dead_letters if d["payload"] == payload]
        assert len(found) == 1, f"{len(found)} dead letters with this payload"
        [letter] = found
        assert (letter["stage"], letter["reason"]) == ("parse", reason)
        assert error in letter["error"], letter["error"]
        assert "sync" not in letter
    _check_member(run, case)
    _check_event(run, case, "users", case.event)
    _check_event(run, case, "by_user_id", case.uid_event)


def test_the_bad_records_are_many_and_distinct():
    bad = [c for c in CASES if not c.id.startswith("good_")]
    assert len(bad) >= 40
    assert len({_line_bytes(c) for c in CASES}) == len(CASES)


def test_no_amplitude_key_is_dead_lettered(run):
    assert run.dead_letters
    assert not any("amp-secret" in d["payload"] for d in run.dead_letters)
    assert any('"api_key": "[redacted]"' in d["payload"] for d in run.dead_letters)


def test_every_record_is_accounted_for(run):
    summary = run.summary
    # One line per case; a line with an HTTP API or Identify body holds several.
    records = sum(c.records for c in CASES)
    dead = sum(len(c.dead) for c in CASES)
    parsed = sum(c.parsed for c in CASES)
    assert summary["records_in"] == records == parsed + dead
    assert summary["duplicates"] == 0
    assert summary["dead_letter"] == len(run.dead_letters) == dead
    assert summary["dead_letter_by_reason"] == dict(Counter(
        reason for c in CASES for _, reason, _ in c.dead))
    for name in SYNC_NAMES:
        figures = summary["syncs"][name]
        for section, done in (("events", "delivered"), ("members", "upserted")):
            counts = figures[section]
            if name == "by_user_id" and section == "members":
                assert counts == {done: 0, "skipped": {}, "dead_letter": 0}
                continue
            assert counts[done] + sum(counts["skipped"].values()) + counts[
                "dead_letter"] == parsed, (name, section)


def test_outcomes_add_up_per_reason(run):
    def tally(outcomes):
        outcomes = Counter(o for o in outcomes if o is not None)
        done = sum(n for o, n in outcomes.items() if o in ("delivered", "upserted"))
        return done, {o: n for o, n in sorted(outcomes.items())
                      if o not in ("delivered", "upserted")}

    users, by_user_id = run.summary["syncs"]["users"], run.summary["syncs"]["by_user_id"]
    assert (users["members"]["upserted"], users["members"]["skipped"]) == tally(
        c.member for c in CASES)
    assert (users["events"]["delivered"], users["events"]["skipped"]) == tally(
        c.event for c in CASES)
    assert (by_user_id["events"]["delivered"], by_user_id["events"]["skipped"]) == tally(
        c.uid_event for c in CASES)
    for figures in (users, by_user_id):
        assert figures["members"]["dead_letter"] == figures["events"]["dead_letter"] == 0
    assert run.summary["invalid_merge_fields"] == dict(sorted(Counter(
        tag for c in CASES for tag, _ in c.invalid).items()))
    assert run.summary["unknown_merge_fields"] == dict(Counter(
        tag for c in CASES for tag in c.unknown))
