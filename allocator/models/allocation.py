"""The allocation record (CONTRACT.md section 3) and how it is written.

Plain frozen dataclasses, not pydantic models: the allocator alone builds
them, from values already checked, once per lead, so validating them again
only costs (about 9 us a lead of 3 channels, a sixth of a replay's deciding;
issue 15). They are written by hand for the same reason; the field types
below are still the ones pydantic would write, and a property test holds
`to_json` to `pydantic.TypeAdapter(Allocation).dump_json` byte for byte.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from json.encoder import encode_basestring  # the C one: escapes as pydantic does
from typing import Literal

from allocator.channels import Channel, EntryStatus, ResourceType
from allocator.frozen import fast_init
from allocator.models.fields import Instant
from allocator.tiers import Tier

Source = Literal["pattern", "default"]


# isoformat() of an aware datetime costs ~11,000 instructions (C's
# PyUnicode_FromFormat, and a call of its zone's utcoffset): a fifth of
# writing a record. A UTC instant on a whole second, as nearly every
# decided_at and send_at is, is written from parts made once instead
# (~5,000); a property test holds `iso` to isoformat().
_DAYS: dict[int, str] = {}  # "YYYY-MM-DDT" by the day's ordinal
_MINUTES = tuple(f"{h:02d}:{m:02d}:" for h in range(24) for m in range(60))
_SECONDS = tuple(f"{s:02d}+00:00" for s in range(60))


def iso(at: datetime) -> str:
    """at.isoformat(), quicker for a UTC instant on a whole second."""
    if at.tzinfo is not UTC or at.microsecond:
        return at.isoformat()
    ordinal = at.toordinal()
    day = _DAYS.get(ordinal)
    if day is None:
        if len(_DAYS) >= 1 << 16:
            _DAYS.clear()
        day = _DAYS[ordinal] = f"{at.date().isoformat()}T"
    return f"{day}{_MINUTES[at.hour * 60 + at.minute]}{_SECONDS[at.second]}"


def _text(value: str | None) -> str:
    """A JSON string, or null: non-ASCII kept as is, control characters escaped."""
    return "null" if value is None else encode_basestring(value)


@dataclass(frozen=True, slots=True)
class Reason:
    """Why a channel entry is not at its first slot (CONTRACT.md section 11)."""

    code: str
    detail: str

    def to_json(self) -> str:
        code, detail = encode_basestring(self.code), encode_basestring(self.detail)
        return f'{{"code":{code},"detail":{detail}}}'


class _CachedJson:
    """A slot for a record's JSON, kept once written: the decision shares one
    entry among the leads of the same plan and answer (decision._allocated).
    A base class because a slotted dataclass has slots for its fields only;
    not a field, so equality, hashing, copies and pydantic never see it."""

    __slots__ = ("_json",)
    _json: str


@fast_init
@dataclass(frozen=True, slots=True)
class ChannelAllocation(_CachedJson):
    """One channel's entry of an allocation (CONTRACT.md section 3)."""

    channel: Channel
    status: EntryStatus
    resource_type: ResourceType | None
    resource_id: str | None
    send_at: Instant | None
    timing_source: Source
    usage_day: str | None
    reason: Reason | None = None

    def to_json(self) -> str:
        try:
            return self._json
        except AttributeError:
            written = self._write()
            object.__setattr__(self, "_json", written)  # not a field: frozen all the same
            return written

    def _write(self) -> str:
        send_at = None if self.send_at is None else iso(self.send_at)
        reason = "null" if self.reason is None else self.reason.to_json()
        return (
            f'{{"channel":{encode_basestring(self.channel)},'
            f'"status":{encode_basestring(self.status)},'
            f'"resource_type":{_text(self.resource_type)},'
            f'"resource_id":{_text(self.resource_id)},'
            f'"send_at":{_text(send_at)},'
            f'"timing_source":{encode_basestring(self.timing_source)},'
            f'"usage_day":{_text(self.usage_day)},'
            f'"reason":{reason}}}'
        )


@fast_init
@dataclass(frozen=True, slots=True)
class Allocation:
    """A lead's allocation record (CONTRACT.md section 3)."""

    allocation_id: str
    event_id: str
    lead_id: str
    client_id: str
    als_score: int
    als_tier: Tier
    sequence_source: Source
    channels: tuple[ChannelAllocation, ...]
    decided_at: Instant

    def to_json(self) -> str:
        """The record as the topic and the replay's output carry it: compact JSON."""
        channels = ",".join([c.to_json() for c in self.channels])
        return (
            f'{{"allocation_id":{encode_basestring(self.allocation_id)},'
            f'"event_id":{encode_basestring(self.event_id)},'
            f'"lead_id":{encode_basestring(self.lead_id)},'
            f'"client_id":{encode_basestring(self.client_id)},'
            f'"als_score":{self.als_score},'
            f'"als_tier":{encode_basestring(self.als_tier)},'
            f'"sequence_source":{encode_basestring(self.sequence_source)},'
            f'"channels":[{channels}],'
            f'"decided_at":"{iso(self.decided_at)}"}}'  # digits, "-:T+.": nothing to escape
        )
