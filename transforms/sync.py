"""A sync: one named configuration of what to send to one Mailchimp audience.

Every rule of the sync config lives here as data, validated by pydantic, so a
bad config fails at start-up with a message that names the offending key.
"""
from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

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


class SendUsers(_Strict):
    enabled: bool = False
    # User property names, each sent as the merge field with the same tag.
    properties: list[str] = Field(default_factory=list)

    @field_validator("properties")
    @classmethod
    def _are_merge_tags(cls, tags: list[str]) -> list[str]:
        for tag in tags:
            if not _MERGE_TAG.match(tag):
                raise ValueError(
                    f"{tag!r} is not a Mailchimp merge tag (A-Z, 0-9, _; "
                    f"at most 10 characters)")
        if len(set(tags)) != len(tags):
            raise ValueError("a merge tag is listed twice")
        return tags


class Sync(_Strict):
    name: str = Field(min_length=1)
    enabled: bool = True
    audience_id: str = Field(min_length=1)
    status_if_new: Literal[
        "subscribed", "pending", "unsubscribed", "transactional"] = "subscribed"
    email_property: str = Field(default="email", min_length=1)
    send_events: SendEvents = Field(default_factory=SendEvents)
    send_users: SendUsers = Field(default_factory=SendUsers)

    @model_validator(mode="after")
    def _sends_something(self) -> "Sync":
        if self.enabled and not (self.send_events.enabled or self.send_users.enabled):
            raise ValueError(
                "enable send_events or send_users (or set enabled: false)")
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
