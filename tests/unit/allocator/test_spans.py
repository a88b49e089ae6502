"""The span caches behind plan_sends and the lead shapes (issue 15): a cached
answer is the answer computed afresh, whatever order references come in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from allocator.calendars import Calendar
from allocator.channels import Channel
from allocator.intervals import SpanCache
from allocator.models import zone
from allocator.timing import (
    DEFAULT_WINDOWS,
    Window,
    _plan_from,
    next_weekday_slot,
    next_weekly,
    plan_sends_until,
)
from tests.factories import when

START = datetime(2026, 10, 20, tzinfo=UTC)  # both DST changes of 2026 within the spans below


def at(minutes: int) -> datetime:
    return START + timedelta(minutes=minutes)


def test_a_span_holds_from_its_start_up_to_its_end() -> None:
    cache: SpanCache[str, str] = SpanCache()
    cache.put("k", at(10), at(20), "a")
    cache.put("k", at(30), at(40), "b")
    assert cache.get("k", at(9)) is None
    assert cache.get("k", at(10)) == ("a", at(20))
    assert cache.get("k", at(19)) == ("a", at(20))
    assert cache.get("k", at(20)) is None
    assert cache.get("k", at(35)) == ("b", at(40))
    assert cache.get("other", at(35)) is None


def test_a_span_seen_from_earlier_is_widened_and_replaced() -> None:
    cache: SpanCache[str, str] = SpanCache()
    cache.put("k", at(15), at(20), "a")
    cache.put("k", at(30), at(40), "b")
    cache.put("k", at(12), at(20), "a2")
    assert cache.get("k", at(12)) == ("a2", at(20))
    assert cache.get("k", at(16)) == ("a2", at(20))
    assert cache.get("k", at(31)) == ("b", at(40))


def test_the_earliest_span_goes_when_a_key_is_full() -> None:
    cache: SpanCache[str, int] = SpanCache(spans=3)
    for n in range(4):
        cache.put("k", at(10 * n), at(10 * n + 5), n)
    assert cache.get("k", at(1)) is None
    assert [cache.get("k", at(10 * n + 1)) for n in (1, 2, 3)] == [
        (1, at(15)),
        (2, at(25)),
        (3, at(35)),
    ]


ZONES = ["America/New_York", "Europe/Berlin", "Asia/Tokyo", "UTC", "Australia/Sydney"]
WINDOWS = [None, Window(frozenset(range(5)), 9 * 60, 17 * 60), DEFAULT_WINDOWS[Channel.SMS]]
CALENDARS = [Calendar(), Calendar("US"), Calendar("DE", frozenset({START.date()}))]


@settings(max_examples=60, deadline=None)
@given(
    references=st.lists(st.integers(0, 60 * 24 * 60), min_size=1, max_size=40),
    send=st.sampled_from(ZONES),
    quota=st.sampled_from(ZONES),
    hour=st.integers(0, 23),
    weekly=st.one_of(st.none(), st.tuples(st.integers(0, 6), st.integers(0, 23))),
    defer=st.integers(0, 4),
    window=st.sampled_from(WINDOWS),
    calendar=st.sampled_from(CALENDARS),
)
def test_cached_timings_are_the_timings_computed_afresh(
    references: list[int],
    send: str,
    quota: str,
    hour: int,
    weekly: tuple[int, int] | None,
    defer: int,
    window: Window | None,
    calendar: Calendar,
) -> None:
    pattern = when("email", weekly[0], weekly[1]) if weekly else None
    for minutes in references:  # in any order, repeats included
        reference = at(minutes)
        timing, until = plan_sends_until(
            reference, hour, zone(send), zone(quota), pattern, defer, window, calendar
        )
        if weekly is not None:
            candidate = next_weekly(reference, weekly[0], weekly[1], zone(send))
        else:
            candidate = next_weekday_slot(reference, hour, zone(send))
        fresh = _plan_from(
            candidate, hour, zone(send), zone(quota), weekly, defer, window, calendar
        )
        assert (timing, until) == (fresh, candidate)


def test_shared_lead_plans_are_the_plans_made_afresh() -> None:
    """Leads of several clients, tiers and zones in shuffled order (as a
    worker reading partitions at once sees them): each plan_lead answer, often
    from a shared Shape, is the plan made for that lead alone."""
    import random

    from allocator.decision import Schedule, _plan_lead, plan_lead
    from allocator.directory import build_snapshot
    from allocator.models import Client, Resource, ScoredLead
    from allocator.patterns import NO_PATTERNS
    from allocator.tiers import tier_for_score
    from streams.samples import SAMPLES_DIR, sample_leads

    lines = {
        name: (SAMPLES_DIR / f"{name}.jsonl").read_text().splitlines()
        for name in ("clients", "resources")
    }
    clients = [Client.model_validate_json(line) for line in lines["clients"]]
    resources = [Resource.model_validate_json(line) for line in lines["resources"]]
    snapshot = build_snapshot(clients, resources, [])
    schedule = Schedule()
    rows = sample_leads(3000, seed=7)
    random.Random(7).shuffle(rows)
    shared = 0
    for row in rows:
        lead = ScoredLead.model_validate(row)
        setup = snapshot.get(lead.client_id)
        if setup is None:
            continue
        planned = plan_lead(lead, setup, NO_PATTERNS, schedule)
        fresh, _ = _plan_lead(lead, tier_for_score(lead.als_score), setup, NO_PATTERNS, schedule)
        assert planned == fresh
        assert planned.request() == fresh.request()
        shared += planned.shape is not None and planned.shape.asks is not None
    assert shared > 1000  # the shapes were used, not just made
