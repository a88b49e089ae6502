"""When a send may go out (CONTRACT.md section 9): send windows, holiday
calendars and blackout dates, pacing, across DST. Hand-computed cases, then
properties over random clients and leads."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from allocator.batch import BatchDecider, event_time
from allocator.directory import ClientDirectory, build_snapshot, calendar_of
from allocator.models import Allocation, Client, Resource, ScoredLead
from allocator.patterns import NO_PATTERNS, PatternSet
from allocator.quota import MemoryQuotaStore
from tests.factories import lead, when

NY = ZoneInfo("America/New_York")
TOKYO = ZoneInfo("Asia/Tokyo")


def decider(resources: list[dict[str, Any]], **client: Any) -> BatchDecider:
    clients = [Client.model_validate({"client_id": "acme", **client})]
    rows = [Resource.model_validate({"client_id": "acme", **r}) for r in resources]
    return BatchDecider(
        ClientDirectory.fixed(build_snapshot(clients, rows)),
        MemoryQuotaStore(),
        decided_at=event_time,
    )


async def decide(
    d: BatchDecider, leads: list[ScoredLead], patterns: PatternSet = NO_PATTERNS
) -> list[Allocation]:
    return await d.decide(leads, lambda _: patterns)


def t(text: str) -> datetime:
    return datetime.fromisoformat(text)


def entry(allocation: Allocation, channel: str) -> Any:
    return next(e for e in allocation.channels if e.channel == channel)


EVERYTHING = [
    {"channel": "email", "resource_id": "mail-1"},
    {"channel": "voice", "resource_id": "+1555000"},
    {"channel": "sms", "resource_id": "+1555001"},
]


# --- hand-computed ------------------------------------------------------------


async def test_a_friday_evening_call_waits_for_the_morning() -> None:
    # A voice WHEN pattern for Friday 22:00 New York: outside 08:00-21:00, so
    # Saturday 08:00 (the window is every day); deferrals walk on from there.
    d = decider(EVERYTHING, timezone="America/New_York", max_defer_days=1)
    patterns = PatternSet(when={when("voice", 4, 22).channel: when("voice", 4, 22)})
    [a] = await decide(d, [lead(70, "2026-11-27T18:00:00-05:00")], patterns)
    voice = entry(a, "voice")
    assert voice.send_at == t("2026-11-28T08:00:00-05:00")
    assert voice.reason.code == "moved_window"
    assert voice.reason.detail == (
        "22:00 on 2026-11-27 is outside the window 08:00-21:00; moved to 08:00 on 2026-11-28"
    )
    email = entry(a, "email")  # no window: Monday 09:00, as in round 1
    assert email.send_at == t("2026-11-30T09:00:00-05:00") and email.reason is None


async def test_an_office_hours_window_on_the_default_schedule() -> None:
    d = decider(
        EVERYTHING,
        timezone="America/New_York",
        send_windows={"email": {"days": [0, 1, 2, 3, 4], "start": "09:30", "end": "17:00"}},
    )
    [a] = await decide(d, [lead(40, "2026-11-27T18:00:00-05:00")])
    email = entry(a, "email")  # Monday 09:00 is before 09:30: Monday 09:30
    assert email.send_at == t("2026-11-30T09:30:00-05:00")
    assert email.reason.code == "moved_window"


async def test_christmas_week_in_the_us() -> None:
    d = decider(
        EVERYTHING,
        timezone="America/New_York",
        holidays="US",
        blackout_dates=["2026-12-31"],
        max_defer_days=3,
    )
    # Thursday 24 December 10:00: Friday the 25th is Christmas Day; Monday 28th.
    [a] = await decide(d, [lead(40, "2026-12-24T10:00:00-05:00")])
    email = entry(a, "email")
    assert email.send_at == t("2026-12-28T09:00:00-05:00")
    assert email.reason.code == "moved_holiday"
    assert email.reason.detail == (
        "2026-12-25 is a public holiday in US (Christmas Day); moved to the next weekday"
    )
    # Fill the mailbox's days to see the deferral steps: 29th, 30th, then past
    # the blackout 31st and New Year's Day to Monday 4 January.
    d2 = decider(
        [{"channel": "email", "resource_id": "mail-1", "daily_limit": 1}],
        timezone="America/New_York",
        holidays="US",
        blackout_dates=["2026-12-31"],
        max_defer_days=3,
    )
    out = await decide(
        d2, [lead(40, "2026-12-24T10:00:00-05:00", lead_id=f"L{i}") for i in range(5)]
    )
    days = [entry(a, "email").usage_day for a in out]
    assert days == ["2026-12-28", "2026-12-29", "2026-12-30", "2027-01-04", None]
    # A pattern slot on the holiday moves a week.
    patterns = PatternSet(when={when("email", 4, 14).channel: when("email", 4, 14)})
    [p] = await decide(d, [lead(40, "2026-12-22T10:00:00-05:00", lead_id="P")], patterns)
    # Tuesday 22nd, a Friday 14:00 pattern: the 25th and 1 January are closed.
    assert entry(p, "email").send_at == t("2027-01-08T14:00:00-05:00")
    assert entry(p, "email").reason.code == "moved_holiday"


async def test_a_lead_in_tokyo_of_a_new_york_client() -> None:
    # Window and hour in the lead's zone; the quota day in the client's.
    d = decider(EVERYTHING, timezone="America/New_York")
    patterns = PatternSet(when={when("sms", 4, 6).channel: when("sms", 4, 6)})
    [a] = await decide(d, [lead(95, "2026-11-26T12:00:00Z", timezone="Asia/Tokyo")], patterns)
    sms = entry(a, "sms")  # Friday 06:00 Tokyo is before 08:00: 08:00 Tokyo
    assert sms.send_at == t("2026-11-27T08:00:00+09:00")
    assert sms.usage_day == "2026-11-26"  # Thursday 18:00 in New York
    assert sms.reason.code == "moved_window"


async def test_the_spring_forward_day() -> None:
    # A window that starts in the skipped hour starts at the first valid instant.
    d = decider(
        EVERYTHING,
        timezone="America/New_York",
        send_windows={"email": {"start": "02:30", "end": "05:00"}},
        pacing={"email": {"gap_seconds": 3600}},
    )
    patterns = PatternSet(when={when("email", 6, 1).channel: when("email", 6, 1)})
    leads = [lead(40, "2026-03-07T12:00:00-05:00", lead_id=f"L{i}") for i in range(3)]
    out = await decide(d, leads, patterns)
    sends = [entry(a, "email").send_at for a in out]
    # 01:00 EST is before 02:30, which does not exist: 03:00 EDT (07:00Z).
    first = t("2026-03-08T07:00:00+00:00")
    assert sends[0] is not None and first <= sends[0] < first + timedelta(minutes=30)
    # Paced an hour apart: 03:xx and 04:xx EDT fit before 05:00; the third goes Monday.
    assert sends[1] - sends[0] >= timedelta(minutes=30)  # type: ignore[operator]
    assert entry(out[2], "email").usage_day == "2026-03-09"
    assert entry(out[2], "email").reason.code == "moved_window"


async def test_pacing_spaces_sends_and_a_full_window_takes_the_next_day() -> None:
    d = decider(
        [{"channel": "email", "resource_id": "mail-1"}],
        send_windows={"email": {"start": "09:00", "end": "09:30"}},
        pacing={"email": {"gap_seconds": 600}},
    )
    out = await decide(d, [lead(40, lead_id=f"L{i}") for i in range(4)])
    sends = [entry(a, "email").send_at for a in out]
    nine = t("2026-11-27T09:00:00+00:00")
    for k, at in enumerate(sends[:3]):
        assert nine + timedelta(seconds=600 * k) <= at < nine + timedelta(seconds=600 * k + 300)
    assert entry(out[3], "email").usage_day == "2026-11-30"
    reason = entry(out[3], "email").reason
    assert reason.code == "moved_window"
    assert reason.detail == "1 email domain paced full before the window's end on 2026-11-27"
    # The same leads again (a redelivery) get the same instants.
    assert [
        entry(a, "email").send_at
        for a in await decide(d, [lead(40, lead_id=f"L{i}") for i in range(4)])
    ] == sends


async def test_without_new_fields_only_sms_and_voice_keep_quiet_hours() -> None:
    d = decider(EVERYTHING)
    late = {ch: when(ch, 3, 23) for ch in ("email", "voice", "sms")}
    patterns = PatternSet(when={w.channel: w for w in late.values()})
    [a] = await decide(d, [lead(95)], patterns)
    # Thursday noon, a Thursday 23:00 pattern: that evening, but not for calls and texts.
    assert entry(a, "email").send_at == t("2026-11-26T23:00:00+00:00")
    assert entry(a, "voice").send_at == t("2026-11-27T08:00:00+00:00")
    assert entry(a, "sms").send_at == t("2026-11-27T08:00:00+00:00")


async def test_a_client_may_lift_the_default_window() -> None:
    d = decider(EVERYTHING, send_windows={"sms": None})
    patterns = PatternSet(when={when("sms", 3, 23).channel: when("sms", 3, 23)})
    [a] = await decide(d, [lead(95)], patterns)
    assert entry(a, "sms").send_at == t("2026-11-26T23:00:00+00:00")


# --- properties -----------------------------------------------------------------

ZONES = ["UTC", "America/New_York", "Asia/Tokyo", "Europe/Berlin", "Australia/Lord_Howe"]
START = datetime(2026, 3, 1, tzinfo=UTC)


@st.composite
def setups(draw: st.DrawFn) -> dict[str, Any]:
    start = draw(st.integers(0, 22 * 60))
    end = draw(st.integers(start + 1, 24 * 60))
    window = {
        "days": draw(st.lists(st.integers(0, 6), min_size=1, max_size=7, unique=True)),
        "start": f"{start // 60:02d}:{start % 60:02d}",
        "end": f"{end // 60:02d}:{end % 60:02d}",
    }
    return {
        "timezone": draw(st.sampled_from(ZONES)),
        "max_defer_days": draw(st.integers(0, 5)),
        "send_windows": {"email": window},
        "holidays": draw(st.sampled_from([None, "US", "DE", "JP"])),
        "blackout_dates": [
            (date(2026, 3, 1) + timedelta(days=n)).isoformat()
            for n in draw(st.lists(st.integers(0, 300), max_size=20))
        ],
        "pacing": {"email": {"gap_seconds": draw(st.integers(1, 7200))}},
    }


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    setups(),
    st.lists(
        st.tuples(st.integers(0, 300 * 24), st.sampled_from([None, *ZONES])),
        min_size=1,
        max_size=40,
    ),
    st.integers(1, 30),
)
async def test_no_send_outside_its_window_or_on_a_closed_day_and_paced_apart(
    client: dict[str, Any], times: list[tuple[int, str | None]], limit: int
) -> None:
    d = decider([{"channel": "email", "resource_id": "m", "daily_limit": limit}], **client)
    leads = [
        lead(
            40,
            (START + timedelta(hours=h)).isoformat(),
            lead_id=f"L{i}",
            event_id=f"e{i}",
            timezone=z,
        )
        for i, (h, z) in enumerate(times)
    ]
    out = await decide(d, leads)
    again = await decide(
        decider([{"channel": "email", "resource_id": "m", "daily_limit": limit}], **client), leads
    )
    assert [a.to_json() for a in out] == [a.to_json() for a in again]  # replays
    setup = Client.model_validate({"client_id": "acme", **client})
    window = setup.send_windows["email"]
    assert window is not None
    gap = setup.pacing["email"].gap_seconds
    calendar = calendar_of(setup)
    by_slot: dict[tuple[str, str], list[datetime]] = defaultdict(list)
    for a, ld in zip(out, leads, strict=True):
        e = entry(a, "email")
        if e.send_at is None:
            continue
        zone = ZoneInfo(ld.timezone or setup.timezone)
        local = e.send_at.astimezone(zone)
        minutes = local.hour * 60 + local.minute
        assert local.weekday() in window.days
        assert window.start <= minutes < window.end or (
            minutes >= window.start and window.end == 24 * 60
        ), (local, window)
        assert not calendar.closed(local.date()), local
        if ld.timezone is None:  # one zone: sends of a day share their slot
            by_slot[(e.usage_day, e.timing_source)].append(e.send_at)
    for sends in by_slot.values():
        sends.sort()
        for x, y in pairwise(sends):
            assert (y - x).total_seconds() >= gap / 2
