from __future__ import annotations

import random
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from datetime import date
from multiprocessing import get_context

from redis.asyncio import Redis

from allocator.channels import Channel
from allocator.quota import ChannelAsk, LeadRequest, MemoryQuotaStore, ResourceQuota
from allocator.quota.redis_store import RedisQuotaStore
from tests.integration import quota_worker

DAY = date(2026, 11, 27)


async def test_concurrent_processes_never_exceed_seat_limits(
    redis_url: str, redis_prefix: str
) -> None:
    """8 asyncio clients in 2 processes, 3 seats x 17, 2,000 leads: exactly 51 succeed."""
    event_ids = [f"ev-{i}" for i in range(2000)]
    halves = [event_ids[0::2], event_ids[1::2]]

    def run_all() -> dict[str, str | None]:
        merged: dict[str, str | None] = {}
        with ProcessPoolExecutor(2, mp_context=get_context("spawn")) as pool:
            futures = [
                pool.submit(quota_worker.run, redis_url, redis_prefix, half, 4) for half in halves
            ]
            for future in futures:
                merged.update(future.result())
        return merged

    first = run_all()
    assert len(first) == 2000
    per_seat = Counter(seat for seat in first.values() if seat)
    assert sum(per_seat.values()) == 51
    assert per_seat == {"seat-0": 17, "seat-1": 17, "seat-2": 17}

    redis = Redis.from_url(redis_url, decode_responses=True)
    keys = [f"{redis_prefix}ratelimit:linkedin:seat-{i}:daily:2026-11-27" for i in range(3)]
    assert await redis.mget(keys) == ["17", "17", "17"]

    again = run_all()  # the same 2,000 event ids redelivered
    assert again == first
    assert await redis.mget(keys) == ["17", "17", "17"]
    ttls = [await redis.ttl(k) for k in keys]
    assert all(ttl > 3 * 86400 for ttl in ttls)  # expires days after the day ends
    await redis.aclose()


async def test_redis_and_memory_stores_agree(redis_url: str, redis_prefix: str) -> None:
    rng = random.Random(7)
    days = (DAY, date(2026, 11, 30), date(2026, 12, 1))
    requests = []
    for _ in range(600):
        asks = []
        for channel in rng.sample(list(Channel), rng.randint(0, 3)):
            n = rng.randint(1, 4)
            resources = tuple(
                sorted(ResourceQuota(f"r{j}", rng.choice([None, 0, 1, 3, 5])) for j in range(n))
            )
            asks.append(ChannelAsk(channel, days[: rng.randint(1, 3)], resources))
        event = f"e{rng.randint(0, 450)}"  # some events repeat: idempotency
        plan = f"plan-{rng.randint(0, 1)}-ü/é"  # a repeat may come with another plan
        requests.append(LeadRequest(event, plan, tuple(asks), DAY))
    memory = MemoryQuotaStore()
    redis_store = RedisQuotaStore.from_url(redis_url, prefix=redis_prefix, requests_per_call=37)
    try:
        assert await redis_store.reserve(requests) == await memory.reserve(requests)
        for (channel, rid, day), count in memory.counters.items():
            assert await redis_store.usage(channel, [rid], day) == [count]
    finally:
        await redis_store.close()


async def test_a_repeat_gets_the_first_plan_and_picks(redis_url: str, redis_prefix: str) -> None:
    seats = (ResourceQuota("seat-a", 1), ResourceQuota("seat-b", 1))
    first = LeadRequest("ev", "first plan", (ChannelAsk(Channel.LINKEDIN, (DAY,), seats),), DAY)
    # The same event again after its setup changed: another plan, other days, no asks at all.
    later = LeadRequest("ev", "later plan", (), date(2026, 12, 24))
    store = RedisQuotaStore.from_url(redis_url, prefix=redis_prefix)
    try:
        [held] = await store.reserve([first])
        assert held.plan == "first plan" and held.picks[0] is not None
        assert await store.reserve([later]) == [held]
        assert await store.usage(Channel.LINKEDIN, ["seat-a", "seat-b"], DAY) == [1, 0]
        redis = Redis.from_url(redis_url)
        ttl = await redis.ttl(f"{redis_prefix}allocator:held:ev")
        await redis.aclose()
        assert ttl > 3 * 86400  # held as long as the counters it names
    finally:
        await store.close()


async def test_increment_and_usage(redis_url: str, redis_prefix: str) -> None:
    store = RedisQuotaStore.from_url(redis_url, prefix=redis_prefix)
    try:
        assert await store.increment(Channel.SMS, "+1555", DAY) == 1
        assert await store.increment(Channel.SMS, "+1555", DAY) == 2
        assert await store.usage(Channel.SMS, ["+1555", "+1666"], DAY) == [2, 0]
    finally:
        await store.close()
