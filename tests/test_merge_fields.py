"""Merge-field values converted to the audience's types; what does not fit
is reported field by field, and the catalog is fetched whole and cached."""
from __future__ import annotations

import re

import pytest

from pipeline.local.mailchimp_emulator import MailchimpEmulator
from transforms.mailchimp.client import MailchimpClient, RetryPolicy
from transforms.mailchimp.errors import DeliveryFailed
from transforms.mailchimp.credentials import Credentials
from transforms.mailchimp.merge_fields import (MergeFieldCatalog, Unconvertible,
                                               convert, prepare)
from tests.helpers import API_KEY

CHOICES = {"type": "dropdown", "options": {"choices": ["free", "pro"]}}


@pytest.mark.parametrize("field, value, expected", [
    ({"type": "text"}, "Ada", "Ada"), ({"type": "text"}, 7, "7"),
    ({"type": "number"}, "12.50", 12.5), ({"type": "number"}, "3", 3),
    ({"type": "number"}, 4, 4),
    ({"type": "date"}, "2024-02-29T10:00:00+00:00", "2024-02-29"),
    ({"type": "date"}, "2024/02/29", "2024-02-29"),
    ({"type": "date"}, 1_700_000_000_000, "2023-11-14"),
    ({"type": "birthday"}, "3/7", "03/07"), ({"type": "birthday"}, "1990-12-25", "12/25"),
    ({"type": "address"}, {"addr1": "1 Main St", "city": "Springfield",
                           "state": "IL", "zip": 62701},
     {"addr1": "1 Main St", "city": "Springfield", "state": "IL", "zip": "62701"}),
    ({"type": "phone"}, "+1 555 0100", "+1 555 0100"),
    ({"type": "url"}, "https://example.com/x", "https://example.com/x"),
    ({"type": "zip"}, 2134, "02134"), (CHOICES, "pro", "pro"),
    ({"type": "number"}, "", ""), ({"type": "date"}, None, ""),
])
def test_values_are_converted_to_the_field_type(field, value, expected):
    assert convert(value, field) == expected


@pytest.mark.parametrize("field, value, why", [
    ({"type": "text"}, "x" * 256, "longer than 255 bytes"),
    ({"type": "text"}, {"a": 1}, "an object or list is not text"),
    ({"type": "number"}, "twelve", "not a number"), ({"type": "number"}, True, "not a number"),
    ({"type": "date"}, "next tuesday", "not a date"),
    ({"type": "birthday"}, "13/45", "not a month/day"),
    ({"type": "address"}, "1 Main St", "an address must be an object"),
    ({"type": "address"}, {"addr1": "1 Main St"}, "address lacks city, state, zip"),
    ({"type": "url"}, "example.com", "not an http(s) URL"),
    ({"type": "zip"}, "ABCDE", "not a US ZIP code"),
    (CHOICES, "gold", "not one of the field's choices"),
])
def test_values_that_do_not_fit_say_why(field, value, why):
    with pytest.raises(Unconvertible, match=re.escape(why)):
        convert(value, field)


def test_prepare_keeps_what_fits_and_reports_the_rest():
    catalog = {"FNAME": {"type": "text"}, "SCORE": {"type": "number"}}
    assert prepare({"FNAME": "Ada", "SCORE": "lots", "COMPANY": "X"}, catalog) == (
        {"FNAME": "Ada"}, ["COMPANY"], {"SCORE": "not a number"})


def test_catalog_reads_every_page_and_refreshes_after_its_interval():
    fields = [{"tag": f"F{n}", "name": f"Field {n}", "type": "text"} for n in range(25)]
    seed = {"lists": [{"id": "l1", "name": "L", "merge_fields": fields, "members": []}]}
    now = [0.0]
    with MailchimpEmulator(seed=seed, api_key=API_KEY) as emu:
        client = MailchimpClient(emu.base_url, Credentials("api_key", API_KEY))
        catalog = MergeFieldCatalog(client, refresh_s=60, clock=lambda: now[0])
        assert sorted(catalog.fields("l1")) == sorted(f["tag"] for f in fields)
        catalog.fields("l1")
        now[0] = 61.0
        catalog.fields("l1")
        calls = emu.stats["requests"]["GET /3.0/lists/{list_id}/merge-fields"]
    assert calls == 2  # once, then once more after the refresh interval


def test_a_failed_refresh_keeps_the_cached_catalog(caplog):
    seed = {"lists": [{"id": "l1", "name": "L", "members": [], "merge_fields": [
        {"tag": "FNAME", "name": "First name", "type": "text"}]}]}
    now = [0.0]
    with MailchimpEmulator(seed=seed, api_key=API_KEY) as emu:
        client = MailchimpClient(emu.base_url, Credentials("api_key", API_KEY),
                                 retry=RetryPolicy(attempts=1))
        catalog = MergeFieldCatalog(client, refresh_s=60, clock=lambda: now[0])
        assert list(catalog.fields("l1")) == ["FNAME"]
    now[0] = 61.0  # the emulator is gone: the refresh cannot connect
    assert list(catalog.fields("l1")) == ["FNAME"]
    assert "refresh failed" in caplog.text
    with pytest.raises(DeliveryFailed):  # nothing cached for this one
        catalog.fields("l2")
