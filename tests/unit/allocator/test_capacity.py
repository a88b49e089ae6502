"""Round 2's capacity rules end to end over the in-memory store (CONTRACT.md
section 8): weekly limits, warm-ups, pools, rotation, lead and domain caps, and
the reason each moved send gives (section 11). Hand-computed cases, then a
property: no cap of any kind is ever passed, whatever the order of the leads."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from allocator.batch import BatchDecider, event_time
from allocator.channels import Channel
from allocator.directory import ClientDirectory, build_snapshot, resource_quota
from allocator.models import Allocation, Client, Pool, Resource, ScoredLead
from allocator.patterns import NO_PATTERNS
from allocator.quota import LeadRequest, MemoryQuotaStore
from allocator.quota.base import Blocked, ChannelAsk, PoolQuota, ResourceQuota, counter_key
from allocator.quota.rules import DayChoice, FullDays, choose_on_day, day_cap
from tests.factories import lead

THURSDAY = "2026-11-26T12:00:00+00:00"


def setup(
    resources: list[dict[str, Any]],
    pools: list[dict[str, Any]] = (),  # type: ignore[assignment]
    **client: Any,
) -> BatchDecider:
    clients = [Client.model_validate({"client_id": "acme", **client})]
    rows = [Resource.model_validate({"client_id": "acme", **r}) for r in resources]
    pool_rows = [Pool.model_validate({"client_id": "acme", **p}) for p in pools]
    return BatchDecider(
        ClientDirectory.fixed(build_snapshot(clients, rows, pool_rows)),
        MemoryQuotaStore(),
        decided_at=event_time,
    )


async def decide(decider: BatchDecider, leads: list[ScoredLead]) -> list[Allocation]:
    return await decider.decide(leads, lambda _: NO_PATTERNS)


def cool(n: int, at: str = THURSDAY, **extra: Any) -> list[ScoredLead]:
    """`n` cool leads (email, linkedin), each its own lead_id."""
    return [lead(40, at, lead_id=f"L{i}", **extra) for i in range(n)]


def per_day(allocations: list[Allocation], channel: str) -> Counter[str]:
    return Counter(
        e.usage_day
        for a in allocations
        for e in a.channels
        if e.channel == channel and e.usage_day is not None
    )


# --- hand-computed --------------------------------------------------------


async def test_a_weekly_limit_holds_over_every_rolling_week() -> None:
    # 17 a day every day would be 119 a week; the seat may hold 30 in any 7 days.
    decider = setup(
        [{"channel": "linkedin", "resource_id": "seat-1", "weekly_limit": 30}],
        max_defer_days=30,
    )
    out = await decide(decider, cool(60))
    days = per_day(out, "linkedin")
    # Fri 17, Mon 13 (30 in the week), then nothing until Friday a week on.
    assert days == {"2026-11-27": 17, "2026-11-30": 13, "2026-12-04": 17, "2026-12-07": 13}
    deferred = [a.channels[1].reason for a in out if a.channels[1].usage_day == "2026-11-30"]
    assert {r.code for r in deferred if r} == {"deferred_full"}  # Friday was full first
    # Monday's lead: Monday has room for the day (13 of 17), not for the week.
    [monday] = await decide(decider, [lead(40, "2026-11-29T12:00:00+00:00", lead_id="M")])
    seat = monday.channels[1]
    assert (
        seat.usage_day == "2026-12-11" and seat.reason is not None
    )  # 12-04 + 12-07 = 30 until then
    assert seat.reason.code == "deferred_weekly"
    assert seat.reason.detail == "1 linkedin seat at their weekly limit on 2026-11-30"


async def test_warmup_caps_by_hand() -> None:
    # start Fri 27th: 2 a day, +3 every 2 days: Fri 2, (Sat 2, Sun 5), Mon 5, Tue 8, Wed 8
    ramp = {"start": "2026-11-27", "initial": 2, "step": 3, "every_days": 2}
    decider = setup(
        [{"channel": "email", "resource_id": "box-1", "warmup": ramp}], max_defer_days=10
    )
    out = await decide(decider, cool(25))
    assert per_day(out, "email") == {
        "2026-11-27": 2,
        "2026-11-30": 5,
        "2026-12-01": 8,
        "2026-12-02": 8,
        "2026-12-03": 2,  # the 25th
    }
    third = out[2].channels[0]
    assert third.reason is not None and third.reason.code == "deferred_warmup"
    assert third.reason.detail == "1 email domain at their warm-up cap on 2026-11-27"


def test_warmup_cap_is_zero_before_start_and_never_above_the_daily_limit() -> None:
    rows = [
        Resource.model_validate(
            {
                "client_id": "a",
                "channel": "email",
                "resource_id": "x",
                "daily_limit": 10,
                "warmup": {"start": "2026-12-01", "initial": 4, "step": 4},
            }
        )
    ]
    quota = resource_quota(rows[0], {})
    assert day_cap(quota, date(2026, 11, 30)) == (0, True)
    assert day_cap(quota, date(2026, 12, 1)) == (4, True)
    assert day_cap(quota, date(2026, 12, 2)) == (8, True)
    assert day_cap(quota, date(2026, 12, 3)) == (10, False)  # 12 > the daily limit


async def test_a_pool_caps_its_mailboxes_together() -> None:
    boxes = [
        {"channel": "email", "resource_id": f"box-{i}", "daily_limit": 10, "pool_id": "acme.io"}
        for i in range(3)
    ]
    pool = {"channel": "email", "pool_id": "acme.io", "daily_limit": 12, "weekly_limit": 20}
    decider = setup(boxes, [pool], max_defer_days=10)
    out = await decide(decider, cool(30))
    assert per_day(out, "email") == {"2026-11-27": 12, "2026-11-30": 8, "2026-12-04": 10}
    codes = Counter(a.channels[0].reason.code for a in out if a.channels[0].reason)
    assert codes == {"deferred_pool": 18}


def test_least_loaded_by_hand() -> None:
    day = date(2026, 11, 27)
    small, big = ResourceQuota("a-small", 10), ResourceQuota("b-big", 40)
    counts = {counter_key("", Channel.EMAIL, "a-small", day): 4}
    counts[counter_key("", Channel.EMAIL, "b-big", day)] = 10

    def pick(rotation: str) -> str:
        ask = ChannelAsk(Channel.EMAIL, (day,), (small, big), rotation)  # type: ignore[arg-type]
        choice = choose_on_day(ask, "acme", 0, lambda k: counts.get(k, 0))
        assert choice.chosen is not None
        return ask.resources[choice.chosen].resource_id

    assert pick("least_used") == "a-small"  # 4 < 10
    assert pick("least_loaded") == "b-big"  # 10/40 < 4/10
    counts[counter_key("", Channel.EMAIL, "b-big", day)] = 16
    assert pick("least_loaded") == "a-small"  # 4/10 = 16/40: a tie goes to the smallest id


async def test_least_loaded_spreads_by_cap() -> None:
    decider = setup(
        [
            {"channel": "email", "resource_id": "warm", "daily_limit": 30},
            {"channel": "email", "resource_id": "new", "daily_limit": 10},
        ],
        rotation="least_loaded",
        max_defer_days=0,
    )
    out = await decide(decider, cool(20))
    assert Counter(a.channels[0].resource_id for a in out) == {"warm": 15, "new": 5}


async def test_a_lead_daily_limit_moves_its_other_channels() -> None:
    decider = setup(
        [
            {"channel": "email", "resource_id": "d1"},
            {"channel": "linkedin", "resource_id": "s1"},
        ],
        lead_daily_limit=1,
    )
    [a] = await decide(decider, cool(1))
    email, linkedin = a.channels
    assert email.usage_day == "2026-11-27" and email.reason is None
    assert linkedin.usage_day == "2026-11-30"
    assert linkedin.reason is not None and linkedin.reason.code == "deferred_lead_limit"
    # the same lead scored again: Friday and Monday hold its first sends
    [again] = await decide(decider, [lead(40, THURSDAY, lead_id="L0", event_id="second")])
    assert [e.usage_day for e in again.channels] == ["2026-12-01", "2026-12-02"]


async def test_a_recipient_domain_cap_defers_email_only() -> None:
    decider = setup(
        [
            {"channel": "email", "resource_id": "d1"},
            {"channel": "linkedin", "resource_id": "s1"},
        ],
        recipient_domain_daily_limit=2,
    )
    out = await decide(decider, cool(3, email_domain="Big-Corp.com"))
    assert [a.channels[0].usage_day for a in out] == ["2026-11-27", "2026-11-27", "2026-11-30"]
    assert out[2].channels[0].reason.code == "deferred_domain_limit"  # type: ignore[union-attr]
    assert {a.channels[1].usage_day for a in out} == {"2026-11-27"}
    other = await decide(decider, [lead(40, THURSDAY, lead_id="x", email_domain="small.org")])
    assert other[0].channels[0].usage_day == "2026-11-27"


async def test_reasons_for_full_exhausted_and_no_resource() -> None:
    decider = setup(
        [{"channel": "linkedin", "resource_id": f"seat-{i}", "daily_limit": 1} for i in range(3)],
        max_defer_days=1,
    )
    out = await decide(decider, cool(7))
    email = out[0].channels[0]
    assert email.status == "no_resource" and email.reason is not None
    assert email.reason.code == "no_resource"
    assert email.reason.detail == "the client has no active email domain"
    fourth = out[3].channels[1]
    assert fourth.usage_day == "2026-11-30" and fourth.reason is not None
    assert fourth.reason.code == "deferred_full"
    assert fourth.reason.detail == "3 linkedin seats full on 2026-11-27"
    seventh = out[6].channels[1]
    assert seventh.status == "exhausted" and seventh.reason is not None
    assert seventh.reason.code == "exhausted"
    assert seventh.reason.detail == (
        "no room on any of 2 days; first 3 linkedin seats full on 2026-11-27"
    )
    assert out[0].channels[1].reason is None  # at its first slot


async def first_step(
    store: MemoryQuotaStore,
    event: str,
    resources: tuple[ResourceQuota, ...],
    channel: Channel = Channel.SMS,
    client: str = "acme",
) -> int | None:
    """The deferral step one ask of `resources` on the 27th or the 28th gets (None: neither)."""
    days = (date(2026, 11, 27), date(2026, 11, 28))
    ask = ChannelAsk(channel, days, resources)
    [held] = await store.reserve([LeadRequest(event, "p", (ask,), days[-1], client)])
    return None if held.picks[0] is None else held.picks[0].step


async def test_a_day_full_on_one_channel_is_not_full_on_another() -> None:
    """The store remembers days found full; one resource tuple asked on two
    channels (a library caller may share it) counts each channel apart."""
    seats = (ResourceQuota("seat", 1),)
    store = MemoryQuotaStore()
    assert await first_step(store, "a", seats, Channel.SMS) == 0
    assert await first_step(store, "b", seats, Channel.SMS) == 1  # the 27th is full, remembered
    assert await first_step(store, "c", seats, Channel.VOICE) == 0  # not for voice
    assert await first_step(store, "d", seats, Channel.VOICE) == 1
    assert await first_step(store, "e", seats, Channel.SMS) is None


async def test_a_pool_full_for_one_client_is_not_full_for_another() -> None:
    """The same: one resource tuple asked for two clients, whose pools count apart."""
    seats = (ResourceQuota("seat", 5, pool=PoolQuota("brand", 1)),)
    store = MemoryQuotaStore()
    assert await first_step(store, "a", seats, client="acme") == 0
    assert (
        await first_step(store, "b", seats, client="acme") == 1
    )  # acme's pool is full on the 27th
    assert await first_step(store, "c", seats, client="globex") == 0  # globex's is not


async def test_leads_sharing_an_ask_pass_over_the_days_found_full() -> None:
    """Leads of one plan shape share their ask, and the store passes over the
    days it found full for it in one lookup (FullDays.skip); each new full day
    moves the next lead on, and the first day's reason stays the first's."""
    days = (date(2026, 11, 27), date(2026, 11, 28), date(2026, 11, 29))
    ask = ChannelAsk(Channel.SMS, days, (ResourceQuota("seat", 1),))
    store = MemoryQuotaStore()
    steps = []
    for event in "abcde":
        [held] = await store.reserve([LeadRequest(event, "p", (ask,), days[-1], "acme")])
        steps.append(None if held.picks[0] is None else held.picks[0].step)
        if event == "e":
            assert held.blocked[0] is not None and held.blocked[0].why == "deferred_full"
    assert steps == [0, 1, 2, None, None]


def test_full_days_skip_is_forgotten_with_the_days() -> None:
    """A skip counts the days known full from the ask's first, and is never
    answered from before a put or a forget."""
    days = (date(2026, 11, 27), date(2026, 11, 28), date(2026, 11, 29))
    ask = ChannelAsk(Channel.SMS, days, (ResourceQuota("seat", 1),))
    full = FullDays()
    warm = DayChoice(None, blocked=Blocked("deferred_warmup", 1, 1))
    full_day = DayChoice(None, blocked=Blocked("deferred_full", 1, 1))
    assert full.skip(ask, "acme") == (0, None)
    full.put(ask, "acme", days[0], warm)
    assert full.skip(ask, "acme") == (1, warm.blocked)
    full.put(ask, "acme", days[2], full_day)  # not next to the first: still one
    assert full.skip(ask, "acme") == (1, warm.blocked)
    full.put(ask, "acme", days[1], full_day)
    assert full.skip(ask, "acme") == (3, warm.blocked)  # the first day's reason
    assert full.skip(ask, "globex") == (0, None)
    full.forget()  # a count given back: no day is known full any more
    assert full.skip(ask, "acme") == (0, None)


# --- the property: no cap is ever passed ----------------------------------

START = date(2026, 11, 23)
START_AT = datetime(2026, 11, 23, tzinfo=UTC)


@st.composite
def histories(draw: st.DrawFn) -> tuple[BatchDecider, list[ScoredLead], dict[str, Any]]:
    pools = [
        {
            "channel": "email",
            "pool_id": f"p{k}",
            "daily_limit": draw(st.none() | st.integers(0, 6)),
            "weekly_limit": draw(st.none() | st.integers(0, 20)),
        }
        for k in range(2)
    ]
    resources = []
    for i in range(draw(st.integers(1, 4))):
        ramp = None
        if draw(st.booleans()):
            ramp = {
                "start": (START + timedelta(days=draw(st.integers(-3, 10)))).isoformat(),
                "initial": draw(st.integers(0, 3)),
                "step": draw(st.integers(0, 3)),
                "every_days": draw(st.integers(1, 3)),
            }
        resources.append(
            {
                "channel": "email",
                "resource_id": f"box-{i}",
                "daily_limit": draw(st.none() | st.integers(0, 5)),
                "weekly_limit": draw(st.none() | st.integers(0, 15)),
                "warmup": ramp,
                "pool_id": draw(st.none() | st.sampled_from(["p0", "p1"])),
            }
        )
    resources.append(
        {
            "channel": "linkedin",
            "resource_id": "seat",
            "daily_limit": draw(st.none() | st.integers(0, 5)),
            "weekly_limit": draw(st.none() | st.integers(0, 15)),
            "warmup": None,
            "pool_id": None,
        }
    )
    client = {
        "max_defer_days": draw(st.integers(0, 8)),
        "rotation": draw(st.sampled_from(["least_used", "least_loaded"])),
        "lead_daily_limit": draw(st.none() | st.integers(0, 2)),
        "recipient_domain_daily_limit": draw(st.none() | st.integers(0, 3)),
    }
    n = draw(st.integers(1, 60))
    leads = [
        lead(
            draw(st.integers(20, 100)),
            (START_AT + timedelta(hours=draw(st.integers(0, 24 * 21)))).isoformat(),
            lead_id=f"L{draw(st.integers(0, 8))}",
            event_id=f"e{i}",
            email_domain=draw(st.sampled_from(["a.com", "b.com", "c.org"])),
        )
        for i in range(n)
    ]  # in no particular time order
    decider = setup(resources, pools, **client)
    return decider, leads, {"resources": resources, "pools": pools, **client}


def week_sums(counts: Counter[date]) -> list[int]:
    if not counts:
        return []
    first, last = min(counts), max(counts)
    days = [first + timedelta(days=n) for n in range((last - first).days + 7)]
    return [sum(counts[d - timedelta(days=k)] for k in range(7)) for d in days]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories(), st.integers(1, 20))
async def test_no_cap_is_ever_passed(
    history: tuple[BatchDecider, list[ScoredLead], dict[str, Any]], batch: int
) -> None:
    decider, leads, spec = history
    out: list[Allocation] = []
    for start in range(0, len(leads), batch):
        out += await decide(decider, leads[start : start + batch])
    sends = [
        (a, e)
        for a in out
        for e in a.channels
        if e.status == "allocated" and e.usage_day is not None
    ]
    box: dict[str, Counter[date]] = {}
    pool: dict[str, Counter[date]] = {}
    per_lead: Counter[tuple[str, str]] = Counter()
    per_domain: Counter[tuple[str, str]] = Counter()
    domains = {ld.key: ld.email_domain for ld in leads}
    by_id = {r["resource_id"]: r for r in spec["resources"]}
    for a, e in sends:
        day = date.fromisoformat(e.usage_day)  # type: ignore[arg-type]
        per_lead[(a.lead_id, e.usage_day)] += 1  # type: ignore[index]
        if e.channel == "email":
            per_domain[(domains[a.event_id] or "", e.usage_day)] += 1  # type: ignore[index]
        r = by_id[e.resource_id]
        box.setdefault(r["resource_id"], Counter())[day] += 1
        if r["pool_id"] is not None:
            pool.setdefault(r["pool_id"], Counter())[day] += 1
    for rid, days in box.items():
        r = by_id[rid]
        quota = resource_quota(Resource.model_validate({"client_id": "acme", **r}), {})
        for day, n in days.items():
            cap, _ = day_cap(quota, day)
            assert cap is None or n <= cap, (rid, day, n, cap)
        if r["weekly_limit"] is not None:
            assert max(week_sums(days)) <= r["weekly_limit"], rid
    for p in spec["pools"]:
        days = pool.get(p["pool_id"], Counter())
        if p["daily_limit"] is not None:
            assert all(n <= p["daily_limit"] for n in days.values()), p
        if p["weekly_limit"] is not None and days:
            assert max(week_sums(days)) <= p["weekly_limit"], p
    if spec["lead_daily_limit"] is not None:
        assert all(n <= spec["lead_daily_limit"] for n in per_lead.values())
    if spec["recipient_domain_daily_limit"] is not None:
        assert all(n <= spec["recipient_domain_daily_limit"] for n in per_domain.values())
    # and every deferral says why
    for _, e in sends:
        if e.reason is not None:
            assert e.reason.code.startswith("deferred_")


async def test_the_library_api_applies_every_limit_of_the_day() -> None:
    from allocator.engine import AllocatorEngine

    clients = [Client.model_validate({"client_id": "acme"})]
    rows = [
        Resource.model_validate({"client_id": "acme", **r})
        for r in (
            {
                "channel": "email",
                "resource_id": "a-new",
                "warmup": {"start": "2026-12-01", "initial": 5, "step": 5},
            },
            {"channel": "email", "resource_id": "b-warm", "daily_limit": 2},
        )
    ]
    store = MemoryQuotaStore()
    engine = AllocatorEngine(
        ClientDirectory.fixed(build_snapshot(clients, rows)),
        store,
        clock=lambda: datetime(2026, 11, 26, 12, tzinfo=UTC),
    )
    assert await engine.check_rate_limit("email_domain", "a-new")  # before its warm-up starts
    chosen = await engine.select_resource("email", "acme")
    assert chosen is not None and chosen.resource_id == "b-warm"
    await engine.increment_usage("email_domain", "b-warm")
    await engine.increment_usage("email_domain", "b-warm")
    assert await engine.check_rate_limit("email_domain", "b-warm")
    assert await engine.select_resource("email", "acme") is None
