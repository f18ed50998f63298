"""The audience operations of the Marketing API over in-memory state.

One lock makes every operation atomic, and every check comes before the
first change: a rejected request changes nothing.
"""
from __future__ import annotations

import copy
import threading
from typing import Any, Mapping, Sequence

from pipeline.local.mailchimp import bodies, tags
from pipeline.local.mailchimp.audience import Audience, Member, utc_now
from pipeline.local.mailchimp.identity import check_email, subscriber_hash
from pipeline.local.mailchimp.merge_fields import check_required
from pipeline.local.mailchimp.problems import (ApiError, FieldError, InvalidFields,
                                               MemberExists, not_found)

# People who unsubscribed or bounced can only opt in again themselves.
_COMPLIANCE_STATES = frozenset({"unsubscribed", "cleaned"})
_OPT_IN_STATES = frozenset({"subscribed", "pending"})


class AudienceService:
    """Lists, merge fields, members and member events, as the API's
    operations read and change them."""

    def __init__(self, audiences: Mapping[str, Audience], forgotten: set[str]):
        self._audiences = dict(audiences)
        self._forgotten = {email.lower() for email in forgotten}
        self._lock = threading.Lock()

    def list_info(self, list_id: str) -> dict[str, Any]:
        with self._lock:
            return self._audience(list_id).list_json()

    def merge_fields_page(self, list_id: str, count: int, offset: int) -> dict[str, Any]:
        with self._lock:
            audience = self._audience(list_id)
            fields = list(audience.merge_fields.values())
            return {"merge_fields": [f.to_json(list_id) for f in fields[offset:offset + count]],
                    "list_id": list_id, "total_items": len(fields)}

    def create_merge_field(self, list_id: str, body: object) -> dict[str, Any]:
        with self._lock:
            audience = self._audience(list_id)
            bodies.validate(bodies.MERGE_FIELD, body)
            assert isinstance(body, dict)
            return audience.add_merge_field(body).to_json(list_id)

    def member(self, list_id: str, member_hash: str) -> dict[str, Any]:
        with self._lock:
            audience = self._audience(list_id)
            return audience.member_json(self._member(audience, member_hash))

    def upsert_member(self, list_id: str, member_hash: str, body: object, *,
                      skip_merge_validation: bool) -> dict[str, Any]:
        """PUT: add the member, or update it if it exists."""
        with self._lock:
            audience = self._audience(list_id)
            bodies.validate(bodies.PUT_MEMBER, body)
            assert isinstance(body, dict)
            email = check_email(body["email_address"])
            if subscriber_hash(email) != member_hash:
                raise InvalidFields([FieldError(
                    "email_address",
                    "The email address does not match the subscriber hash in the path.")])
            # PUT's body has no tags (the document's): any sent are ignored.
            member, _ = self._write_member(
                audience, email, body, utc_now(), update_existing=True,
                skip_merge_validation=skip_merge_validation,
                consents=audience.permissions.changes(body.get("marketing_permissions")))
            return audience.member_json(member)

    def add_member(self, list_id: str, body: object, *,
                   skip_merge_validation: bool) -> dict[str, Any]:
        """POST /lists/{id}/members: a new member; 400 "Member Exists" if
        there is one."""
        with self._lock:
            audience = self._audience(list_id)
            bodies.validate(bodies.ADD_MEMBER, body)
            assert isinstance(body, dict)
            member, _ = self._write_member(
                audience, check_email(body["email_address"]), body, utc_now(),
                update_existing=False, skip_merge_validation=skip_merge_validation,
                consents=audience.permissions.changes(body.get("marketing_permissions")),
                tag_names=body.get("tags") or ())
            return audience.member_json(member)

    def members_page(self, list_id: str, count: int, offset: int) -> dict[str, Any]:
        """GET /lists/{id}/members: members in the order they were added."""
        with self._lock:
            audience = self._audience(list_id)
            members = list(audience.members.values())[offset:offset + count]
            return {"members": [audience.member_json(m) for m in members],
                    "list_id": list_id, "total_items": len(audience.members)}

    def update_member(self, list_id: str, member_hash: str, body: object) -> dict[str, Any]:
        """PATCH: change an existing member's merge fields or status."""
        with self._lock:
            audience = self._audience(list_id)
            member = self._member(audience, member_hash)
            bodies.validate(bodies.PATCH_MEMBER, body)
            assert isinstance(body, dict)
            email = body.get("email_address")
            if email is not None and email.lower() != member.email_address.lower():
                raise InvalidFields([FieldError(
                    "email_address", "The emulator cannot change a member's email address.")])
            values = audience.normalise(body.get("merge_fields"))
            consents = audience.permissions.changes(body.get("marketing_permissions"))
            status = body.get("status")
            _check_status_change(member, status)
            _apply(member, status, values, consents, utc_now())
            return audience.member_json(member)

    def update_member_tags(self, list_id: str, member_hash: str, body: object) -> None:
        """POST .../tags: each tag made active (created if the audience lacks
        it) or inactive, in the body's order."""
        with self._lock:
            audience = self._audience(list_id)
            member = self._member(audience, member_hash)
            bodies.validate(bodies.MEMBER_TAGS, body)
            assert isinstance(body, dict)
            now = utc_now()
            for tag in body["tags"]:
                if tag["status"] == "active":
                    tags.activate(member.tags, audience.tags, (tag["name"],), now)
                else:
                    tags.deactivate(member.tags, audience.tags, (tag["name"],))

    def member_tags_page(self, list_id: str, member_hash: str, count: int,
                         offset: int) -> dict[str, Any]:
        with self._lock:
            audience = self._audience(list_id)
            member = self._member(audience, member_hash)
            every_tag = audience.member_tags_json(member)
            return {"tags": every_tag[offset:offset + count], "total_items": len(every_tag)}

    def batch_subscribe(self, list_id: str, body: object, *, skip_merge_validation: bool,
                        skip_duplicate_check: bool) -> dict[str, Any]:
        """POST /lists/{id}: each member added or updated on its own; a
        member's failure is an entry of `errors`, not a failed request."""
        # The audiences are fixed at start and the body is the request's
        # own: both checks run outside the lock, which then covers only the
        # writes (500 members' checks under it would hold up every other
        # request for as long).
        audience = self._audience(list_id)
        bodies.validate(bodies.BATCH_SUBSCRIBE, body)
        assert isinstance(body, dict)
        with self._lock:
            created: list[dict[str, Any]] = []
            updated: list[dict[str, Any]] = []
            errors: list[dict[str, Any]] = []
            seen: set[str] = set()
            update_existing = bool(body.get("update_existing"))
            sync_tags = bool(body.get("sync_tags"))
            now = utc_now()  # one request, one moment
            for entry in body["members"]:
                email = entry.get("email_address")
                key = email.lower() if isinstance(email, str) else ""
                if skip_duplicate_check and key in seen:
                    continue  # the first appearance wins
                seen.add(key)
                try:
                    # The document's batch member has no marketing_permissions:
                    # any sent are ignored.
                    member, is_new = self._write_member(
                        audience, check_email(email), entry, now,
                        update_existing=update_existing,
                        skip_merge_validation=skip_merge_validation,
                        tag_names=_batch_tag_names(entry),
                        sync_tags=sync_tags and entry.get("tags") is not None)
                except (ApiError, InvalidFields) as exc:
                    errors.append(_batch_error(email, exc))
                    continue
                (created if is_new else updated).append(audience.member_json(member))
            return {"new_members": created, "updated_members": updated, "errors": errors,
                    "total_created": len(created), "total_updated": len(updated),
                    "error_count": len(errors)}

    def add_event(self, list_id: str, member_hash: str, body: object) -> None:
        with self._lock:
            audience = self._audience(list_id)
            self._member(audience, member_hash)
            bodies.validate(bodies.MEMBER_EVENT, body)
            assert isinstance(body, dict)
            audience.events.setdefault(member_hash, []).append({
                "name": body["name"],
                "properties": dict(body.get("properties") or {}),
                "occurred_at": body.get("occurred_at") or utc_now(),
                "is_syncing": bool(body.get("is_syncing", False)),
            })

    def events_page(self, list_id: str, member_hash: str, count: int,
                    offset: int) -> dict[str, Any]:
        with self._lock:
            audience = self._audience(list_id)
            self._member(audience, member_hash)
            events = audience.events.get(member_hash, [])
            page = [{"name": e["name"], "properties": dict(e["properties"]),
                     "occurred_at": e["occurred_at"]} for e in events[offset:offset + count]]
            return {"events": page, "total_items": len(events)}

    def find_member(self, list_id: str, member_hash: str) -> dict[str, Any] | None:
        """The member as GET member shows it, or None (no 404: for inspection)."""
        with self._lock:
            audience = self._audiences.get(list_id)
            member = audience.members.get(member_hash) if audience else None
            return audience.member_json(member) if audience and member else None

    def find_tags(self, list_id: str, member_hash: str) -> list[str]:
        """The member's active tag names, [] without such a member (for
        inspection)."""
        with self._lock:
            audience = self._audiences.get(list_id)
            member = audience.members.get(member_hash) if audience else None
            if audience is None or member is None:
                return []
            return [audience.tags.name(tag_id) for tag_id in member.tags]

    def find_events(self, list_id: str, member_hash: str) -> list[dict[str, Any]]:
        """The member's stored events, is_syncing included (for inspection)."""
        with self._lock:
            audience = self._audiences.get(list_id)
            return copy.deepcopy(audience.events.get(member_hash, [])) if audience else []

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"lists": {list_id: audience.snapshot()
                              for list_id, audience in self._audiences.items()}}

    def _audience(self, list_id: str) -> Audience:
        audience = self._audiences.get(list_id)
        if audience is None:
            raise not_found()
        return audience

    @staticmethod
    def _member(audience: Audience, member_hash: str) -> Member:
        member = audience.members.get(member_hash)
        if member is None:
            raise not_found()
        return member

    def _write_member(self, audience: Audience, email: str, entry: Mapping[str, Any],
                      now: str, *, update_existing: bool, skip_merge_validation: bool,
                      consents: Mapping[str, bool] | None = None,
                      tag_names: Sequence[str] = (),
                      sync_tags: bool = False) -> tuple[Member, bool]:
        """Add or update one member from a PUT or POST body or batch entry
        (whose email, consents and tag names have been checked).
        `status_if_new` only applies to a new member; `status` applies to
        both, which is how batch subscribe's update_existing overwrites
        existing members' status. Tags are made active, or with `sync_tags`
        become exactly `tag_names`."""
        if email.lower() in self._forgotten:
            raise ApiError(400, "Forgotten Email Not Subscribed",
                           f"{email} was permanently deleted and cannot be re-imported. "
                           "The contact must re-subscribe to get back on the list.")
        member_hash = subscriber_hash(email)
        member = audience.members.get(member_hash)
        if member is not None and not update_existing:
            raise MemberExists(email)
        values = audience.normalise(entry.get("merge_fields"))
        status = entry.get("status")
        if member is None:
            if not skip_merge_validation:
                check_required(audience.merge_fields, values)
            member = Member(email, status or entry["status_if_new"], values, now, member_hash,
                            dict(consents or {}))
            audience.members[member_hash] = member
            is_new = True
        else:
            _check_status_change(member, status)
            _apply(member, status, values, consents or {}, now)
            is_new = False
        if sync_tags:
            member.tags = tags.synced(member.tags, audience.tags, tag_names, now)
        else:
            tags.activate(member.tags, audience.tags, tag_names, now)
        return member, is_new


def _check_status_change(member: Member, status: str | None) -> None:
    if status in _OPT_IN_STATES and member.status in _COMPLIANCE_STATES:
        raise ApiError(400, "Member In Compliance State",
                       f"{member.email_address} is in a compliance state due to unsubscribe, bounce, "
                       "or compliance review and cannot be subscribed.")


def _apply(member: Member, status: str | None, values: dict[str, object],
           consents: Mapping[str, bool], now: str) -> None:
    if status:
        member.status = status
    member.merge_values.update(values)
    member.consents.update(consents)
    member.last_changed = now


def _batch_tag_names(entry: Mapping[str, Any]) -> Sequence[str]:
    """A batch member's tag names (their types checked with the body); a
    bad name fails that member alone."""
    names = entry.get("tags")
    if not names:
        return ()
    errors = bodies.TAG_NAMES("tags", names)
    if errors:
        raise InvalidFields(errors)
    return names


def _batch_error(email: object, exc: ApiError | InvalidFields) -> dict[str, Any]:
    first = exc.errors[0] if exc.errors else FieldError("", "")
    return {
        "email_address": email if isinstance(email, str) else "",
        "error": exc.detail,
        "error_code": "ERROR_CONTACT_EXISTS" if isinstance(exc, MemberExists) else "ERROR_GENERIC",
        "field": first.field,
        "field_message": first.message,
    }
