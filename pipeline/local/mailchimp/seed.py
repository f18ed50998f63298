"""Loading the emulator's starting state from a seed document:
{"lists": [{"id", "name", "double_optin", "merge_fields": [{"tag", "name",
"type", "required", "options"}], "marketing_permissions":
[{"marketing_permission_id", "text"}], "members": [{"email_address",
"status", "merge_fields", "tags": [name, ...], "marketing_permissions":
[{"marketing_permission_id", "enabled"}]}]}], "forgotten": ["email", ...]}."""
from __future__ import annotations

from typing import Any, Mapping

from pipeline.local.mailchimp import bodies, tags
from pipeline.local.mailchimp.audience import Audience, Member, utc_now
from pipeline.local.mailchimp.identity import check_email
from pipeline.local.mailchimp.problems import ApiError, FieldError, InvalidFields
from pipeline.local.mailchimp.service import AudienceService

# What a seed member may carry besides its address, status and merge fields.
_MEMBER_EXTRAS = bodies.obj({"tags": bodies.TAG_NAMES,
                             "marketing_permissions": bodies.MEMBER_PERMISSIONS})


def load_seed(seed: Mapping[str, Any] | None) -> AudienceService:
    """The service holding the seed's state; ValueError naming what is
    wrong with a bad seed. Seed merge fields and members pass the API's
    own checks."""
    seed = seed or {}
    audiences: dict[str, Audience] = {}
    for entry in seed.get("lists", []):
        if "id" not in entry:
            raise ValueError("seed: every list needs an id")
        try:
            audience = _audience(entry)
        except (ApiError, InvalidFields) as exc:  # a fake-looking member is an ApiError
            problems = "; ".join(f"{e.field}: {e.message}" for e in exc.errors)
            raise ValueError(f"seed list {entry['id']}: {exc.detail}"
                             + (f" ({problems})" if problems else "")) from None
        audiences[audience.id] = audience
    return AudienceService(audiences, set(seed.get("forgotten", [])))


def _audience(entry: Mapping[str, Any]) -> Audience:
    audience = Audience(entry["id"], entry.get("name", entry["id"]),
                        bool(entry.get("double_optin", False)))
    for definition in entry.get("merge_fields", []):
        bodies.validate(bodies.MERGE_FIELD, definition)
        audience.add_merge_field(definition)
    for permission in entry.get("marketing_permissions", []):
        _add_permission(audience, permission)
    for member in entry.get("members", []):
        _add_member(audience, member)
    return audience


def _add_permission(audience: Audience, entry: Mapping[str, Any]) -> None:
    permission_id, text = entry.get("marketing_permission_id"), entry.get("text", "")
    if not (isinstance(permission_id, str) and permission_id and isinstance(text, str)):
        raise ValueError(f"seed list {audience.id}: a marketing permission needs a "
                         "marketing_permission_id and a text (strings)")
    if permission_id in audience.permissions.texts:
        raise ValueError(f"seed list {audience.id}: marketing permission {permission_id} "
                         "is defined twice")
    audience.permissions.texts[permission_id] = text


def _add_member(audience: Audience, entry: Mapping[str, Any]) -> None:
    email = check_email(entry.get("email_address"))
    status = entry.get("status", "subscribed")
    if status not in bodies.MEMBER_STATUSES:
        raise InvalidFields([FieldError("status", f"unknown status {status!r}")])
    bodies.validate(_MEMBER_EXTRAS, entry)
    member = Member(email, status, audience.normalise(entry.get("merge_fields")),
                    consents=audience.permissions.changes(entry.get("marketing_permissions")))
    tags.activate(member.tags, audience.tags, entry.get("tags", []), utc_now())
    audience.members[member.hash] = member
