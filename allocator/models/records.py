"""The contract's records: the inputs (leads, patterns, clients, resources) and the allocation."""

from __future__ import annotations

import hashlib
import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from allocator.channels import RESOURCE_TYPE, Channel, ResourceType
from allocator.errors import ErrorCode, shown
from allocator.models.fields import (
    MAX_DAILY_LIMIT,
    ChannelField,
    ClockMinutes,
    Confidence,
    Count,
    Country,
    Day,
    DeferDays,
    Domain,
    EveryDays,
    Flag,
    Hour,
    Score,
    Text,
    Timestamp,
    Weekday,
    ZoneName,
    bounded,
    fail,
    zone,
)

_INPUT = ConfigDict(extra="ignore", frozen=True)

# Fixed namespace so event and allocation ids are stable across processes and versions.
_ID_NAMESPACE = uuid.UUID("6f1c2a9e-41d8-4a5e-9a53-0c7f1e2b8d44")


# The namespace's part of every id's hash, hashed once.
_NAMESPACE_SHA1 = hashlib.sha1(_ID_NAMESPACE.bytes)
# A hex digit -> the variant's digit with its top bits set to binary 10.
_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}


def derived_id(*parts: str) -> str:
    """A UUIDv5 of the parts: the same parts always give the same id.

    Length-prefixing keeps ("a|b", "c") and ("a", "b|c") apart. Computed as
    uuid.uuid5 does (RFC 4122 section 4.3; a test holds the two to the same
    ids), on the hex digest: this runs twice per lead.
    """
    sha1 = _NAMESPACE_SHA1.copy()
    if len(parts) == 2:  # an allocation's id, once a lead: 25% less without the join
        first, second = parts
        sha1.update(f"{len(first)}:{first}{len(second)}:{second}".encode())
    else:
        sha1.update("".join([f"{len(p)}:{p}" for p in parts]).encode())
    h = sha1.hexdigest()
    # The version (5) in the 13th hex digit; the variant (binary 10) in the
    # top bits of the 17th.
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:32]}"


# --- input records ---------------------------------------------------------


class ScoredLead(BaseModel):
    model_config = _INPUT

    event_id: Text | None = None
    lead_id: Text
    client_id: Text
    als_score: Score
    scored_at: Timestamp
    timezone: ZoneName | None = None
    # The recipient's mail domain (CONTRACT.md section 8), compared lower-cased.
    email_domain: Domain | None = None

    @model_validator(mode="after")
    def _derive_event_id(self) -> ScoredLead:
        if self.event_id is None:
            utc = self.scored_at.astimezone(zone("UTC")).isoformat()
            object.__setattr__(
                self, "event_id", derived_id("lead", self.lead_id, self.client_id, utc)
            )
        return self

    @property
    def key(self) -> str:
        """The idempotency key: event_id, given or derived."""
        assert self.event_id is not None
        return self.event_id


class WhenPattern(BaseModel):
    model_config = _INPUT

    client_id: Text
    pattern_type: Literal["when"] = "when"
    channel: ChannelField
    optimal_day: Weekday
    optimal_hour: Hour
    confidence: Confidence
    updated_at: Timestamp


class HowPattern(BaseModel):
    model_config = _INPUT

    client_id: Text
    pattern_type: Literal["how"] = "how"
    winning_sequence: list[ChannelField] = Field(min_length=1)
    confidence: Confidence
    updated_at: Timestamp

    @model_validator(mode="before")
    @classmethod
    def _channel_absent(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("channel") is not None:
            fail(
                ErrorCode.INVALID_FIELD,
                f"channel must be absent for a how pattern, got {shown(data['channel'])}",
            )
        return data

    @model_validator(mode="after")
    def _no_repeats(self) -> HowPattern:
        seen: set[Channel] = set()
        for channel in self.winning_sequence:
            if channel in seen:
                fail(ErrorCode.DUPLICATE_CHANNEL, f"winning_sequence repeats {channel.value!r}")
            seen.add(channel)
        return self


ConversionPattern = WhenPattern | HowPattern


Rotation = Literal["least_used", "least_loaded"]

ALL_DAYS = (0, 1, 2, 3, 4, 5, 6)


class SendWindow(BaseModel):
    """When a channel's sends may go out, in the send zone (CONTRACT.md section 9):
    on `days` (0 = Monday), from `start` up to (not including) `end`."""

    model_config = _INPUT

    days: list[Weekday] = Field(default_factory=lambda: list(ALL_DAYS), min_length=1)
    start: ClockMinutes
    end: ClockMinutes

    @model_validator(mode="after")
    def _end_after_start(self) -> SendWindow:
        if self.end <= self.start:
            fail(ErrorCode.INVALID_FIELD, "end must be after start (no window wraps midnight)")
        return self


class Pacing(BaseModel):
    """Sends of one resource from one slot go out `gap_seconds` apart."""

    model_config = _INPUT

    gap_seconds: Annotated[int, bounded(1, 86_400)]


class Client(BaseModel):
    model_config = _INPUT

    client_id: Text
    timezone: ZoneName = "UTC"
    max_defer_days: DeferDays = 3
    # Round 2 (CONTRACT.md section 8): which resource takes a send, and caps
    # across a client's resources.
    rotation: Rotation = "least_used"
    lead_daily_limit: Count | None = None
    recipient_domain_daily_limit: Count | None = None
    # CONTRACT.md section 9: when a send may go out. A channel missing from
    # send_windows keeps its default (sms and voice 08:00-21:00); null: none.
    send_windows: dict[ChannelField, SendWindow | None] = {}
    holidays: Country | None = None
    blackout_dates: list[Day] = Field(default=[], max_length=3660)
    pacing: dict[ChannelField, Pacing] = {}
    # CONTRACT.md section 10: what the dispatchers' feedback does.
    bounce_rate_limit: Confidence = 0.05
    complaint_limit: Annotated[int, bounded(1, MAX_DAILY_LIMIT)] = 3
    cooldown_hours: Annotated[int, bounded(1, 24 * 366)] = 24
    suppression_days: Annotated[int, bounded(0, 3660)] = 90
    sticky_days: Annotated[int, bounded(0, 366)] = 0
    sticky: Literal["prefer", "require"] = "prefer"


class Warmup(BaseModel):
    """A new sender's ramp, as loaded (quota/base.py Ramp.cap_on is the rule)."""

    model_config = _INPUT

    start: Day
    initial: Count
    step: Count
    every_days: EveryDays = 1


class Pool(BaseModel):
    """Mailboxes of one sending domain, numbers of one SMS brand: sends of all
    its resources together count against its limits too."""

    model_config = _INPUT

    client_id: Text
    channel: ChannelField
    pool_id: Text
    daily_limit: Count | None  # required (null: no daily cap), as the contract lists it
    weekly_limit: Count | None = None


_CHANNEL_NAMES = frozenset(channel.value for channel in Channel)


class Resource(BaseModel):
    model_config = _INPUT

    client_id: Text
    channel: ChannelField
    resource_id: Text
    daily_limit: Count | None = None
    active: Flag = True
    weekly_limit: Count | None = None  # the send day and the 6 days before it
    warmup: Warmup | None = None
    pool_id: Text | None = None

    @model_validator(mode="before")
    @classmethod
    def _type_matches_channel(cls, data: Any) -> Any:
        # resource_type is optional in files; when given it must agree with the channel.
        if isinstance(data, dict) and data.get("resource_type") is not None:
            channel = data.get("channel")
            if not isinstance(channel, str) or channel not in _CHANNEL_NAMES:
                return data  # the channel's own check says what is wrong with it
            expected = RESOURCE_TYPE[Channel(channel)]
            if data["resource_type"] != expected.value:
                fail(
                    ErrorCode.INVALID_FIELD,
                    f"resource_type {shown(data['resource_type'])} does not carry "
                    f"channel {shown(data.get('channel'))}",
                )
        return data

    @property
    def resource_type(self) -> ResourceType:
        return RESOURCE_TYPE[self.channel]
