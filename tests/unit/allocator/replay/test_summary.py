"""The replay summary's figures, and the statuses every report counts."""

from __future__ import annotations

from allocator.batch import BatchDecider, event_time
from allocator.decision import Decision
from allocator.directory import ClientDirectory, build_snapshot
from allocator.patterns import NO_PATTERNS
from allocator.quota import MemoryQuotaStore
from allocator.replay.summary import Summary
from allocator.tiers import DISPLAY_ORDER
from streams.metrics import Metrics
from tests.factories import client, lead, resource


def test_balance_is_mean_spread_across_equal_limit_resources() -> None:
    summary = Summary({"name": "t"})
    summary.limits = {
        ("c", "linkedin", "a"): 17,
        ("c", "linkedin", "b"): 17,
        ("c", "linkedin", "solo"): 5,
    }
    summary.usage.update(
        {
            ("c", "linkedin", "a", "2026-11-27"): 3,
            ("c", "linkedin", "b", "2026-11-27"): 2,
            ("c", "linkedin", "a", "2026-11-30"): 4,  # b unused that day: spread 4
            ("c", "linkedin", "solo", "2026-11-27"): 5,  # no peer with its limit: not counted
        }
    )
    assert summary.balance() == 2.5  # (1 + 4) / 2


def test_capacity_needed_is_the_busiest_day_against_capacity() -> None:
    summary = Summary({"name": "t"})
    summary.capacity = {("c", "email"): 70, ("c", "direct_mail"): None}
    summary.demand.update(
        {
            ("c", "email", "2026-11-27"): 40,
            ("c", "email", "2026-11-30"): 95,
            ("c", "direct_mail", "2026-11-27"): 500,
        }
    )
    rows = {r["channel"]: r for r in summary.capacity_needed()}
    assert rows["email"] == {
        "client_id": "c",
        "channel": "email",
        "peak_day": "2026-11-30",
        "peak_demand": 95,
        "daily_capacity": 70,
        "shortfall": 25,
    }
    assert rows["direct_mail"]["shortfall"] == 0  # unlimited


async def test_metrics_and_the_replay_summary_count_the_same_statuses() -> None:
    # One email domain with room for one send a day, for three hot leads of the
    # same instant: the first is sent that day, the other two on later days.
    snapshot = build_snapshot([client()], [resource("email", "d1", limit=1)])
    engine = BatchDecider(
        ClientDirectory.fixed(snapshot), MemoryQuotaStore(), decided_at=event_time
    )
    leads = [lead(90, lead_id=f"l{i}") for i in range(3)]
    decisions = await engine.decide_detailed(leads, lambda _: NO_PATTERNS)
    assert all(isinstance(d, Decision) for d in decisions)
    expected = {("hot", "email", "allocated"): 1, ("hot", "email", "deferred"): 2}
    expected |= {("hot", c, "no_resource"): 3 for c in ("linkedin", "voice", "sms", "direct_mail")}

    summary = Summary({"name": "t"})
    for one, decision in zip(leads, decisions, strict=True):
        assert isinstance(decision, Decision)
        summary.add(decision, one, snapshot["acme"])
    assert dict(summary.entries) == expected
    assert summary.to_json()["statuses"] == {
        "allocated": 1,
        "deferred": 2,
        "exhausted": 0,
        "no_resource": 12,
    }

    metrics = Metrics()
    metrics.record_batch([d for d in decisions if isinstance(d, Decision)])
    counted = {
        (s.labels["tier"], s.labels["channel"], s.labels["status"]): int(s.value)
        for family in metrics.registry.collect()
        if family.name == "allocator_channel_allocations"
        for s in family.samples
        if s.name.endswith("_total")
    }
    assert counted == expected


def test_tiers_are_shown_best_first() -> None:
    assert [t.value for t in DISPLAY_ORDER] == ["hot", "warm", "cool", "cold", "unqualified"]
