"""Hypothesis properties of the quota rule and the engine."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import date

from hypothesis import given, settings
from hypothesis import strategies as st

from allocator.batch import BatchDecider, event_time
from allocator.channels import Channel
from allocator.directory import ClientDirectory, build_snapshot
from allocator.patterns import NO_PATTERNS
from allocator.quota import MemoryQuotaStore, ResourceQuota, choose_resource
from tests.factories import ask, client, lead, resource

DAY = date(2026, 11, 27)
limits = st.lists(st.one_of(st.none(), st.integers(0, 20)), min_size=1, max_size=5)


def quotas(lims: list[int | None]) -> tuple[ResourceQuota, ...]:
    return tuple(ResourceQuota(f"r{i}", lim) for i, lim in enumerate(lims))


@given(limits, st.integers(0, 120))
def test_never_more_than_the_limit(lims: list[int | None], n: int) -> None:
    store = MemoryQuotaStore()
    res = quotas(lims)
    got = [store.reserve_now(ask(f"e{i}", Channel.SMS, (DAY,), res)).picks[0] for i in range(n)]
    used = Counter(r.resource_id for r in got if r)
    for q in res:
        assert q.limit is None or used[q.resource_id] <= q.limit
    capacity = sum(q.limit for q in res if q.limit is not None)
    if all(q.limit is not None for q in res):
        assert sum(used.values()) == min(n, capacity)
    else:
        assert sum(used.values()) == n


@given(st.integers(1, 6), st.integers(1, 30), st.integers(0, 200))
def test_equal_limits_spread_at_most_one(k: int, limit: int, n: int) -> None:
    store = MemoryQuotaStore()
    res = quotas([limit] * k)
    for i in range(n):
        store.reserve_now(ask(f"e{i}", Channel.SMS, (DAY,), res))
    counts = [store.count(Channel.SMS, q.resource_id, DAY) for q in res]
    assert max(counts) - min(counts) <= 1


@given(st.lists(st.integers(0, 30), min_size=1, max_size=6), limits)
def test_choice_is_least_used_with_room(counts: list[int], lims: list[int | None]) -> None:
    n = min(len(counts), len(lims))
    counts, res = counts[:n], quotas(lims[:n])
    chosen = choose_resource(counts, res)
    room = [i for i in range(n) if res[i].limit is None or counts[i] < res[i].limit]  # type: ignore[operator]
    if not room:
        assert chosen is None
    else:
        assert chosen == min(room, key=lambda i: (counts[i], res[i].resource_id))


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 100), st.integers(0, 10**6)), max_size=40),
    st.integers(0, 3),
    st.sampled_from(["UTC", "America/New_York", "Asia/Kolkata"]),
)
def test_same_input_and_counters_same_output(
    leads: list[tuple[int, int]], defer: int, tz: str
) -> None:
    rows = [
        lead(score, f"2026-11-{20 + secs % 7:02d}T{secs % 24:02d}:00:00Z", lead_id=f"L{i}")
        for i, (score, secs) in enumerate(leads)
    ]
    snapshot = build_snapshot(
        [client(timezone=tz, max_defer_days=defer)],
        [
            resource("email", "d1", limit=3),
            resource("email", "d2", limit=2),
            resource("linkedin", "s1", limit=1),
            resource("voice", "v1", limit=2),
        ],
    )

    async def run() -> list[str]:
        eng = BatchDecider(
            ClientDirectory.fixed(snapshot), MemoryQuotaStore(), decided_at=event_time
        )
        out = await eng.decide(rows, lambda _: NO_PATTERNS)
        return [a.to_json() for a in out]

    assert asyncio.run(run()) == asyncio.run(run())
