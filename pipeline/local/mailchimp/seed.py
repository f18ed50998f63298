"""Loading the emulator's starting state from a seed document:
{"lists": [{"id", "name", "double_optin", "merge_fields": [{"tag", "name",
"type", "required", "options"}], "members": [{"email_address", "status",
"merge_fields"}]}], "forgotten": ["email", ...]}."""
from __future__ import annotations

from typing import Any, Mapping

from pipeline.local.mailchimp import bodies
from pipeline.local.mailchimp.audience import Audience, Member
from pipeline.local.mailchimp.identity import check_email
from pipeline.local.mailchimp.problems import ApiError, FieldError, InvalidFields
from pipeline.local.mailchimp.service import AudienceService


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
    for member in entry.get("members", []):
        _add_member(audience, member)
    return audience


def _add_member(audience: Audience, entry: Mapping[str, Any]) -> None:
    email = check_email(entry.get("email_address"))
    status = entry.get("status", "subscribed")
    if status not in bodies.MEMBER_STATUSES:
        raise InvalidFields([FieldError("status", f"unknown status {status!r}")])
    member = Member(email, status, audience.normalise(entry.get("merge_fields")))
    audience.members[member.hash] = member
