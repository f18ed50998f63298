"""An audience's tags and the tags on its members.

Tags belong to the audience (Mailchimp keeps each as a static segment with
an integer id); a member holds the ids of its active tags, each with the
moment it was added. Names match case-insensitively and keep the spelling
they were created with; setting an unknown name active creates the tag,
setting it inactive changes nothing. Names are 1-100 characters (the
emulator's model of Mailchimp's limit: blank names and longer ones are
refused as Invalid Resource).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

MAX_TAG_NAME = 100
# GET member shows at most this many; GET member tags shows them all.
MEMBER_JSON_TAGS = 50


def tag_name_problem(name: str) -> str | None:
    """What is wrong with a tag name, or None."""
    if not name.strip():
        return "Tag names must not be blank"
    if len(name) > MAX_TAG_NAME:
        return f"Tag names must be at most {MAX_TAG_NAME} characters long"
    return None


@dataclass
class AudienceTags:
    """The tags of one audience: ids by name, names by id."""

    _ids: dict[str, int] = field(default_factory=dict)  # by lower-cased name
    _names: dict[int, str] = field(default_factory=dict)  # as first spelt

    def find(self, name: str) -> int | None:
        return self._ids.get(name.lower())

    def find_or_create(self, name: str) -> int:
        tag_id = self.find(name)
        if tag_id is None:
            tag_id = self._ids[name.lower()] = len(self._names) + 1
            self._names[tag_id] = name
        return tag_id

    def name(self, tag_id: int) -> str:
        return self._names[tag_id]


def activate(member_tags: dict[int, str], audience_tags: AudienceTags,
             names: Iterable[str], now: str) -> None:
    for name in names:
        member_tags.setdefault(audience_tags.find_or_create(name), now)


def synced(member_tags: dict[int, str], audience_tags: AudienceTags,
           names: Iterable[str], now: str) -> dict[int, str]:
    """Exactly the tags `names` (batch subscribe's sync_tags); those the
    member had keep when they were added."""
    synced_tags: dict[int, str] = {}
    for name in names:
        tag_id = audience_tags.find_or_create(name)
        synced_tags.setdefault(tag_id, member_tags.get(tag_id, now))
    return synced_tags


def deactivate(member_tags: dict[int, str], audience_tags: AudienceTags,
               names: Iterable[str]) -> None:
    for name in names:
        tag_id = audience_tags.find(name)
        if tag_id is not None:
            member_tags.pop(tag_id, None)
