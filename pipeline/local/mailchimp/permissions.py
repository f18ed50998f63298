"""An audience's marketing permissions (GDPR) and members' consent to them.

An audience with GDPR fields has permissions, each an id and a text; every
member shows every permission, `enabled` false until a member body enables
it. A body naming an id the audience does not have is refused as Invalid
Resource, with a detail naming the id (the emulator's wording: Mailchimp's
own is not recorded here).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from pipeline.local.mailchimp.problems import FieldError, InvalidFields

FIELD = "marketing_permissions"


@dataclass
class MarketingPermissions:
    """The permissions of one audience: text by id, in their order."""

    texts: dict[str, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.texts)

    def changes(self, entries: Sequence[Mapping[str, Any]] | None) -> dict[str, bool]:
        """The consents a (validated) member body sets, by permission id;
        InvalidFields naming each id the audience does not have, before
        anything changes."""
        changes: dict[str, bool] = {}
        errors: list[FieldError] = []
        for index, entry in enumerate(entries or ()):
            permission_id = entry.get("marketing_permission_id")
            path = f"{FIELD}[{index}].marketing_permission_id"
            if permission_id is None:
                errors.append(FieldError(
                    path, "Each marketing permission needs its marketing_permission_id."))
            elif permission_id not in self.texts:
                errors.append(FieldError(
                    path, f"The marketing permission {permission_id} does not exist "
                          "in this audience."))
            elif "enabled" in entry:
                changes[permission_id] = entry["enabled"]
        if errors:
            raise InvalidFields(errors, detail="; ".join(e.message for e in errors))
        return changes

    def member_json(self, enabled: Mapping[str, bool]) -> list[dict[str, Any]]:
        return [{"marketing_permission_id": permission_id, "text": text,
                 "enabled": enabled.get(permission_id, False)}
                for permission_id, text in self.texts.items()]
