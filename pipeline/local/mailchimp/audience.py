"""One audience's state (merge fields, marketing permissions, tags, members,
member events) and the JSON the API shows of it."""
from __future__ import annotations

import copy
import datetime
import hashlib
from dataclasses import dataclass, field
from typing import Any

from pipeline.local.mailchimp.identity import subscriber_hash
from pipeline.local.mailchimp.merge_fields import (MergeField, default_tag,
                                                   normalise_values)
from pipeline.local.mailchimp.permissions import MarketingPermissions
from pipeline.local.mailchimp.problems import FieldError, InvalidFields
from pipeline.local.mailchimp.tags import MEMBER_JSON_TAGS, AudienceTags


def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


@dataclass
class Member:
    """A list member as stored: merge values hold only the fields set,
    consents only the permissions a body set, tags the active tags' ids
    (with when each was added) in the order they were added."""

    email_address: str
    status: str
    merge_values: dict[str, object]
    last_changed: str = field(default_factory=utc_now)
    # The address never changes (PATCH refuses to), so neither does its
    # hash: computed once, or handed over by a caller that has it already.
    hash: str = field(default="", repr=False, compare=False)
    consents: dict[str, bool] = field(default_factory=dict)
    tags: dict[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.hash = self.hash or subscriber_hash(self.email_address)


@dataclass
class Audience:
    """An audience (list): merge fields by tag, members and their events by
    subscriber hash."""

    id: str
    name: str
    double_optin: bool = False
    merge_fields: dict[str, MergeField] = field(default_factory=dict)
    permissions: MarketingPermissions = field(default_factory=MarketingPermissions)
    tags: AudienceTags = field(default_factory=AudienceTags)
    members: dict[str, Member] = field(default_factory=dict)
    events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # unique_email_id by subscriber hash: a digest per answer adds up in
    # batch subscribe's 500.
    _unique_ids: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    def add_merge_field(self, definition: dict[str, Any]) -> MergeField:
        """A new merge field from a (validated) definition; InvalidFields if
        its tag is taken."""
        merge_id = max((f.merge_id for f in self.merge_fields.values()), default=0) + 1
        tag = str(definition.get("tag") or default_tag(definition["name"], merge_id)).upper()
        if tag in self.merge_fields:
            raise InvalidFields(
                [FieldError("tag", f"A merge field with the tag {tag} already exists.")])
        merge_field = MergeField(
            merge_id, tag, definition["name"], definition["type"],
            bool(definition.get("required", False)), dict(definition.get("options") or {}))
        self.merge_fields[tag] = merge_field
        return merge_field

    def normalise(self, merge_values: dict[str, object] | None) -> dict[str, object]:
        return normalise_values(self.merge_fields, merge_values or {})

    def member_json(self, member: Member,
                    tag_limit: int | None = MEMBER_JSON_TAGS) -> dict[str, Any]:
        """Every merge field of the audience shows, "" when not set, as
        Mailchimp answers; so does every marketing permission, when the
        audience has any; tags show up to `tag_limit` (Mailchimp's 50),
        `tags_count` counts them all."""
        values = member.merge_values
        merge_fields = {tag: _copied(values.get(tag, "")) for tag in self.merge_fields}
        shown = list(member.tags)[:tag_limit] if tag_limit is not None else member.tags
        answer = {
            "id": member.hash,
            "email_address": member.email_address,
            "unique_email_id": self._unique_email_id(member),
            "status": member.status,
            "merge_fields": merge_fields,
            "tags": [{"id": tag_id, "name": self.tags.name(tag_id)} for tag_id in shown],
            "tags_count": len(member.tags),
            "list_id": self.id,
            "last_changed": member.last_changed,
        }
        if self.permissions:
            answer["marketing_permissions"] = self.permissions.member_json(member.consents)
        return answer

    def member_tags_json(self, member: Member) -> list[dict[str, Any]]:
        return [{"id": tag_id, "name": self.tags.name(tag_id), "date_added": added}
                for tag_id, added in member.tags.items()]

    def list_json(self) -> dict[str, Any]:
        subscribed = sum(1 for m in self.members.values() if m.status == "subscribed")
        return {"id": self.id, "name": self.name, "double_optin": self.double_optin,
                "marketing_permissions": bool(self.permissions),
                "stats": {"member_count": subscribed}}

    def snapshot(self) -> dict[str, Any]:
        return {
            "members": {h: self.member_json(m, tag_limit=None) for h, m in self.members.items()},
            "events": copy.deepcopy(self.events),
        }

    def _unique_email_id(self, member: Member) -> str:
        # Mailchimp's is an opaque 10-hex-digit id per list and address;
        # derived here so that it is stable across runs.
        unique_id = self._unique_ids.get(member.hash)
        if unique_id is None:
            digest = hashlib.sha1(f"{self.id}:{member.hash}".encode(), usedforsecurity=False)
            unique_id = self._unique_ids[member.hash] = digest.hexdigest()[:10]
        return unique_id


def _copied(value: object) -> object:
    """A stored merge value the answer may hand out: values are strings and
    numbers, or an address's dict of strings, the one mutable kind (a
    deepcopy per value costs more than the rest of the answer)."""
    return dict(value) if isinstance(value, dict) else value
