"""A sync: one named configuration of what to send to one Mailchimp audience.

Every rule of the sync config lives here as data, validated by pydantic, so a
bad config fails at start-up with a message that names the offending key.
"""
from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Optional

from pydantic import (AfterValidator, BaseModel, ConfigDict, Field,
                      StringConstraints, ValidationInfo, field_validator,
                      model_validator)

FilterOp = Literal[
    "is_set", "is_not_set", "equals", "not_equals", "in", "not_in", "contains",
    "greater_than", "less_than"]
_OPS_WITHOUT_VALUE = {"is_set", "is_not_set"}
_OPS_WITH_LIST = {"in", "not_in"}

# Top-level fields of an Amplitude HTTP API v2 event (plus `time`), the only
# property paths that are not under event_properties./user_properties.
TOP_LEVEL_FIELDS = frozenset({
    "user_id", "device_id", "event_type", "time", "insert_id", "session_id",
    "app_version", "platform", "os_name", "os_version", "device_brand",
    "device_manufacturer", "device_model", "carrier", "country", "region",
    "city", "dma", "language", "price", "quantity", "revenue", "product_id",
    "revenue_type", "location_lat", "location_lng", "ip", "idfa", "idfv", "adid",
    "android_id", "event_id", "library", "groups",
})
_NESTED_PREFIXES = ("event_properties.", "user_properties.", "attributes.")
_MERGE_TAG = re.compile(r"^[A-Z0-9_]{1,10}$")
TAG_MAX_CHARS = 100  # Mailchimp's limit on a tag name
# The types POST /lists/{id}/merge-fields accepts.
MergeFieldType = Literal[
    "text", "number", "address", "phone", "date", "url", "imageurl", "radio",
    "dropdown", "birthday", "zip"]
# A name that is not blank: a user property, a permission id, a cohort.
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


def check_property_path(path: str) -> str:
    """A property path is a top-level event field, `event_properties.NAME`,
    `user_properties.NAME` or `attributes.NAME` (of a Pub/Sub message)."""
    if path in TOP_LEVEL_FIELDS:
        return path
    for prefix in _NESTED_PREFIXES:
        if path.startswith(prefix) and len(path) > len(prefix):
            return path
    raise ValueError(
        f"unknown property path {path!r}: use a top-level event field "
        f"(e.g. user_id, platform, country), event_properties.NAME, "
        f"user_properties.NAME or attributes.NAME (Pub/Sub message attributes)")


def property_key(path: str) -> str:
    """The key a projected property is sent under: the last path segment."""
    return path.rsplit(".", 1)[-1]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Filter(_Strict):
    """One condition on an event; a sync's filters must all hold."""
    property: str
    op: FilterOp
    value: Any = None

    _check_path = field_validator("property")(check_property_path)

    @model_validator(mode="after")
    def _value_fits_op(self) -> "Filter":
        if self.op in _OPS_WITHOUT_VALUE:
            if self.value is not None:
                raise ValueError(f"op {self.op!r} takes no value")
        elif self.op in _OPS_WITH_LIST:
            if not isinstance(self.value, list) or not self.value:
                raise ValueError(f"op {self.op!r} needs a non-empty list value")
        elif self.value is None:
            raise ValueError(f"op {self.op!r} needs a value")
        elif self.op in ("greater_than", "less_than") and (
                isinstance(self.value, bool)
                or not isinstance(self.value, (int, float))):
            raise ValueError(f"op {self.op!r} needs a numeric value")
        return self


class SendEvents(_Strict):
    enabled: bool = False
    event_types: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    filters: list[Filter] = Field(default_factory=list)
    properties: list[str] = Field(default_factory=list)
    occurred_at: Literal["ingestion", "event_time"] = "ingestion"
    # Mailchimp's is_syncing: true means "don't trigger automations"; for backfills.
    is_syncing: bool = False

    _check_paths = field_validator("properties")(
        lambda paths: [check_property_path(p) for p in paths])

    @field_validator("properties")
    @classmethod
    def _keys_do_not_collide(cls, paths: list[str]) -> list[str]:
        seen: dict[str, str] = {}
        for path in paths:
            key = property_key(path)
            if key in seen:
                raise ValueError(
                    f"{seen[key]!r} and {path!r} would both be sent as {key!r}")
            seen[key] = path
        return paths

    def selects(self, event_type: str) -> bool:
        return "*" in self.event_types or event_type in self.event_types


def _check_merge_tag(tag: str) -> str:
    if not _MERGE_TAG.match(tag):
        raise ValueError(f"{tag!r} is not a Mailchimp merge tag (A-Z, 0-9, _; "
                         f"at most 10 characters)")
    return tag


def _check_tag_name(name: str) -> str:
    """A Mailchimp tag name, trimmed: 1 to TAG_MAX_CHARS characters."""
    trimmed = name.strip()
    if not trimmed:
        raise ValueError("a tag name is empty")
    if len(trimmed) > TAG_MAX_CHARS:
        raise ValueError(f"tag {trimmed[:30] + '...'!r} is {len(trimmed)} "
                         f"characters long; Mailchimp allows at most "
                         f"{TAG_MAX_CHARS}")
    return trimmed


MergeTag = Annotated[str, AfterValidator(_check_merge_tag)]
TagName = Annotated[str, AfterValidator(_check_tag_name)]


class SendUsers(_Strict):
    enabled: bool = False
    # User property names, each sent as the merge field with the same tag.
    properties: list[MergeTag] = Field(default_factory=list)
    # Made active on every member the sync upserts.
    tags: list[TagName] = Field(default_factory=list)
    # A user property holding a tag name or a list of names, made active.
    tags_property: Optional[Name] = None
    # GDPR marketing permission id -> the boolean user property that grants it.
    marketing_permissions: dict[Name, Name] = Field(default_factory=dict)
    # The type `check --create_merge_fields` gives a missing field (else text).
    merge_field_types: dict[MergeTag, MergeFieldType] = Field(default_factory=dict)

    @field_validator("properties")
    @classmethod
    def _tags_once(cls, tags: list[str]) -> list[str]:
        if len(set(tags)) != len(tags):
            raise ValueError("a merge tag is listed twice")
        return tags

    @field_validator("tags")
    @classmethod
    def _names_once(cls, names: list[str]) -> list[str]:
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"tag(s) listed twice: {', '.join(twice)}")
        return names

    @field_validator("merge_field_types")
    @classmethod
    def _typed_fields_are_sent(cls, types: dict[str, str],
                               info: ValidationInfo) -> dict[str, str]:
        sent = info.data.get("properties")
        if sent is None:  # properties failed validation: said already
            return types
        unsent = [tag for tag in types if tag not in sent]
        if unsent:
            # A type for a field the sync never sends is a slip.
            raise ValueError(f"{', '.join(unsent)}: not in send_users.properties "
                             f"(a type is for a merge field the sync sends)")
        return types


class SendCohorts(_Strict):
    """Amplitude cohort messages: each user's member gets the tag named after
    the cohort, active on entry and inactive on exit."""
    enabled: bool = False
    # Cohort names or ids; "*" selects every cohort.
    cohorts: list[Name] = Field(default_factory=lambda: ["*"], min_length=1)
    # True: a user not in the audience is created (with status_if_new).
    create_members: bool = False

    def selects(self, cohort_name: Optional[str],
                cohort_id: Optional[str] = None) -> bool:
        return "*" in self.cohorts or any(
            c is not None and c in self.cohorts for c in (cohort_name, cohort_id))


class Sync(_Strict):
    name: str = Field(min_length=1)
    enabled: bool = True
    audience_id: str = Field(min_length=1)
    status_if_new: Literal[
        "subscribed", "pending", "unsubscribed", "transactional"] = "subscribed"
    email_property: str = Field(default="email", min_length=1)
    send_events: SendEvents = Field(default_factory=SendEvents)
    send_users: SendUsers = Field(default_factory=SendUsers)
    send_cohorts: SendCohorts = Field(default_factory=SendCohorts)

    @model_validator(mode="after")
    def _sends_something(self) -> "Sync":
        if self.enabled and not (self.send_events.enabled or self.send_users.enabled
                                 or self.send_cohorts.enabled):
            raise ValueError("enable send_events, send_users or send_cohorts "
                             "(or set enabled: false)")
        return self


class SyncConfig(_Strict):
    syncs: list[Sync] = Field(min_length=1)

    @field_validator("syncs")
    @classmethod
    def _names_unique_and_one_enabled(cls, syncs: list[Sync]) -> list[Sync]:
        names = [s.name for s in syncs]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate sync name(s): {', '.join(duplicates)}")
        if not any(s.enabled for s in syncs):
            raise ValueError("no sync is enabled")
        return syncs

    @property
    def enabled(self) -> list[Sync]:
        return [s for s in self.syncs if s.enabled]
