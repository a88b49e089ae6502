"""Field types of the contract's records: each checks one field and says what is wrong.

Every check raises a pydantic error whose type is the DLQ's error code and
whose message shows the value cut short (`errors.shown`); parsing.py turns it
into an InvalidRecord naming the field. The bounds below are what keeps any
input, however odd, from reaching the rules: a value that passes here can be
decided, stored and sent to Redis without an exception.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Annotated, Any, NoReturn
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BeforeValidator, PlainSerializer
from pydantic_core import PydanticCustomError

from allocator.channels import Channel
from allocator.errors import ErrorCode, shown

# Input timestamps are instants from 1970-01-01T00:00:00Z up to, not including,
# 9000-01-01T00:00:00Z. Outside, Python's datetime overflows in the rules: the
# event id is derived from the UTC instant (year 1 at +01:00 is year 0 in UTC),
# patterns are stored in UTC, and send slots and deferrals lie weeks after
# scored_at. Nothing real is scored before Unix time or after year 8999.
EARLIEST_TIMESTAMP = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_TIMESTAMP = datetime(9000, 1, 1, tzinfo=UTC)  # exclusive

# Ids (lead_id, client_id, event_id, resource_id) are at most this many
# characters: enough for any UUID, URN or composite key, and small enough that
# a batch of them stays small in Redis and in the DLQ.
MAX_TEXT_CHARS = 256

# The longest IANA name is 32 characters (America/Argentina/ComodRivadavia).
MAX_ZONE_NAME_CHARS = 64
# IANA names are ASCII words joined by "/": no "..", no leading "/", so a name
# can never point the zone lookup outside the zone database.
_ZONE_NAME = re.compile(r"[A-Za-z0-9_+-]+(?:/[A-Za-z0-9_+-]+)*")

# A client's deferral horizon: a month of steps at most, so a lead's plan stays
# a few dozen slots long.
MAX_DEFER_DAYS = 30
# A daily limit beyond any real sender's, and well inside the database's
# 32-bit integer column (a larger one failed the whole file at write time).
MAX_DAILY_LIMIT = 1_000_000


def fail(code: ErrorCode, message: str) -> NoReturn:
    """Raise the pydantic error for `code`. The message goes in as context, not
    as the template, so braces in a shown value are never read as placeholders."""
    raise PydanticCustomError(code.value, "{message}", {"message": message})


# --- timestamps --------------------------------------------------------------


def _parse_timestamp(value: Any) -> datetime:
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            fail(ErrorCode.INVALID_TIMESTAMP, f"not an RFC 3339 timestamp: {shown(value)}")
    else:
        fail(ErrorCode.INVALID_TIMESTAMP, f"a timestamp must be a string, got {shown(value)}")
    if parsed.utcoffset() is None:
        fail(ErrorCode.INVALID_TIMESTAMP, f"timestamp {shown(value)} has no UTC offset")
    return parsed


# RFC 3339's date-time (section 5.6): Python's fromisoformat also takes ISO 8601
# forms such as 20261126T120000+0000 or 2026-W48-4T12:00Z, which it is not.
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})?")


# Built once: building it in the check below was a third of the check's time.
_MINUTE = timedelta(minutes=1)


def _input_timestamp(value: Any) -> datetime:
    if isinstance(value, str):
        if not _RFC3339.fullmatch(value):
            fail(ErrorCode.INVALID_TIMESTAMP, f"not an RFC 3339 timestamp: {shown(value)}")
        parsed = _parse_timestamp(value)  # the pattern's offsets are whole minutes
    else:
        parsed = _parse_timestamp(value)
        offset = parsed.utcoffset()
        if offset is not None and offset % _MINUTE:
            # RFC 3339 offsets are whole minutes; Python would accept a
            # datetime at +01:00:30.5 and write it back out that way. (Output
            # times may have one: a zone's local mean time, as Monrovia's
            # -00:44:30 until 1972.)
            fail(ErrorCode.INVALID_TIMESTAMP, f"timestamp {shown(value)} has a sub-minute offset")
    if not EARLIEST_TIMESTAMP <= parsed < LATEST_TIMESTAMP:
        fail(
            ErrorCode.OUT_OF_RANGE,
            f"must be from 1970-01-01T00:00:00Z up to 9000-01-01T00:00:00Z, got {shown(value)}",
        )
    return parsed


def _iso(value: datetime) -> str:
    return value.isoformat()


# An input timestamp: RFC 3339 with an offset, within the bounds above.
Timestamp = Annotated[
    datetime, BeforeValidator(_input_timestamp), PlainSerializer(_iso, return_type=str)
]
# A timestamp the allocator writes (send_at, decided_at, failed_at): computed,
# so not bounded; a send slot may lie weeks after the latest scored_at.
Instant = Annotated[
    datetime, BeforeValidator(_parse_timestamp), PlainSerializer(_iso, return_type=str)
]


# --- time zones --------------------------------------------------------------


@lru_cache(maxsize=4096)
def zone(name: str) -> ZoneInfo:
    """The IANA zone of that name (cached: zone lookups sit on the hot path)."""
    return ZoneInfo(name)


def _zone_name(value: Any) -> str:
    if not isinstance(value, str) or not value:
        fail(ErrorCode.UNKNOWN_TIMEZONE, f"a time zone must be an IANA name, got {shown(value)}")
    if len(value) > MAX_ZONE_NAME_CHARS or not _ZONE_NAME.fullmatch(value):
        fail(ErrorCode.UNKNOWN_TIMEZONE, f"not an IANA time zone name: {shown(value)}")
    try:
        zone(value)
    # OSError: a name that is a directory of the zone database ("America"), or
    # a file the system cannot open; ValueError: a file that is not a zone.
    except (ZoneInfoNotFoundError, ValueError, OSError):
        fail(ErrorCode.UNKNOWN_TIMEZONE, f"unknown IANA time zone {shown(value)}")
    return value


ZoneName = Annotated[str, BeforeValidator(_zone_name)]


# --- channels ----------------------------------------------------------------


def _channel(value: Any) -> Channel:
    try:
        return Channel(value)
    except (ValueError, TypeError):
        fail(
            ErrorCode.UNKNOWN_CHANNEL,
            f"unknown channel {shown(value)} "
            "(expected one of email, linkedin, voice, sms, direct_mail)",
        )


ChannelField = Annotated[Channel, BeforeValidator(_channel)]


# --- numbers -----------------------------------------------------------------


def _strict_int(value: Any) -> int:
    # JSON has one number type: 72 and 72.0 are the same integer; 72.5, "72" and
    # true are not integers at all.
    if isinstance(value, bool) or not isinstance(value, int | float):
        fail(ErrorCode.INVALID_FIELD, f"must be an integer, got {shown(value)}")
    if isinstance(value, float):
        if not value.is_integer():  # also NaN and the infinities
            fail(ErrorCode.INVALID_FIELD, f"must be an integer, got {shown(value)}")
        return int(value)
    return value


def bounded(low: int, high: int | None) -> BeforeValidator:
    """An integer from `low` to `high` inclusive (None: no upper bound)."""
    wanted = f"in {low}..{high}" if high is not None else f"{low} or more"

    def check(value: Any) -> int:
        number = _strict_int(value)
        if number < low or (high is not None and number > high):
            fail(ErrorCode.OUT_OF_RANGE, f"must be {wanted}, got {shown(value)}")
        return number

    return BeforeValidator(check)


def _confidence(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        fail(ErrorCode.INVALID_FIELD, f"must be a number, got {shown(value)}")
    if not 0.0 <= value <= 1.0:  # NaN fails this too
        fail(ErrorCode.OUT_OF_RANGE, f"must be in 0..1, got {shown(value)}")
    return float(value)


# --- text and flags ----------------------------------------------------------


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        fail(ErrorCode.INVALID_FIELD, f"must be a non-empty string, got {shown(value)}")
    if len(value) > MAX_TEXT_CHARS:
        fail(
            ErrorCode.TOO_LARGE,
            f"must be at most {MAX_TEXT_CHARS} characters, got {shown(value)}",
        )
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            # JSON lets "\ud800" through; such text cannot be encoded, so it
            # would fail later in Redis (one bad id breaking a whole batch).
            fail(ErrorCode.INVALID_FIELD, f"not valid Unicode (a lone surrogate): {shown(value)}")
    if "\x00" in value:
        # PostgreSQL text cannot hold U+0000: the id would fail when stored.
        fail(ErrorCode.INVALID_FIELD, f"must not contain a NUL character, got {shown(value)}")
    return value


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        fail(ErrorCode.INVALID_FIELD, f"must be true or false, got {shown(value)}")
    return value


def _day(value: Any) -> date:
    if not isinstance(value, str):
        fail(ErrorCode.INVALID_FIELD, f"must be a date YYYY-MM-DD, got {shown(value)}")
    try:
        if len(value) != 10:
            raise ValueError
        return date.fromisoformat(value)
    except ValueError:
        fail(ErrorCode.INVALID_FIELD, f"must be a date YYYY-MM-DD, got {shown(value)}")


# A recipient domain as mail sees it: lower-cased, labels of letters, digits,
# hyphens (and punycode), at most 253 characters.
_DOMAIN = re.compile(r"(?=.{1,253}$)(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.)*[a-z0-9_-]{1,63}")


def _domain(value: Any) -> str:
    if not isinstance(value, str):
        fail(ErrorCode.INVALID_FIELD, f"must be a domain name, got {shown(value)}")
    lowered = value.strip().lower().rstrip(".")
    if not _DOMAIN.fullmatch(lowered):
        fail(ErrorCode.INVALID_FIELD, f"must be a domain name like example.com, got {shown(value)}")
    return lowered


_CLOCK = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])|24:00")


def _clock(value: Any) -> int:
    """ "HH:MM" (00:00 to 24:00) as minutes after midnight."""
    if not isinstance(value, str) or not _CLOCK.fullmatch(value):
        fail(ErrorCode.INVALID_FIELD, f"must be a time HH:MM (00:00-24:00), got {shown(value)}")
    hours, minutes = value.split(":")
    return int(hours) * 60 + int(minutes)


def _country(value: Any) -> str:
    from allocator.calendars import supported_countries  # the holidays package, loaded lazily

    if not isinstance(value, str) or value.upper() not in supported_countries():
        fail(
            ErrorCode.INVALID_FIELD,
            f"must be a country code of the holidays package (US, DE, ...), got {shown(value)}",
        )
    return value.upper()


Text = Annotated[str, BeforeValidator(_text)]
Day = Annotated[date, BeforeValidator(_day)]
ClockMinutes = Annotated[
    int, BeforeValidator(_clock), PlainSerializer(lambda m: f"{m // 60:02d}:{m % 60:02d}")
]
Country = Annotated[str, BeforeValidator(_country)]
Domain = Annotated[str, BeforeValidator(_domain)]
Score = Annotated[int, bounded(0, 100)]
Weekday = Annotated[int, bounded(0, 6)]
Hour = Annotated[int, bounded(0, 23)]
Count = Annotated[int, bounded(0, MAX_DAILY_LIMIT)]  # a number of sends
EveryDays = Annotated[int, bounded(1, 366)]  # a warm-up's step period
DeferDays = Annotated[int, bounded(0, MAX_DEFER_DAYS)]
Confidence = Annotated[float, BeforeValidator(_confidence)]
Flag = Annotated[bool, BeforeValidator(_flag)]
