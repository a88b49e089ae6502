"""Records of the external contract, and the one place where input is validated.

Every parse error becomes an `InvalidRecord` naming the field and the value,
with the short code the DLQ carries.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from datetime import datetime
from functools import lru_cache
from typing import Annotated, Any, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError

from allocator.channels import RESOURCE_TYPE, Channel, ResourceType
from allocator.errors import InvalidRecord
from allocator.tiers import Tier

# --- field types -----------------------------------------------------------


def _timestamp(value: Any) -> datetime:
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise PydanticCustomError(
                "invalid_timestamp", "not an RFC 3339 timestamp: {value}", {"value": repr(value)}
            ) from None
    else:
        raise PydanticCustomError(
            "invalid_timestamp", "a timestamp must be a string, got {value}", {"value": repr(value)}
        )
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise PydanticCustomError(
            "invalid_timestamp", "timestamp {value} has no UTC offset", {"value": repr(value)}
        )
    return parsed


def _iso(value: datetime) -> str:
    return value.isoformat()


Timestamp = Annotated[datetime, BeforeValidator(_timestamp), PlainSerializer(_iso, return_type=str)]


@lru_cache(maxsize=4096)
def zone(name: str) -> ZoneInfo:
    """The IANA zone of that name (cached: zone lookups sit on the hot path)."""
    return ZoneInfo(name)


def _zone_name(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise PydanticCustomError(
            "unknown_timezone",
            "a time zone must be an IANA name, got {value}",
            {"value": repr(value)},
        )
    try:
        zone(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise PydanticCustomError(
            "unknown_timezone", "unknown IANA time zone {value}", {"value": repr(value)}
        ) from None
    return value


ZoneName = Annotated[str, BeforeValidator(_zone_name)]


def _channel(value: Any) -> Channel:
    try:
        return Channel(value)
    except ValueError:
        raise PydanticCustomError(
            "unknown_channel",
            "unknown channel {value} (expected one of email, linkedin, voice, sms, direct_mail)",
            {"value": repr(value)},
        ) from None


ChannelField = Annotated[Channel, BeforeValidator(_channel)]


def _strict_int(value: Any) -> int:
    # JSON has one number type: 72 and 72.0 are the same integer; 72.5, "72" and
    # true are not integers at all.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PydanticCustomError(
            "invalid_field", "must be an integer, got {value}", {"value": repr(value)}
        )
    if isinstance(value, float):
        if not value.is_integer():
            raise PydanticCustomError(
                "invalid_field", "must be an integer, got {value}", {"value": repr(value)}
            )
        return int(value)
    return value


def _bounded(low: int, high: int | None) -> BeforeValidator:
    def check(value: Any) -> int:
        number = _strict_int(value)
        if number < low or (high is not None and number > high):
            upper = "" if high is None else f"..{high}"
            raise PydanticCustomError(
                "out_of_range",
                "must be in {low}{upper}, got {value}",
                {"low": low, "upper": upper, "value": repr(value)},
            )
        return number

    return BeforeValidator(check)


def _confidence(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PydanticCustomError(
            "invalid_field", "must be a number, got {value}", {"value": repr(value)}
        )
    if not 0.0 <= value <= 1.0:
        raise PydanticCustomError(
            "out_of_range", "must be in 0..1, got {value}", {"value": repr(value)}
        )
    return float(value)


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise PydanticCustomError(
            "invalid_field", "must be a non-empty string, got {value}", {"value": repr(value)}
        )
    return value


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise PydanticCustomError(
            "invalid_field", "must be true or false, got {value}", {"value": repr(value)}
        )
    return value


Text = Annotated[str, BeforeValidator(_text)]
Score = Annotated[int, _bounded(0, 100)]
Weekday = Annotated[int, _bounded(0, 6)]
Hour = Annotated[int, _bounded(0, 23)]
Count = Annotated[int, _bounded(0, None)]
Confidence = Annotated[float, BeforeValidator(_confidence)]
Flag = Annotated[bool, BeforeValidator(_flag)]

_INPUT = ConfigDict(extra="ignore", frozen=True)

# Fixed namespace so event and allocation ids are stable across processes and versions.
_ID_NAMESPACE = uuid.UUID("6f1c2a9e-41d8-4a5e-9a53-0c7f1e2b8d44")


_NAMESPACE_BYTES = _ID_NAMESPACE.bytes


def derived_id(*parts: str) -> str:
    """A UUIDv5 of the parts: the same parts always give the same id.

    Length-prefixing keeps ("a|b", "c") and ("a", "b|c") apart. Computed as
    uuid.uuid5 does (RFC 4122 section 4.3), without building UUID objects: this
    runs twice per lead.
    """
    name = "".join(f"{len(p)}:{p}" for p in parts).encode()
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + name).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


# --- input records ---------------------------------------------------------


class ScoredLead(BaseModel):
    model_config = _INPUT

    event_id: Text | None = None
    lead_id: Text
    client_id: Text
    als_score: Score
    scored_at: Timestamp
    timezone: ZoneName | None = None

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
            raise PydanticCustomError(
                "invalid_field",
                "channel must be absent for a how pattern, got {value}",
                {"value": repr(data["channel"])},
            )
        return data

    @model_validator(mode="after")
    def _no_repeats(self) -> HowPattern:
        seen: set[Channel] = set()
        for channel in self.winning_sequence:
            if channel in seen:
                raise PydanticCustomError(
                    "duplicate_channel",
                    "winning_sequence repeats {value}",
                    {"value": repr(channel.value)},
                )
            seen.add(channel)
        return self


ConversionPattern = WhenPattern | HowPattern


class Client(BaseModel):
    model_config = _INPUT

    client_id: Text
    timezone: ZoneName = "UTC"
    max_defer_days: Count = 3


class Resource(BaseModel):
    model_config = _INPUT

    client_id: Text
    channel: ChannelField
    resource_id: Text
    daily_limit: Count | None = None
    active: Flag = True

    @model_validator(mode="before")
    @classmethod
    def _type_matches_channel(cls, data: Any) -> Any:
        # resource_type is optional in files; when given it must agree with the channel.
        if isinstance(data, dict) and data.get("resource_type") is not None:
            try:
                expected = RESOURCE_TYPE[Channel(str(data.get("channel")))]
            except ValueError:
                return data
            if data["resource_type"] != expected.value:
                raise PydanticCustomError(
                    "invalid_field",
                    "resource_type {value} does not carry channel {channel}",
                    {"value": repr(data["resource_type"]), "channel": repr(data.get("channel"))},
                )
        return data

    @property
    def resource_type(self) -> ResourceType:
        return RESOURCE_TYPE[self.channel]


# --- output records --------------------------------------------------------


class ChannelAllocation(BaseModel):
    model_config = ConfigDict(frozen=True)

    channel: Channel
    status: Literal["allocated", "exhausted", "no_resource"]
    resource_type: ResourceType | None
    resource_id: str | None
    send_at: Timestamp | None
    timing_source: Literal["pattern", "default"]
    usage_day: str | None


class Allocation(BaseModel):
    model_config = ConfigDict(frozen=True)

    allocation_id: str
    event_id: str
    lead_id: str
    client_id: str
    als_score: int
    als_tier: Tier
    sequence_source: Literal["pattern", "default"]
    channels: list[ChannelAllocation]
    decided_at: Timestamp


class DeadLetter(BaseModel):
    model_config = ConfigDict(frozen=True)

    source_topic: str
    partition: int | None
    offset: int | None
    key: str | None
    raw_value: str
    error_code: str
    error: str
    failed_at: Timestamp


def raw_text(raw: bytes | None) -> str:
    """The original bytes as text, or base64 when they are not UTF-8."""
    if raw is None:
        return ""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return base64.b64encode(raw).decode("ascii")


# --- parsing ---------------------------------------------------------------

M = TypeVar("M", bound=BaseModel)

# pydantic's own error types that have a more telling DLQ code
_CODES = {"missing": "missing_field", "too_short": "invalid_field", "list_type": "invalid_field"}


def _invalid(error: ValidationError) -> InvalidRecord:
    first = error.errors()[0]
    loc = first.get("loc", ())
    field = ".".join(str(part) for part in loc) or None
    code = _CODES.get(first["type"], first["type"])
    if code not in _KNOWN_CODES:
        code = "invalid_field"
    value = first.get("input")
    if code == "missing_field":
        return InvalidRecord(code, field, None, f"{field}: required field is missing")
    name = field or "record"
    return InvalidRecord(code, field, value, f"{name}: {first['msg']}")


_KNOWN_CODES = frozenset(
    {
        "missing_field",
        "invalid_field",
        "out_of_range",
        "unknown_channel",
        "unknown_timezone",
        "invalid_timestamp",
        "duplicate_channel",
        "unknown_pattern_type",
    }
)


def decode_object(raw: bytes | str | None) -> dict[str, Any]:
    """Bytes -> a JSON object, or InvalidRecord with invalid_encoding/invalid_json/not_an_object."""
    if raw is None:
        raise InvalidRecord("empty_value", None, None, "record has no value (tombstone)")
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidRecord(
                "invalid_encoding", None, None, f"value is not UTF-8: {exc}"
            ) from None
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InvalidRecord("invalid_json", None, raw[:200], f"value is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidRecord(
            "not_an_object", None, data, f"value must be a JSON object, got {type(data).__name__}"
        )
    return data


def validate(model: type[M], data: dict[str, Any]) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _invalid(exc) from None


def parse_lead(raw: bytes | str | None) -> ScoredLead:
    return validate(ScoredLead, decode_object(raw))


def parse_pattern_data(data: dict[str, Any]) -> ConversionPattern:
    kind = data.get("pattern_type")
    if kind == "when":
        return validate(WhenPattern, data)
    if kind == "how":
        return validate(HowPattern, data)
    if kind is None:
        raise InvalidRecord(
            "missing_field", "pattern_type", None, "pattern_type: required field is missing"
        )
    raise InvalidRecord(
        "unknown_pattern_type",
        "pattern_type",
        kind,
        f"pattern_type: must be 'when' or 'how', got {kind!r}",
    )


def parse_pattern(raw: bytes | str | None) -> ConversionPattern:
    return parse_pattern_data(decode_object(raw))
