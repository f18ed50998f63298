"""`python -m pipeline check`: is every enabled sync ready to run?

One row per thing a run relies on: the credentials, each audience, each
merge field `send_users.properties` writes (and the type its values are
converted to), the tags, the event names Mailchimp would refuse, the
marketing permission ids. Exit 0 when all is ready, 2 otherwise. It only
reads, except that `--create_merge_fields` adds the missing merge fields.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Iterable, Iterator, Optional

from pipeline.cli import UsageError, UsageErrorParser, prog, unknown_flags
from pipeline.config import ConfigError, load_config
from pipeline.options import MailchimpStreamOptions, problems
from pipeline.preflight import (PreflightError, account_problem,
                                mailchimp_client, no_such_audience)
from transforms.mailchimp.client import MailchimpClient
from transforms.mailchimp.credentials import Endpoint
from transforms.mailchimp.errors import DeliveryFailed, MailchimpError
from transforms.project import event_name
from transforms.sync import TAG_MAX_CHARS, Sync, SyncConfig

OK, CREATED, WARN, MISSING, FAIL = "ok", "created", "warn", "MISSING", "FAIL"
NOT_READY = frozenset({MISSING, FAIL})
ACCOUNT = "(account)"  # the sync column of rows about the whole account
# The main command's flags that mean the same here (their help is reused).
SHARED_FLAGS = ("sync_config", "mailchimp_base_url", "mailchimp_api_key_secret")
PERMISSION_IDS_FIELD = "members.marketing_permissions"

# What a property's value becomes in a merge field of each type.
_CONVERTED_TO = {
    "text": "text (at most 255 bytes)",
    "phone": "text",
    "number": "a number",
    "date": "a date, YYYY-MM-DD",
    "birthday": "a birthday, MM/DD",
    "address": "an address (object with addr1, city, state, zip)",
    "url": "an http(s) URL",
    "imageurl": "an http(s) URL",
    "zip": "a five-digit US ZIP code",
}


@dataclasses.dataclass(frozen=True)
class Row:
    sync: str
    item: str
    status: str
    detail: str


def _parser() -> argparse.ArgumentParser:
    parser = UsageErrorParser(
        prog=f"{prog()} check", add_help=False, allow_abbrev=False,
        description="Is everything each enabled sync needs ready in "
                    "Mailchimp (credentials, audiences, merge fields, tags, "
                    "event names, marketing permission ids)? Prints a table; "
                    "exit status 0 when all is ready, 2 otherwise.",
        epilog="Credentials come from MAILCHIMP_API_KEY or "
               "MAILCHIMP_OAUTH_TOKEN, as for a run; they are never printed.")
    parser.add_argument("-h", "--help", action="store_true",
                        help="show this help and exit")
    main_flags = argparse.ArgumentParser(add_help=False)
    MailchimpStreamOptions._add_argparse_args(main_flags)
    for action in main_flags._actions:
        if action.dest in SHARED_FLAGS:
            parser._add_action(action)
    parser.add_argument(
        "--create_merge_fields", action="store_true",
        help="create each missing merge field (tag and name: the tag; type: "
             "send_users.merge_field_types, else text)")
    return parser


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        raise unknown_flags(unknown, parser, f"{prog()} check --help")
    if args.help:
        return args
    found = problems(MailchimpStreamOptions(
        flags=[], **{f: getattr(args, f) for f in SHARED_FLAGS}))
    if found:
        raise UsageError("; ".join(found))
    if not args.sync_config:
        raise UsageError("--sync_config is required")
    return args


def main(argv: list[str]) -> int:
    parser = _parser()
    try:
        args = _parse(parser, argv)
        if args.help:
            print(parser.format_help(), end="")
            return 0
        config = load_config(args.sync_config)
    except (UsageError, ConfigError) as e:
        print(f"{prog()} check: {e}", file=sys.stderr)
        return 2
    endpoint = Endpoint(args.mailchimp_base_url, args.mailchimp_api_key_secret)
    rows = check(endpoint, config, create_merge_fields=args.create_merge_fields)
    print(table(rows))
    failing = sum(row.status in NOT_READY for row in rows)
    print(f"not ready: {failing} problem{'s' if failing > 1 else ''} (rows "
          f"marked {' or '.join(sorted(NOT_READY))})" if failing else "ready",
          flush=True)
    return 2 if failing else 0


def table(rows: Iterable[Row]) -> str:
    """Plain text columns, the last one unpadded."""
    lines = [("sync", "item", "status", "detail")]
    lines += [(r.sync, r.item, r.status, r.detail) for r in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(3)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths))
        + "  " + line[3] for line in lines)


# --- the checks ---------------------------------------------------------------

def check(endpoint: Endpoint, config: SyncConfig, *,
          create_merge_fields: bool = False) -> list[Row]:
    """Every row; a failure that concerns the whole account (credentials
    refused, Mailchimp unreachable) is the last."""
    try:
        client = mailchimp_client(endpoint)
    except PreflightError as e:
        return [Row(ACCOUNT, "credentials", FAIL, str(e))]
    rows: list[Row] = []
    where, item = ACCOUNT, "credentials"
    try:
        client.ping()
        rows.append(Row(ACCOUNT, "credentials", OK,
                        f"accepted by {client.api_root}"))
        item = "mailchimp"
        for sync in config.enabled:
            where = sync.name
            rows.extend(_sync_rows(client, sync, create_merge_fields))
    except (MailchimpError, DeliveryFailed) as e:
        rows.append(Row(where, item, FAIL, account_problem(e, client.api_root)))
    finally:
        client.close()
    return rows


def _sync_rows(client: MailchimpClient, sync: Sync, create: bool) -> Iterator[Row]:
    try:
        audience = client.list_info(sync.audience_id)
    except MailchimpError as e:
        if e.status != 404:
            raise
        yield Row(sync.name, "audience", FAIL, no_such_audience(sync.audience_id))
        audience = None
    if audience is not None:
        yield Row(sync.name, "audience", OK,
                  f"{sync.audience_id}: {audience.get('name', '')!r}")
        if sync.send_users.enabled:
            yield from _merge_fields(client, sync, create)
            yield from _tags(sync)
            yield from _permissions(client, sync, audience)
    if sync.send_events.enabled:
        yield from _event_names(sync)


def _merge_fields(client: MailchimpClient, sync: Sync, create: bool) -> Iterator[Row]:
    users = sync.send_users
    catalog = {f["tag"]: f for f in client.merge_fields(sync.audience_id)}
    for tag in users.properties:
        item, wanted = f"merge field {tag}", users.merge_field_types.get(tag)
        field = catalog.get(tag)
        if field is not None:
            yield _present(sync.name, item, field, wanted)
        elif create:
            yield _create(client, sync, tag, wanted or "text")
        else:
            yield Row(sync.name, item, MISSING,
                      f"not in the audience, so never sent: create it "
                      f"(--create_merge_fields makes it {wanted or 'text'})")
    for tag, field in catalog.items():
        if field.get("required") and tag not in users.properties:
            yield Row(sync.name, f"merge field {tag}", WARN,
                      "required by the audience but not in "
                      "send_users.properties: new members will be refused")


def _present(sync: str, item: str, field: dict, wanted: Optional[str]) -> Row:
    kind = str(field.get("type", "text"))
    choices = (field.get("options") or {}).get("choices") or []
    into = (f"one of {', '.join(map(str, choices))}"
            if kind in ("radio", "dropdown") else _CONVERTED_TO.get(kind, "text"))
    detail = f"{kind}: values sent as {into}"
    if wanted and wanted != kind:
        return Row(sync, item, WARN, f"{detail} (merge_field_types says "
                                     f"{wanted}; the audience's type is used)")
    return Row(sync, item, OK, detail)


def _create(client: MailchimpClient, sync: Sync, tag: str, kind: str) -> Row:
    item = f"merge field {tag}"
    try:
        field = client.create_merge_field(
            sync.audience_id, {"tag": tag, "name": tag, "type": kind})
    except MailchimpError as e:
        if e.status in (401, 403):
            raise
        return Row(sync.name, item, FAIL, f"not created: {e.explanation}")
    except DeliveryFailed as e:
        return Row(sync.name, item, FAIL,
                   f"may not have been created ({e}): run check again")
    return Row(sync.name, item, CREATED,
               f"created, type {field.get('type', kind)}")


def _tags(sync: Sync) -> Iterator[Row]:
    users = sync.send_users
    for tag in users.tags:  # checked when the config was read
        yield Row(sync.name, f"tag {tag}", OK, "made active on every member "
                                               "the sync upserts")
    if users.tags_property:
        yield Row(sync.name, "tags_property", OK,
                  f"tags from user property {users.tags_property!r}; names "
                  f"empty or over {TAG_MAX_CHARS} characters are skipped")


def _permissions(client: MailchimpClient, sync: Sync, audience: dict) -> Iterator[Row]:
    wanted = sync.send_users.marketing_permissions
    item = "marketing permissions"
    if not audience.get("marketing_permissions"):
        if wanted:
            yield Row(sync.name, item, FAIL, "the audience has no marketing "
                                             "permissions (GDPR fields are off)")
        return
    known = _permission_ids(client, sync.audience_id)
    if known is None:
        # Not known to be wrong: the first member will tell.
        yield Row(sync.name, item, WARN,
                  "the audience has no member yet, so its permission ids "
                  "cannot be read" + (": " + ", ".join(wanted) + " not checked"
                                      if wanted else ""))
        return
    yield Row(sync.name, item, OK, "the audience's: " + ", ".join(
        f"{pid} ({text})" if text else pid for pid, text in known.items()))
    for pid, prop in wanted.items():
        if pid in known:
            yield Row(sync.name, f"permission {pid}", OK,
                      f"{known[pid] or pid}: from user property {prop!r}")
        else:
            yield Row(sync.name, f"permission {pid}", FAIL,
                      "not one of the audience's permission ids")


def _permission_ids(client: MailchimpClient, audience_id: str) -> Optional[dict[str, str]]:
    """{id: text} of the audience's marketing permissions, or None when it
    has no member: Mailchimp lists the ids only on members."""
    page = client.members_page(audience_id, count=1, fields=[PERMISSION_IDS_FIELD])
    if not page["members"]:
        return None
    return {str(p["marketing_permission_id"]): str(p.get("text") or "")
            for p in page["members"][0].get("marketing_permissions") or []
            if isinstance(p, dict) and p.get("marketing_permission_id")}


def _event_names(sync: Sync) -> Iterator[Row]:
    for event_type in sync.send_events.event_types:
        if event_type == "*":
            continue
        item, name = f"event {event_type}", event_name(event_type)
        if name is None:
            yield Row(sync.name, item, FAIL,
                      "Mailchimp refuses this name: 2-30 letters, digits, _ "
                      "or - (whitespace becomes _)")
        else:
            yield Row(sync.name, item, OK,
                      f"sent as {name}" if name != event_type else "valid name")
