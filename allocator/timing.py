"""WHEN: send times from patterns or the default weekday schedule, and deferral days.

All times are relative to a reference instant (the event's scored_at), so a
replay decides exactly as the live run did. Local hours are taken in the send
zone (the lead's own zone, else the client's); the quota day is the client's
local date of the send instant.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from allocator.models import WhenPattern

_ONE_DAY = timedelta(days=1)
_ONE_MINUTE = timedelta(minutes=1)


# Cached: a batch asks for the same few (day, hour, zone) slots again and again,
# and the DST check below costs two zone conversions. Results are immutable.
@lru_cache(maxsize=65536)
def at_local(day: date, hour: int, tz: ZoneInfo) -> datetime:
    """The instant of `day` at `hour`:00 local time, DST-safe.

    A wall time that happens twice means its first occurrence (fold=0). A wall
    time that does not exist (spring-forward gap) moves forward to the first
    valid instant: 02:00 on the US spring-forward day is 03:00 summer time.
    """
    wall = datetime.combine(day, time(hour), tzinfo=tz)
    while not _exists(wall):
        wall += _ONE_MINUTE  # naive wall-clock arithmetic: steps through the gap
    return wall


def _exists(wall: datetime) -> bool:
    round_trip = wall.astimezone(UTC).astimezone(wall.tzinfo)
    return round_trip.replace(tzinfo=None) == wall.replace(tzinfo=None)


def _is_weekday(day: date) -> bool:
    return day.weekday() < 5


@dataclass(frozen=True)
class SendSlot:
    """One candidate send: the instant and the client-local day whose quota it uses."""

    send_at: datetime
    usage_day: date


def next_weekly(reference: datetime, weekday: int, hour: int, tz: ZoneInfo) -> datetime:
    """Next (weekday, hour:00) local strictly after `reference`."""
    day = reference.astimezone(tz).date()
    while not (day.weekday() == weekday and at_local(day, hour, tz) > reference):
        day += _ONE_DAY
    return at_local(day, hour, tz)


def next_weekday_slot(reference: datetime, hour: int, tz: ZoneInfo) -> datetime:
    """Next Monday-Friday hour:00 local strictly after `reference`."""
    day = reference.astimezone(tz).date()
    while not (_is_weekday(day) and at_local(day, hour, tz) > reference):
        day += _ONE_DAY
    return at_local(day, hour, tz)


def send_slots(
    reference: datetime,
    hour: int,
    send_zone: ZoneInfo,
    quota_zone: ZoneInfo,
    pattern: WhenPattern | None,
    defer_steps: int,
) -> list[SendSlot]:
    """The first send slot and up to `defer_steps` deferrals after it.

    With a usable WHEN pattern the first slot is its next weekly occurrence and a
    deferral is the same local hour on the next calendar day; on the default
    schedule the first slot and every deferral are the next weekday. Each move
    is one step whatever the calendar gap (Friday to Monday is one step).
    """
    if pattern is not None:
        first = next_weekly(reference, pattern.optimal_day, pattern.optimal_hour, send_zone)
        hour = pattern.optimal_hour
    else:
        first = next_weekday_slot(reference, hour, send_zone)
    # Deferral walks local dates and re-applies the hour, so a DST change between
    # two steps does not drift the send hour. at_local never crosses midnight.
    day = first.astimezone(send_zone).date()
    slots = [first]
    while len(slots) <= defer_steps:
        day += _ONE_DAY
        while pattern is None and not _is_weekday(day):
            day += _ONE_DAY
        slots.append(at_local(day, hour, send_zone))
    return [SendSlot(at, local_date(at, quota_zone)) for at in slots]


@lru_cache(maxsize=65536)
def local_date(instant: datetime, tz: ZoneInfo) -> date:
    """The date of `instant` in zone `tz` (cached: send slots repeat across leads)."""
    return instant.astimezone(tz).date()
