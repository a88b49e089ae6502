"""The batch path: the allocation rules end to end over the in-memory quota store."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import UTC, date, datetime

from allocator.batch import BatchDecider, event_time
from allocator.channels import Channel
from allocator.directory import ClientDirectory, build_snapshot
from allocator.models import Allocation, Client, Resource, ScoredLead
from allocator.patterns import NO_PATTERNS, PatternSet
from allocator.quota import MemoryQuotaStore
from allocator.quota.base import counter_key
from tests.factories import client, how, lead, resource, when


def engine(clients: list[Client], resources: list[Resource]) -> BatchDecider:
    return BatchDecider(
        ClientDirectory.fixed(build_snapshot(clients, resources)),
        MemoryQuotaStore(),
        decided_at=event_time,
    )


async def decide(
    eng: BatchDecider, leads: list[ScoredLead], patterns: PatternSet = NO_PATTERNS
) -> list[Allocation]:
    return await eng.decide(leads, lambda _: patterns)


def many(n: int, score: int = 90, **extra: object) -> list[ScoredLead]:
    return [lead(score, lead_id=f"L{i}", **extra) for i in range(n)]


async def test_unqualified_lead_gets_empty_channels() -> None:
    [a] = await decide(engine([client()], [resource("email", "d1")]), [lead(10)])
    assert a.als_tier == "unqualified" and a.channels == ()


async def test_hot_lead_all_channels_and_statuses() -> None:
    eng = engine(
        [client()],
        [
            resource("email", "d1"),
            resource("linkedin", "s1"),
            resource("voice", "v1", active=False),
        ],
    )
    [a] = await decide(eng, [lead(90)])
    assert [(c.channel.value, c.status) for c in a.channels] == [
        ("email", "allocated"),
        ("linkedin", "allocated"),
        ("voice", "no_resource"),
        ("sms", "no_resource"),
        ("direct_mail", "no_resource"),
    ]
    email = a.channels[0]
    assert email.resource_type == "email_domain" and email.resource_id == "d1"
    # Thursday 12:00 UTC -> Friday 09:00 (email's default hour).
    assert email.send_at is not None and email.send_at.isoformat() == "2026-11-27T09:00:00+00:00"
    assert email.usage_day == "2026-11-27" and email.timing_source == "default"
    assert a.channels[1].send_at.isoformat() == "2026-11-27T10:00:00+00:00"  # type: ignore[union-attr]
    assert a.decided_at == lead().scored_at and a.sequence_source == "default"


async def test_linkedin_limit_17_per_seat_least_used_ties_smallest_id() -> None:
    eng = engine(
        [client(max_defer_days=0)], [resource("linkedin", "seat-b"), resource("linkedin", "seat-a")]
    )
    out = await decide(eng, many(40, score=40))
    seats = [a.channels[1].resource_id for a in out]
    assert seats[:4] == ["seat-a", "seat-b", "seat-a", "seat-b"]
    assert Counter(seats) == {"seat-a": 17, "seat-b": 17, None: 6}
    assert {a.channels[1].status for a in out[34:]} == {"exhausted"}


async def test_daily_limit_override_and_unlimited_mail_vendor() -> None:
    eng = engine(
        [client(max_defer_days=0)],
        [resource("email", "warmup", limit=2), resource("direct_mail", "vendor")],
    )
    out = await decide(eng, many(300))
    assert sum(a.channels[0].status == "allocated" for a in out) == 2
    assert all(a.channels[4].status == "allocated" for a in out)


async def test_deferral_moves_to_next_weekday_then_exhausts() -> None:
    eng = engine([client(max_defer_days=2)], [resource("email", "d1", limit=1)])
    out = await decide(eng, many(4, score=25))
    assert [a.channels[0].usage_day for a in out] == [
        "2026-11-27",
        "2026-11-30",
        "2026-12-01",
        None,
    ]
    assert out[3].channels[0].status == "exhausted"


async def test_zero_defer_days_exhausts_at_once() -> None:
    eng = engine([client(max_defer_days=0)], [resource("email", "d1", limit=1)])
    out = await decide(eng, many(2, score=25))
    assert [a.channels[0].status for a in out] == ["allocated", "exhausted"]


async def test_quota_is_counted_on_the_send_day() -> None:
    # Two leads decided on different days whose sends land on the same Friday
    # share Friday's quota; a limit of 1 pushes the second to Monday.
    eng = engine([client()], [resource("email", "d1", limit=1)])
    a, b = await decide(
        eng,
        [
            lead(25, "2026-11-26T12:00:00Z", lead_id="x"),
            lead(25, "2026-11-27T08:00:00Z", lead_id="y"),
        ],
    )
    assert a.channels[0].usage_day == "2026-11-27"
    assert b.channels[0].usage_day == "2026-11-30"


async def test_clients_are_isolated_and_unknown_client_is_no_resource() -> None:
    eng = engine([client("a"), client("b")], [resource("email", "only-a", client_id="a")])
    [for_b] = await decide(eng, [lead(25, client_id="b")])
    [for_x] = await decide(eng, [lead(25, client_id="nobody")])
    assert for_b.channels[0].status == "no_resource"
    assert for_x.channels[0].status == "no_resource"
    assert eng.unknown_client_leads == 1


async def test_patterns_set_sequence_and_time() -> None:
    eng = engine(
        [client(timezone="America/New_York")], [resource("email", "d1"), resource("linkedin", "s1")]
    )
    patterns = (
        PatternSet()
        .with_pattern(how(["linkedin", "sms", "email"]))
        .with_pattern(when("linkedin", 0, 15))
    )
    [a] = await decide(eng, [lead(50)], patterns)
    assert a.sequence_source == "pattern"
    assert [c.channel for c in a.channels] == [Channel.LINKEDIN, Channel.EMAIL]
    li = a.channels[0]
    assert li.timing_source == "pattern" and li.send_at.isoformat() == "2026-11-30T15:00:00-05:00"  # type: ignore[union-attr]
    assert a.channels[1].timing_source == "default"


async def test_when_pattern_at_floor_uses_default() -> None:
    eng = engine([client()], [resource("email", "d1")])
    [a] = await decide(eng, [lead(25)], PatternSet().with_pattern(when("email", 0, 15, 0.6)))
    assert a.channels[0].timing_source == "default"


async def test_redelivery_is_idempotent() -> None:
    eng = engine(
        [client(max_defer_days=0)], [resource("linkedin", "s1"), resource("linkedin", "s2")]
    )
    first = await decide(eng, many(30, score=40))
    store = eng.quota
    assert isinstance(store, MemoryQuotaStore)
    counters = dict(store.counters)
    again = await decide(eng, many(30, score=40))
    assert again == first and store.counters == counters


async def test_lead_in_other_zone_uses_client_day() -> None:
    eng = engine([client(timezone="America/New_York")], [resource("email", "d1")])
    [a] = await decide(eng, [lead(25, "2026-11-26T23:00:00Z", timezone="Asia/Tokyo")])
    assert a.channels[0].send_at.isoformat() == "2026-11-27T09:00:00+09:00"  # type: ignore[union-attr]
    assert a.channels[0].usage_day == date(2026, 11, 26).isoformat()


async def test_undecidable_lead_costs_the_others_nothing() -> None:
    import pytest

    from allocator.batch import Undecidable
    from allocator.errors import InvalidRecord

    eng = engine([client()], [resource("email", "d1")])
    # Past the input bounds, so built without validation: no weekday after it exists.
    far = ScoredLead.model_construct(
        **{
            **lead(25, lead_id="far").model_dump(),
            "scored_at": datetime(9999, 12, 31, 23, tzinfo=UTC),
        }
    )
    out = await eng.decide_detailed(
        [lead(25, lead_id="a"), far, lead(25, lead_id="b")], lambda _: NO_PATTERNS
    )
    assert isinstance(out[1], Undecidable) and out[1].error.code == "undecidable"
    assert "far" in out[1].error.message and "OverflowError" in out[1].error.message
    assert [o.allocation.lead_id for o in (out[0], out[2])] == ["a", "b"]  # type: ignore[union-attr]
    with pytest.raises(InvalidRecord):
        await decide(eng, [far])


def _same_but_decided_at(a: Allocation, b: Allocation) -> bool:
    return replace(a, decided_at=b.decided_at) == b


async def _redelivered_after(change: str) -> tuple[Allocation, Allocation, MemoryQuotaStore]:
    """Decide a lead, change the client's setup or patterns, decide the same event again."""
    store = MemoryQuotaStore()
    seats = [resource("linkedin", "s1"), resource("email", "d1")]
    first_setup = build_snapshot([client(max_defer_days=3)], seats)
    eng = BatchDecider(ClientDirectory.fixed(first_setup), store)
    the_lead = lead(70, event_id="ev-1")
    [first] = await eng.decide([the_lead], lambda _: NO_PATTERNS)
    patterns = NO_PATTERNS
    if change == "zone":
        later = build_snapshot([client(timezone="Asia/Tokyo")], seats)
    elif change == "max_defer_days":
        later = build_snapshot([client(max_defer_days=0)], seats)
    elif change == "resources":
        later = build_snapshot([client()], [resource("linkedin", "s0"), *seats])
    else:  # a WHEN and a HOW pattern arrived
        later = first_setup
        patterns = (
            PatternSet().with_pattern(when("email", 4, 16)).with_pattern(how(["voice", "linkedin"]))
        )
    eng.directory = ClientDirectory.fixed(later)
    [again] = await eng.decide([the_lead], lambda _: patterns)
    return first, again, store


async def test_a_redelivery_gets_the_first_allocation_whatever_changed() -> None:
    for change in ("zone", "max_defer_days", "resources", "patterns"):
        first, again, store = await _redelivered_after(change)
        assert _same_but_decided_at(first, again), change
        # counted once, on the days the allocation names
        named = Counter(
            counter_key("", c.channel, c.resource_id, date.fromisoformat(c.usage_day))
            for c in first.channels
            if c.usage_day
        )
        assert store.counters == dict(named), change


async def test_an_event_id_reused_by_another_client_is_its_own_event() -> None:
    eng = engine(
        [client("acme"), client("globex")],
        [resource("email", "acme-d"), resource("email", "globex-d", client_id="globex")],
    )
    a, b = await decide(
        eng,
        [
            lead(25, event_id="same", client_id="acme"),
            lead(25, event_id="same", client_id="globex"),
        ],
    )
    assert a.channels[0].resource_id == "acme-d"
    assert b.channels[0].resource_id == "globex-d"


def test_a_held_plan_is_the_json_it_always_was() -> None:
    """Plan.encode assembles its text from parts (issue 15); it must stay the
    compact json.dumps of [tier, source, channels] that holds written before
    were, or a redelivery would no longer recognise its own plan."""
    import json
    from datetime import timedelta

    from allocator.decision import ChannelPlan, Paced, Plan
    from allocator.tiers import Tier
    from allocator.timing import SendSlot

    at = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    slots = tuple(SendSlot(at + timedelta(days=n), date(2026, 12, 1 + n)) for n in range(3))
    moved = ("moved_window", "08:00 is outside the window 09:00-17:00 (\u00fcn\u00efcode)")
    channels = (
        ChannelPlan(Channel.EMAIL, "pattern", slots),
        ChannelPlan(Channel.SMS, "default", slots[:1], moved, Paced(120, 17)),
        ChannelPlan(Channel.VOICE, "default", slots, None, Paced(60, 0)),
        ChannelPlan(Channel.LINKEDIN, "default", ()),
    )
    for plan in (Plan(Tier.HOT, "pattern", channels), Plan(Tier.COLD, "default", ())):
        expected = json.dumps(
            [
                plan.tier.value,
                plan.sequence_source,
                [
                    [c.channel.value, c.timing_source]
                    + [[[s.send_at.isoformat(), s.usage_day.isoformat()] for s in c.slots]]
                    + (
                        [
                            list(c.moved) if c.moved else None,
                            [c.paced.gap, c.paced.jitter] if c.paced else None,
                        ]
                        if c.moved or c.paced
                        else []
                    )
                    for c in plan.channels
                ],
            ],
            separators=(",", ":"),
        )
        assert plan.encode() == expected
        assert Plan.decode(plan.encode()) == plan


def test_a_leads_request_is_held_under_the_name_it_always_was() -> None:
    """A request leaves its hold key for the store to derive (quota.base.held_name);
    Redis must find a redelivery's first answer under the name written before:
    the derived id of ("held", client, event)."""
    from allocator.decision import Schedule, plan_lead
    from allocator.models.records import derived_id
    from allocator.quota.base import held_name

    setup = build_snapshot([client("acme")], [resource("email", "m1")], []).get("acme")
    assert setup is not None
    request = plan_lead(lead(25, event_id="ev-1"), setup, NO_PATTERNS, Schedule()).request()
    assert request is not None and request.hold_key == ""
    assert held_name(request) == derived_id("held", "acme", "ev-1")
