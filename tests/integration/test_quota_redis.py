"""The Redis quota store on one Redis. Each check is a function of the URL and a
key prefix, so that test_quota_redis_cluster.py runs the same ones on a Redis Cluster."""

from __future__ import annotations

import random
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, date, datetime, time, timedelta
from multiprocessing import get_context
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from allocator.channels import Channel
from allocator.errors import ServiceUnavailable
from allocator.quota import ChannelAsk, LeadRequest, MemoryQuotaStore, ResourceQuota
from allocator.quota.base import (
    Cap,
    PoolQuota,
    Ramp,
    cap_key,
    counter_key,
    pace_key,
    pool_key,
    sends_key,
)
from allocator.quota.redis_store import INDEX_DAYS, RedisQuotaStore, RedisTarget
from tests.integration import quota_worker

DAY = date(2026, 11, 27)


def raw_redis(url: str) -> Redis | RedisCluster:
    """A plain client of the store's Redis, to look at its keys."""
    target = RedisTarget.parse(url)
    if target.cluster:
        return RedisCluster.from_url(target.url, decode_responses=True)
    return Redis.from_url(target.url, decode_responses=True)


def acme_key(url: str, prefix: str, key: str) -> str:
    """The contract's `key` of client acme as stored: `{acme}` before it on a cluster."""
    return f"{prefix}{{acme}}{key}" if RedisTarget.parse(url).cluster else f"{prefix}{key}"


def run_in_two_processes(
    url: str, prefix: str, event_ids: list[str], mode: str
) -> dict[str, str | None]:
    """Half of the events each to 2 processes of 4 asyncio clients (quota_worker)."""
    halves = [event_ids[0::2], event_ids[1::2]]
    merged: dict[str, str | None] = {}
    with ProcessPoolExecutor(2, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(quota_worker.run, url, prefix, half, 4, mode) for half in halves]
        for future in futures:
            merged.update(future.result())
    return merged


async def check_concurrent_processes_never_exceed_seat_limits(url: str, prefix: str) -> None:
    """8 asyncio clients in 2 processes, 3 seats x 17, 2,000 leads: exactly 51 succeed."""
    event_ids = [f"ev-{i}" for i in range(2000)]

    def run_all() -> dict[str, str | None]:
        return run_in_two_processes(url, prefix, event_ids, "day")

    first = run_all()
    assert len(first) == 2000
    per_seat = Counter(seat.split("@")[0] for seat in first.values() if seat)
    assert sum(per_seat.values()) == 51
    assert per_seat == {"seat-0": 17, "seat-1": 17, "seat-2": 17}

    redis = raw_redis(url)
    keys = [
        acme_key(url, prefix, f"ratelimit:linkedin:seat-{i}:daily:2026-11-27") for i in range(3)
    ]
    assert await redis.mget(keys) == ["17", "17", "17"]

    again = run_all()  # the same 2,000 event ids redelivered
    assert again == first
    assert await redis.mget(keys) == ["17", "17", "17"]
    ttls = [await redis.ttl(k) for k in keys]
    assert all(ttl > 3 * 86400 for ttl in ttls)  # expires days after the day ends
    await redis.aclose()


async def check_concurrent_processes_keep_weekly_and_pool_limits(url: str, prefix: str) -> None:
    """8 asyncio clients in 2 processes, 4 seats of 17 a day and 12 a week in a
    pool of 40 a day and 60 a week, 2,000 leads asking for any of 7 days: the
    seats' weeks bind (48 sends), the pool's day caps the first day (40), and
    sending all 2,000 again changes nothing."""
    event_ids = [f"wk-{i}" for i in range(2000)]
    first = run_in_two_processes(url, prefix, event_ids, "week")
    assert len(first) == 2000
    taken = Counter(pick for pick in first.values() if pick)
    assert sum(taken.values()) == 48
    per_seat = Counter(pick.split("@")[0] for pick in taken.elements())
    assert per_seat == {f"seat-{i}": 12 for i in range(4)}
    per_day = Counter(int(pick.split("@")[1]) for pick in taken.elements())
    assert per_day == {0: 40, 1: 8}

    redis = raw_redis(url)
    days = quota_worker.WEEK_DAYS
    pool_days = [
        acme_key(url, prefix, pool_key("", Channel.LINKEDIN, "acme", "brand", d)) for d in days
    ]
    assert [int(v or 0) for v in await redis.mget(pool_days)] == [40, 8, 0, 0, 0, 0, 0]
    again = run_in_two_processes(url, prefix, event_ids, "week")
    assert again == first
    assert [int(v or 0) for v in await redis.mget(pool_days)] == [40, 8, 0, 0, 0, 0, 0]
    await redis.aclose()


# Clients of the parity check: plain ids, ids with the characters a hash tag
# is made of, which must still keep each client's keys in one slot, and text
# past ASCII and past the BMP (in resource ids too: the script's call carries
# them as UTF-8).
CLIENTS = ("acme", "globex", "{x}", "a}b{c", "%7B", "ü {", "seat-\U0001f600")


def parity_requests() -> list[LeadRequest]:
    """1,200 leads of 6 clients over two weeks, under every capacity rule of
    round 2 at random (weekly limits, warm-ups, pools, rotation, lead and
    domain caps); some events repeat (idempotency)."""
    rng = random.Random(7)
    days = tuple(DAY + timedelta(days=n) for n in range(14))
    pools = {
        client: [
            PoolQuota(f"p{k}", rng.choice([None, 2, 6]), rng.choice([None, 4, 15]))
            for k in range(2)
        ]
        for client in CLIENTS
    }
    requests = []
    for _ in range(1200):
        client = rng.choice(CLIENTS)
        lead = f"lead-{rng.randint(0, 40)}"
        lead_cap = Cap(lead, rng.choice([1, 2])) if rng.random() < 0.3 else None
        asks = []
        for channel in rng.sample(list(Channel), rng.randint(0, 3)):
            n = rng.randint(1, 4)
            # Each client its own resources: the memory store (the reference)
            # has one counter per resource id whoever lists it, as one Redis
            # does; on a cluster each client counts its own (README).
            resources = tuple(
                ResourceQuota(
                    f"{client}/r{j}",
                    rng.choice([None, 0, 1, 3, 5]),
                    rng.choice([None, None, 2, 7]),
                    Ramp(rng.choice(days), rng.randint(0, 2), rng.randint(0, 2), rng.randint(1, 3))
                    if rng.random() < 0.3
                    else None,
                    rng.choice([None, *pools[client]]),
                )
                for j in range(n)
            )
            start_at = rng.randrange(len(days) - 3)
            domain = None
            if channel is Channel.EMAIL and rng.random() < 0.4:
                domain = Cap(rng.choice(["a.com", "b:c.org"]), rng.choice([1, 3]))
            ask_days = days[start_at : start_at + rng.randint(1, 3)]
            paced = tuple(rng.randint(0, 4) for _ in ask_days) if rng.random() < 0.3 else None
            asks.append(
                ChannelAsk(
                    channel,
                    ask_days,
                    resources,
                    rng.choice(["least_used", "least_loaded"]),
                    lead_cap,
                    domain,
                    paced,
                )
            )
        event = f"{client}|e{rng.randint(0, 150)}"  # hold keys name the client, as in production
        plan = f"plan-{rng.randint(0, 1)}-ü/é"  # a repeat may come with another plan
        requests.append(LeadRequest(event, plan, tuple(asks), days[-1], client))
    return requests


def counter_owners(requests: list[LeadRequest]) -> dict[str, str]:
    """Every counter key a request may count in (without a prefix), and its client."""
    owners: dict[str, str] = {}
    for request in requests:
        client = request.client_id
        for ask in request.asks:
            for day in ask.days:
                for r in ask.resources:
                    owners[counter_key("", ask.channel, r.resource_id, day)] = client
                    if ask.paced is not None:
                        owners[pace_key("", ask.channel, r.resource_id, day)] = client
                    if r.pool is not None:
                        owners[pool_key("", ask.channel, client, r.pool.pool_id, day)] = client
                for kind, cap in (("lead", ask.lead), ("domain", ask.domain)):
                    if cap is not None:
                        owners[cap_key("", kind, client, cap.name, day)] = client
    return owners


async def check_redis_and_memory_stores_agree(url: str, prefix: str) -> None:
    requests = parity_requests()
    memory = MemoryQuotaStore()
    redis_store = RedisQuotaStore.from_url(url, prefix=prefix, requests_per_call=37)
    redis = raw_redis(url)
    try:
        held = await memory.reserve(requests)
        assert await redis_store.reserve(requests) == held
        # every rule had its turn
        whys = Counter(b.why for h in held for b in h.blocked if b is not None)
        assert set(whys) >= {
            "deferred_full",
            "deferred_warmup",
            "deferred_weekly",
            "deferred_pool",
            "deferred_lead_limit",
            "deferred_domain_limit",
            "moved_window",
        }, whys
        # the k of each send (pacing) is the resource's count before it
        assert any(p is not None and p.k > 0 for h in held for p in h.picks)
        owners = counter_owners(requests)
        assert set(memory.counters) <= set(owners)
        for key, client in owners.items():
            stored = await redis.get(redis_store.keys.client_prefix(client) + key)
            assert int(stored or 0) == memory.counters.get(key, 0), key
    finally:
        await redis_store.close()
        await redis.aclose()


async def check_a_repeat_gets_the_first_plan_and_picks(url: str, prefix: str) -> None:
    seats = (ResourceQuota("seat-a", 1), ResourceQuota("seat-b", 1))
    asks = (ChannelAsk(Channel.LINKEDIN, (DAY,), seats),)
    first = LeadRequest("ev", "first plan", asks, DAY, "acme")
    # The same event again after its setup changed: another plan, other days, no asks at all.
    later = LeadRequest("ev", "later plan", (), date(2026, 12, 24), "acme")
    store = RedisQuotaStore.from_url(url, prefix=prefix)
    try:
        [held] = await store.reserve([first])
        assert held.plan == "first plan" and held.picks[0] is not None
        assert await store.reserve([later]) == [held]
        usage = await store.usage(Channel.LINKEDIN, ["seat-a", "seat-b"], DAY, client_id="acme")
        assert usage == [1, 0]
        redis = raw_redis(url)
        ttl = await redis.ttl(acme_key(url, prefix, "allocator:held:ev"))
        await redis.aclose()
        assert ttl > 3 * 86400  # held as long as the counters it names
    finally:
        await store.close()


async def check_increment_and_usage(url: str, prefix: str) -> None:
    store = RedisQuotaStore.from_url(url, prefix=prefix)
    try:
        assert await store.increment(Channel.SMS, "+1555", DAY, client_id="acme") == 1
        assert await store.increment(Channel.SMS, "+1555", DAY, client_id="acme") == 2
        assert await store.usage(Channel.SMS, ["+1555", "+1666"], DAY, client_id="acme") == [2, 0]
    finally:
        await store.close()


async def check_counters_there_before_keep_their_expiry(url: str, prefix: str) -> None:
    """A call writes a counter that was there before (SET ... KEEPTTL in
    reserve.lua) keeping its expiry, and sets a new one, or one at 0, with its
    day's: a seat's counter read when a later call's verdict is made, a
    lead's cap counter read before the leads, and a counter left at 0."""
    day = date.today() + timedelta(days=1)  # not over: its expiry does not count from now
    seat = (ResourceQuota("seat-a", 100),)
    store = RedisQuotaStore.from_url(url, prefix=prefix)
    redis = raw_redis(url)
    counter = acme_key(url, prefix, counter_key("", Channel.LINKEDIN, "seat-a", day))

    def lead_counter(n: int) -> str:
        return acme_key(url, prefix, cap_key("", "lead", "acme", f"lead-{n}", day))

    def request(event: str, n: int) -> LeadRequest:
        ask = ChannelAsk(Channel.LINKEDIN, (day,), seat, lead=Cap(f"lead-{n}", 5))
        return LeadRequest(event, "p", (ask,), day, "acme")

    try:
        await store.reserve([request("ev-0", 0)])
        first = await redis.pexpiretime(counter)
        assert first > 0 and await redis.pexpiretime(lead_counter(0)) == first
        for key in (counter, lead_counter(0)):  # a minute earlier: to tell them apart
            await redis.pexpireat(key, first - 60_000)
        await redis.set(lead_counter(2), 0)  # at 0 and without an expiry
        await store.reserve([request("ev-1", 0), request("ev-2", 1)])
        await store.reserve([request("ev-3", 2)])
        assert await redis.get(counter) == "4"
        assert await redis.pexpiretime(counter) == first - 60_000  # kept, not set again
        assert await redis.get(lead_counter(0)) == "2"
        assert await redis.pexpiretime(lead_counter(0)) == first - 60_000
        for new in (1, 2):  # new, and at 0: set with the day's expiry
            assert await redis.get(lead_counter(new)) == "1"
            assert await redis.pexpiretime(lead_counter(new)) == first
    finally:
        await redis.aclose()
        await store.close()


async def test_concurrent_processes_never_exceed_seat_limits(
    redis_url: str, redis_prefix: str
) -> None:
    await check_concurrent_processes_never_exceed_seat_limits(redis_url, redis_prefix)


async def test_concurrent_processes_keep_weekly_and_pool_limits(
    redis_url: str, redis_prefix: str
) -> None:
    await check_concurrent_processes_keep_weekly_and_pool_limits(redis_url, redis_prefix)


async def test_counters_there_before_keep_their_expiry(redis_url: str, redis_prefix: str) -> None:
    await check_counters_there_before_keep_their_expiry(redis_url, redis_prefix)


async def test_redis_and_memory_stores_agree(redis_url: str, redis_prefix: str) -> None:
    await check_redis_and_memory_stores_agree(redis_url, redis_prefix)


async def test_a_repeat_gets_the_first_plan_and_picks(redis_url: str, redis_prefix: str) -> None:
    await check_a_repeat_gets_the_first_plan_and_picks(redis_url, redis_prefix)


async def test_increment_and_usage(redis_url: str, redis_prefix: str) -> None:
    await check_increment_and_usage(redis_url, redis_prefix)


async def test_a_call_of_many_numbers_agrees_with_the_memory_store(
    redis_url: str, redis_prefix: str
) -> None:
    """One script call whose leads pass more whole numbers than struct.unpack
    returns at once (reserve.lua reads them 4,000 at a time): 250 leads of 26
    numbers each (6,500), every lead its own cap on 3 channels of 3 days, and
    email its domain's."""
    days = tuple(DAY + timedelta(days=n) for n in range(3))
    seats = tuple(ResourceQuota(f"seat-{i}", 10) for i in range(3))
    requests = [
        LeadRequest(
            f"ev-{i}",
            "p",
            tuple(
                ChannelAsk(
                    channel,
                    days,
                    seats,
                    lead=Cap(f"lead-{i % 60}", 2),
                    domain=Cap("d.com", 25) if channel is Channel.EMAIL else None,
                )
                for channel in (Channel.EMAIL, Channel.SMS, Channel.LINKEDIN)
            ),
            days[-1],
            "acme",
        )
        for i in range(250)
    ]
    store = RedisQuotaStore.from_url(redis_url, prefix=redis_prefix, requests_per_call=250)
    try:
        expected = await MemoryQuotaStore().reserve(requests)
        assert await store.reserve(requests) == expected
        # the lead caps, the domain's and the seats' all bound somewhere in it
        whys = {b.why for h in expected for b in h.blocked if b is not None}
        assert {"deferred_lead_limit", "deferred_domain_limit", "deferred_full"} <= whys, whys
    finally:
        await store.close()


@pytest.mark.parametrize("leads", [800, 801, 1600])
async def test_a_call_reads_its_numbers_whole_at_the_part_edges(
    redis_url: str, redis_prefix: str, leads: int
) -> None:
    """Leads without asks pass 5 numbers each: one call of exactly 4,000 (one
    part), 4,005 (a part and 5) and 8,000 (two whole parts); a repeat of the
    first half gets their held answers back."""
    store = RedisQuotaStore.from_url(redis_url, prefix=redis_prefix, requests_per_call=leads)
    requests = [LeadRequest(f"ev-{i}", f"plan-{i}", (), DAY, "acme") for i in range(leads)]
    try:
        answers = await store.reserve(requests)
        assert [h.plan for h in answers] == [f"plan-{i}" for i in range(leads)]
        again = [LeadRequest(f"ev-{i}", "later", (), DAY, "acme") for i in range(leads // 2)]
        assert [h.plan for h in await store.reserve(again)] == [
            f"plan-{i}" for i in range(leads // 2)
        ]
    finally:
        await store.close()


async def test_one_redis_keeps_the_contract_keys(redis_url: str, redis_prefix: str) -> None:
    """No hash tag on one Redis: the keys are exactly the contract's, whatever the client."""
    seats = (ResourceQuota("seat-a", None),)
    request = LeadRequest("ev", "p", (ChannelAsk(Channel.LINKEDIN, (DAY,), seats),), DAY, "{x}")
    store = RedisQuotaStore.from_url(redis_url, prefix=redis_prefix)
    redis = raw_redis(redis_url)
    try:
        await store.reserve([request])
        keys = {k async for k in redis.scan_iter(match=f"{redis_prefix}*")}
        assert keys == {
            f"{redis_prefix}ratelimit:linkedin:seat-a:daily:2026-11-27",
            f"{redis_prefix}allocator:held:ev",
        }
    finally:
        await redis.aclose()
        await store.close()


async def test_wait_for_a_replica_that_one_redis_lacks_is_an_outage(
    redis_url: str, redis_prefix: str
) -> None:
    """`?wait_replicas=1` on a Redis without replicas: every batch is reported
    unavailable (retried), none is handed back unreplicated."""
    seats = (ResourceQuota("seat-a", None),)
    request = LeadRequest("ev", "p", (ChannelAsk(Channel.LINKEDIN, (DAY,), seats),), DAY, "acme")
    given = RedisTarget.parse(redis_url)
    redis = raw_redis(redis_url)
    replicas = (await redis.info("replication")).get("connected_slaves", 0)
    await redis.aclose()
    if replicas:
        pytest.skip("this Redis has replicas: WAIT would succeed")
    separator = "&" if "?" in given.url else "?"
    store = RedisQuotaStore.from_url(
        f"{given.url}{separator}wait_replicas=1&wait_timeout_ms=10", prefix=redis_prefix
    )
    try:
        try:
            await store.reserve([request])
        except ServiceUnavailable as exc:
            assert "replica" in str(exc)
        else:
            raise AssertionError("a batch no replica acknowledged was handed back")
    finally:
        await store.close()


async def test_a_leads_index_of_sends_lives_as_long_as_its_latest_send_needs(
    redis_url: str, redis_prefix: str
) -> None:
    """The index is written with the lead's sends and kept INDEX_DAYS after the
    latest send day that added to it: a later send lengthens its life, an event
    that sent nothing leaves it, and a sticky sender reads it back."""
    seats = (ResourceQuota("seat-a", 5), ResourceQuota("seat-b", 5))
    full = (ResourceQuota("seat-a", 0), ResourceQuota("seat-b", 0))
    store = RedisQuotaStore.from_url(redis_url, prefix=redis_prefix)
    redis = raw_redis(redis_url)
    index = acme_key(redis_url, redis_prefix, sends_key("acme", "lead-1"))

    def request(n: int, day: date, resources: tuple[ResourceQuota, ...], sticky: int = 0) -> Any:
        at = int(datetime.combine(day, time(14), tzinfo=UTC).timestamp())
        ask = ChannelAsk(Channel.LINKEDIN, (day,), resources, at=(at,), sticky_days=sticky)
        return LeadRequest(f"h{n}", "p", (ask,), day, "acme", "lead-1", f"a{n}", f"e{n}", at)

    def lives_until(day: date) -> int:
        return store.expires_at(day + timedelta(days=INDEX_DAYS))

    # Days from tomorrow: expires_at counts from now for days already over.
    day = date.today() + timedelta(days=1)
    try:
        first = await store.reserve([request(1, day, seats)])
        assert first[0].picks[0] is not None
        assert await redis.hlen(index) == 1
        assert await redis.expiretime(index) == lives_until(day)
        later = day + timedelta(days=10)
        await store.reserve([request(2, later, seats)])
        assert await redis.hlen(index) == 2
        assert await redis.expiretime(index) == lives_until(later)
        nothing = await store.reserve([request(3, later + timedelta(days=5), full)])
        assert nothing[0].picks[0] is None
        assert await redis.hlen(index) == 2
        assert await redis.expiretime(index) == lives_until(later)  # not lengthened
        # The sticky sender takes the resource the lead last had, read from
        # the index: both seats are empty that day, and without it the tie
        # goes to the first listed.
        assert first[0].picks[0].resource_id == "seat-a"
        other = "seat-b"
        await store.reserve([request(4, later + timedelta(days=1), (ResourceQuota(other, 5),))])
        sticky = await store.reserve([request(5, later + timedelta(days=2), seats, sticky=8)])
        assert sticky[0].picks[0] is not None
        assert sticky[0].picks[0].resource_id == other
        # In one call: a send to seat-a, then a sticky ask the same day. It
        # must see that send (not yet in Redis) over the index's latest
        # (seat-b); without the sticky sender seat-b, the emptier, would win.
        only_a = (ResourceQuota("seat-a", 5),)
        both = await store.reserve(
            [
                request(6, later + timedelta(days=4), only_a),
                request(7, later + timedelta(days=4), seats, sticky=8),
            ]
        )
        assert [h.picks[0].resource_id if h.picks[0] else None for h in both] == [
            "seat-a",
            "seat-a",
        ]
    finally:
        await redis.aclose()
        await store.close()
