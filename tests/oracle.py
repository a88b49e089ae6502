"""An independent oracle of the contract's Part 1 rules, for the tests to check against.

Written from the words of CONTRACT.md sections 1, 3 and 4, never from the
production code: it imports nothing of `allocator` (no tiers, no decision
core, no timing), takes plain data (channel names, zone names, datetimes) and
favours plain loops over speed. Every instant it returns is in UTC, and it
never builds a local-time aware datetime: a local wall clock is only ever read
off a UTC instant (`instant.astimezone(zone)`), which has a single answer, so
DST gaps and folds cannot be mishandled by datetime arithmetic.

    tier_of               score -> tier (section 1)
    sequence_for          tier + HOW pattern -> channel order and its source (3.1)
    local_instant         (local day, hour) in a zone -> the UTC instant (section 4 DST rule)
    send_slots            first send slot and its deferrals, with quota days (3.2, 3.3, 3.5, 4)
    allocation_id         the allocation's id from the event_id (section 2)
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo

# --- section 1: words ------------------------------------------------------

CHANNELS: tuple[str, ...] = ("email", "linkedin", "voice", "sms", "direct_mail")

RESOURCE_TYPE: dict[str, str] = {
    "email": "email_domain",
    "linkedin": "linkedin_seat",
    "voice": "voice_number",
    "sms": "sms_number",
    "direct_mail": "mail_vendor",
}

# Per resource type, keyed here by its channel; None: unlimited.
DEFAULT_DAILY_LIMIT: dict[str, int | None] = {
    "linkedin": 17,
    "email": 50,
    "sms": 100,
    "voice": 50,
    "direct_mail": None,
}

# (tier, lowest score, highest score), as the contract lists them.
TIERS: tuple[tuple[str, int, int], ...] = (
    ("unqualified", 0, 19),
    ("cold", 20, 34),
    ("cool", 35, 59),
    ("warm", 60, 84),
    ("hot", 85, 100),
)

ACCESS: dict[str, tuple[str, ...]] = {
    "unqualified": (),
    "cold": ("email",),
    "cool": ("email", "linkedin"),
    "warm": ("email", "linkedin", "voice"),
    "hot": ("email", "linkedin", "voice", "sms", "direct_mail"),
}

# Section 3.2: the default schedule's local hour per channel.
DEFAULT_HOUR: dict[str, int] = {
    "email": 9,
    "linkedin": 10,
    "voice": 11,
    "sms": 12,
    "direct_mail": 9,
}

CONFIDENCE_FLOOR = 0.6
CLIENT_DEFAULT_ZONE = "UTC"  # section 4 / 5: a client without a zone, or unknown


def tier_of(score: int) -> str:
    """The ALS tier of an integer score 0..100."""
    found = [name for name, low, high in TIERS if low <= score <= high]
    if len(found) != 1:
        raise ValueError(f"score {score!r} is in no tier")
    return found[0]


def default_sequence(tier: str) -> list[str]:
    """The tier's allowed channels in the order email, linkedin, voice, sms, direct_mail."""
    result = []
    for channel in CHANNELS:
        if channel in ACCESS[tier]:
            result.append(channel)
    return result


def usable(confidence: float | None) -> bool:
    """A pattern is used only when its confidence is strictly greater than 0.6."""
    return confidence is not None and confidence > CONFIDENCE_FLOOR


# --- section 3.1: HOW --------------------------------------------------------


def sequence_for(
    tier: str, how_sequence: Sequence[str] | None, how_confidence: float | None
) -> tuple[list[str], str]:
    """The channel order and its `sequence_source` ("pattern" or "default").

    A usable HOW pattern's order is kept, filtered to the tier's channels; if
    nothing is left (or no usable pattern), the tier default.
    """
    if how_sequence is not None and usable(how_confidence):
        kept = []
        for channel in how_sequence:
            if channel in ACCESS[tier]:
                kept.append(channel)
        if kept:
            return kept, "pattern"
    return default_sequence(tier), "default"


# --- section 4: local hours and DST ----------------------------------------

_QUARTER = timedelta(minutes=15)


@cache
def local_instant(day: date, hour: int, zone: str) -> datetime:
    """The UTC instant of `hour`:00 on local `day` in `zone`.

    Defined as the first instant whose local wall clock reads `hour`:00 or
    later on that day. That is the plain time when it exists once; the first
    occurrence when the hour happens twice (fall-back); and the first valid
    instant after the gap when it does not exist (spring-forward: 02:00 on the
    US change day reads 03:00 at the first instant past the gap).

    Walks UTC in quarter hours from 15 hours before the wall time (every zone
    is less than 15 hours ahead of UTC, so the walk starts before the answer).
    A quarter-hour walk hits every local :00 because every offset in use is a
    whole number of quarter hours, which the loop checks at each step.
    """
    tz = ZoneInfo(zone)
    target = datetime.combine(day, time(hour))  # naive: a local wall-clock reading
    instant = (target - timedelta(hours=15)).replace(tzinfo=UTC)
    while True:
        local = instant.astimezone(tz)
        offset = local.utcoffset()
        assert offset is not None and offset % _QUARTER == timedelta(0), (zone, instant)
        assert abs(offset) < timedelta(hours=15), (zone, instant)
        if local.replace(tzinfo=None) >= target:
            return instant
        instant += _QUARTER


def local_date(instant: datetime, zone: str) -> date:
    """The calendar date of `instant` in `zone`."""
    return instant.astimezone(ZoneInfo(zone)).date()


def is_weekday(day: date) -> bool:
    return day.weekday() in (0, 1, 2, 3, 4)  # Monday..Friday


# --- section 3.2 / 3.5: WHEN, default schedule, deferral ---------------------

# Section 9: the channels with a send window by default (08:00-21:00, every day).
QUIET_HOURS_CHANNELS = ("sms", "voice")


@dataclass(frozen=True)
class When:
    """A WHEN pattern of one channel: weekday (0 = Monday), local hour, confidence."""

    day: int
    hour: int
    confidence: float


def first_slot(
    reference: datetime, hour: int, send_zone: str, weekday: int | None
) -> tuple[date, datetime]:
    """The local day and UTC instant of the next slot strictly after `reference`.

    `weekday` set: the next occurrence of that weekday at `hour`:00 (a WHEN
    pattern). None: the next Monday-Friday at `hour`:00 (the default schedule).
    Every candidate day from the day before the reference's local date to 9 days
    after is tried, and the earliest instant after the reference wins.
    """
    start = local_date(reference, send_zone)
    best: tuple[date, datetime] | None = None
    for k in range(-1, 10):
        day = start + timedelta(days=k)
        if weekday is not None and day.weekday() != weekday:
            continue
        if weekday is None and not is_weekday(day):
            continue
        instant = local_instant(day, hour, send_zone)
        if instant > reference and (best is None or instant < best[1]):
            best = (day, instant)
    assert best is not None
    return best


def send_slots(
    scored_at: datetime,
    channel: str,
    send_zone: str,
    client_zone: str,
    when: When | None,
    max_defer_days: int,
    default_hours: dict[str, int] | None = None,
    quiet_hours: bool = True,
) -> list[tuple[datetime, date]]:
    """Every candidate (send instant in UTC, quota day) of one channel of one lead, in order.

    The first is the pattern's next occurrence (a usable WHEN pattern) or the
    default schedule's next weekday slot; then one per deferral step, up to
    `max_defer_days`: the same local hour on the next day (next weekday on the
    default schedule). Local hours are in `send_zone` (the lead's zone, else the
    client's); the quota day is the date of the send instant in `client_zone`.
    `quiet_hours` False: round 1's rules, without sms and voice's default window.
    """
    hours = default_hours if default_hours is not None else DEFAULT_HOUR
    pattern = when if when is not None and usable(when.confidence) else None
    if pattern is not None:
        hour = pattern.hour
        day, instant = first_slot(scored_at, hour, send_zone, pattern.day)
    else:
        hour = hours[channel]
        day, instant = first_slot(scored_at, hour, send_zone, None)
    if quiet_hours and channel in QUIET_HOURS_CHANNELS:
        # Section 9: sms and voice go out 08:00-21:00 local by default; a slot
        # before 08:00 waits for 08:00 that day, one at 21:00 or later for
        # 08:00 on the next day it may go (a weekday on the default schedule).
        local = instant.astimezone(ZoneInfo(send_zone))
        minutes = local.hour * 60 + local.minute
        if minutes < 8 * 60 or minutes >= 21 * 60:
            if minutes >= 21 * 60:
                day = day + timedelta(days=1)
                while pattern is None and not is_weekday(day):
                    day = day + timedelta(days=1)
            hour = 8
            instant = local_instant(day, hour, send_zone)
    instants = [instant]
    for _step in range(max_defer_days):
        day = day + timedelta(days=1)
        if pattern is None:
            while not is_weekday(day):
                day = day + timedelta(days=1)
        instants.append(local_instant(day, hour, send_zone))
    return [(at, local_date(at, client_zone)) for at in instants]


# --- section 2: ids ----------------------------------------------------------

# The production namespace of derived ids (a fixed UUID, so that ids are stable
# across processes and versions), and its name layout: each part as
# "<length in characters>:<part>", concatenated, UTF-8.
ID_NAMESPACE = uuid.UUID("6f1c2a9e-41d8-4a5e-9a53-0c7f1e2b8d44")


def _uuid5(*parts: str) -> str:
    return str(uuid.uuid5(ID_NAMESPACE, "".join(f"{len(part)}:{part}" for part in parts)))


def allocation_id(event_id: str) -> str:
    """Deterministic from event_id: a UUIDv5 of ("allocation", event_id)."""
    return _uuid5("allocation", event_id)


def event_id_of(event_id: str | None, lead_id: str, client_id: str, scored_at: datetime) -> str:
    """The event's idempotency key: given, else derived from lead_id, client_id, scored_at."""
    if event_id is not None:
        return event_id
    return _uuid5("lead", lead_id, client_id, scored_at.astimezone(UTC).isoformat())
