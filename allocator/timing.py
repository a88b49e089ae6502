"""WHEN: send times from patterns or the default weekday schedule, send
windows and closed days (holidays, blackout dates), and deferral days.

All times are relative to a reference instant (the event's scored_at), so a
replay decides exactly as the live run did. Local hours are taken in the send
zone (the lead's own zone, else the client's); the quota day is the client's
local date of the send instant.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from allocator.calendars import OPEN, Calendar
from allocator.channels import Channel
from allocator.intervals import SpanCache
from allocator.models import WhenPattern
from allocator.reasons import Why

_ONE_DAY = timedelta(days=1)
_ONE_MINUTE = timedelta(minutes=1)


# Cached: a batch asks for the same few (day, hour, zone) slots again and again,
# and the DST check below costs two zone conversions. Results are immutable.
def at_local(day: date, hour: int, tz: ZoneInfo) -> datetime:
    """The instant of `day` at `hour`:00 local time, DST-safe (at_clock)."""
    return at_clock(day, hour * 60, tz)


@lru_cache(maxsize=65536)
def at_clock(day: date, minutes: int, tz: ZoneInfo) -> datetime:
    """The instant of `day` at `minutes` after local midnight (1440: the next
    midnight), DST-safe.

    A wall time that happens twice means its first occurrence (fold=0). A wall
    time that does not exist (spring-forward gap) moves forward to the first
    valid instant: 02:00 on the US spring-forward day is 03:00 summer time.
    """
    if minutes >= 24 * 60:
        return at_clock(day + _ONE_DAY, minutes - 24 * 60, tz)
    wall = datetime.combine(day, time(minutes // 60, minutes % 60), tzinfo=tz)
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
    Round 1's rules: plan_sends without a send window or closed days.
    """
    return list(plan_sends(reference, hour, send_zone, quota_zone, pattern, defer_steps).slots)


@lru_cache(maxsize=65536)
def local_date(instant: datetime, tz: ZoneInfo) -> date:
    """The date of `instant` in zone `tz` (cached: send slots repeat across leads)."""
    return instant.astimezone(tz).date()


# --- round 2: send windows and closed days (CONTRACT.md section 9) ----------------


@dataclass(frozen=True)
class Window:
    """A channel's send window in the send zone: on `days` (0 = Monday), from
    `start` to `end` minutes after local midnight (end exclusive, 1440 at most)."""

    days: frozenset[int]
    start: int
    end: int

    def describe(self) -> str:
        return f"{_clock(self.start)}-{_clock(self.end)}"


# US TCPA quiet hours: calls and texts only 08:00 to 21:00 in the recipient's zone.
EVERY_DAY = frozenset(range(7))
WEEKEND = frozenset({5, 6})
# Closed days and windows could leave no day at all: a lead is undecidable
# (dead-lettered, naming why) rather than walked towards year 9999.
_HORIZON = 800
DEFAULT_WINDOWS: dict[Channel, Window] = {
    Channel.SMS: Window(EVERY_DAY, 8 * 60, 21 * 60),
    Channel.VOICE: Window(EVERY_DAY, 8 * 60, 21 * 60),
}


def _clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


@dataclass(frozen=True)
class Timing:
    """A channel's candidate sends: the slots (the first, then each deferral
    step), per slot the instant its day's sends must go out before (the
    window's end, else the next local midnight: pacing, CONTRACT.md section 9),
    and what moved the first slot from where its pattern or the default
    schedule put it (a reason code and its sentence), if anything did."""

    slots: tuple[SendSlot, ...]
    ends: tuple[datetime, ...]
    moved: tuple[str, str] | None = None


# Per set of plan_sends' arguments other than the reference: the Timings
# planned, each over the span of references [the earliest it was asked for,
# the first candidate slot after that). Every reference in a span has the same
# next candidate, and a Timing depends on the reference only through it, so
# those references get the same Timing without a zone conversion.
_Params = tuple[int, ZoneInfo, ZoneInfo, tuple[int, int] | None, int, Window | None, Calendar]
_PLANNED: SpanCache[_Params, Timing] = SpanCache()


def plan_sends(
    reference: datetime,
    hour: int,
    send_zone: ZoneInfo,
    quota_zone: ZoneInfo,
    pattern: WhenPattern | None,
    defer_steps: int,
    window: Window | None = None,
    calendar: Calendar = OPEN,
) -> Timing:
    """A channel's candidate sends (plan_sends_until without its bound)."""
    timing, _ = plan_sends_until(
        reference, hour, send_zone, quota_zone, pattern, defer_steps, window, calendar
    )
    return timing


def plan_sends_until(
    reference: datetime,
    hour: int,
    send_zone: ZoneInfo,
    quota_zone: ZoneInfo,
    pattern: WhenPattern | None,
    defer_steps: int,
    window: Window | None = None,
    calendar: Calendar = OPEN,
) -> tuple[Timing, datetime]:
    """A channel's candidate sends: the first slot (a WHEN pattern's next
    occurrence, else the default weekday schedule) and up to `defer_steps`
    deferrals, with a send window and closed days.

    Closed days (holidays, blackout dates) are treated like weekend days by the
    default schedule and skipped by pattern slots and deferrals. A first slot
    outside the window moves to the next instant inside it: later the same
    day, else the window's start on the next allowed day (a day of the window,
    not closed, and a weekday on the default schedule). That is where the
    first slot lands, not a deferral step; deferral steps then walk allowed
    days at the first slot's local time.

    Also returns the first candidate slot after the reference: every
    reference from this one up to that instant gets the same Timing.
    """
    weekly = (pattern.optimal_day, pattern.optimal_hour) if pattern is not None else None
    params = (hour, send_zone, quota_zone, weekly, defer_steps, window, calendar)
    held = _PLANNED.get(params, reference)
    if held is not None:
        return held
    if weekly is not None:
        candidate = next_weekly(reference, weekly[0], weekly[1], send_zone)
    else:
        candidate = next_weekday_slot(reference, hour, send_zone)
    timing = _plan_from(
        candidate, hour, send_zone, quota_zone, weekly, defer_steps, window, calendar
    )
    _PLANNED.put(params, reference, candidate, timing)
    return timing, candidate


def _plan_from(
    candidate: datetime,
    hour: int,
    send_zone: ZoneInfo,
    quota_zone: ZoneInfo,
    weekly: tuple[int, int] | None,
    defer_steps: int,
    window: Window | None,
    calendar: Calendar,
) -> Timing:
    """plan_sends from the first candidate slot after the reference (the
    pattern's next weekly occurrence, else the next weekday at `hour`)."""
    # The default schedule sends on weekdays; a window of weekend days only
    # (a client's explicit choice) is taken at its word instead.
    weekdays_only = weekly is None and not (window is not None and window.days <= WEEKEND)

    def allowed(day: date, in_window: bool = True) -> bool:
        if weekdays_only and not _is_weekday(day):
            return False
        if in_window and window is not None and day.weekday() not in window.days:
            return False
        return not calendar.closed(day)

    moved: tuple[str, str] | None = None
    first = candidate
    if weekly is not None:
        minutes = weekly[1] * 60  # the pattern's optimal hour
        for _ in range(_HORIZON // 7):
            closed = first.astimezone(send_zone).date()
            if not calendar.closed(closed):
                break
            moved = moved or (Why.MOVED_HOLIDAY, f"{calendar.why_closed(closed)}; moved a week")
            first = at_clock(closed + timedelta(days=7), minutes, send_zone)
        else:
            raise ValueError(f"every {first:%A} for {_HORIZON} days is closed to sends")
    else:
        minutes = hour * 60
        day = first.astimezone(send_zone).date()
        if calendar.closed(day):
            moved = (Why.MOVED_HOLIDAY, f"{calendar.why_closed(day)}; moved to the next weekday")
            # Every day from the candidate's on is after the reference at this
            # clock time: the Timing depends on the candidate alone.
            day = _next_day(day, lambda d: allowed(d, in_window=False))
            first = at_clock(day, minutes, send_zone)
    if window is not None:
        placed, minutes = _into_window(first, minutes, window, send_zone, allowed)
        if placed != first:
            was, now = first.astimezone(send_zone), placed.astimezone(send_zone)
            moved = moved or (
                Why.MOVED_WINDOW,
                f"{was:%H:%M} on {was.date().isoformat()} is outside the window "
                f"{window.describe()}; moved to {now:%H:%M} on {now.date().isoformat()}",
            )
            first = placed
    # Deferral walks local dates and re-applies the time, so a DST change between
    # two steps does not drift it. at_clock never crosses midnight.
    day = first.astimezone(send_zone).date()
    slots = [first]
    while len(slots) <= defer_steps:
        day = _next_day(day + _ONE_DAY, allowed)
        slots.append(at_clock(day, minutes, send_zone))
    ends = tuple(_day_end(at.astimezone(send_zone).date(), window, send_zone) for at in slots)
    send = tuple(SendSlot(at, local_date(at, quota_zone)) for at in slots)
    return Timing(send, ends, moved)


def _day_end(day: date, window: Window | None, tz: ZoneInfo) -> datetime:
    return at_clock(day, window.end if window is not None else 24 * 60, tz)


def _into_window(
    slot: datetime,
    minutes: int,
    window: Window,
    tz: ZoneInfo,
    allowed: Callable[[date], bool],
) -> tuple[datetime, int]:
    """The first instant at or after `slot` inside the window on an allowed day,
    and its local time (minutes after midnight) for the deferral steps."""
    local = slot.astimezone(tz)
    day = local.date()
    at = local.hour * 60 + local.minute
    if allowed(day) and window.start <= at < window.end:
        return slot, minutes
    if allowed(day) and at < window.start:
        return at_clock(day, window.start, tz), window.start
    day = _next_day(day + _ONE_DAY, allowed)
    return at_clock(day, window.start, tz), window.start


def _next_day(day: date, allowed: Callable[[date], bool]) -> date:
    """The first allowed day from `day` on; ValueError when none is near."""
    for _ in range(_HORIZON):
        if allowed(day):
            return day
        day += _ONE_DAY
    raise ValueError(
        f"no day from {day - _HORIZON * _ONE_DAY} on for {_HORIZON} days is open to sends "
        "(the send window's days, holidays and blackout dates leave none)"
    )
