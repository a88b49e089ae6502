"""Run in a child process: several asyncio clients reserving LinkedIn seats concurrently,
under the daily limit alone (`day`) or under round 2's weekly limits and a pool (`week`)."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta

from allocator.channels import Channel
from allocator.quota import ChannelAsk, LeadRequest, ResourceQuota
from allocator.quota.base import PoolQuota
from allocator.quota.redis_store import RedisQuotaStore

SEATS = tuple(ResourceQuota(f"seat-{i}", 17) for i in range(3))
DAY = date(2026, 11, 27)
CLIENT = "acme"  # on Redis Cluster its keys carry the tag {acme}

# `week`: 4 seats of 17 a day and 12 a week, in a pool of 40 a day and 60 a
# week, each lead asking for any of 7 days: the seats' weeks (48) bind first.
WEEK_DAYS = tuple(DAY + timedelta(days=n) for n in range(7))
POOL = PoolQuota("brand", 40, 60)
WEEK_SEATS = tuple(ResourceQuota(f"seat-{i}", 17, 12, None, POOL) for i in range(4))
ASKS = {
    "day": (ChannelAsk(Channel.LINKEDIN, (DAY,), SEATS),),
    "week": (ChannelAsk(Channel.LINKEDIN, WEEK_DAYS, WEEK_SEATS),),
}


async def _client(url: str, prefix: str, event_ids: list[str], mode: str) -> dict[str, str | None]:
    store = RedisQuotaStore.from_url(url, prefix=prefix)
    asks = ASKS[mode]
    results: dict[str, str | None] = {}
    try:
        for start in range(0, len(event_ids), 20):  # batches, as the stream worker does
            chunk = event_ids[start : start + 20]
            requests = [LeadRequest(e, "plan", asks, asks[0].days[-1], CLIENT) for e in chunk]
            for event_id, held in zip(chunk, await store.reserve(requests), strict=True):
                [pick] = held.picks
                results[event_id] = f"{pick.resource_id}@{pick.step}" if pick else None
            await asyncio.sleep(0)
    finally:
        await store.close()
    return results


async def _many(
    url: str, prefix: str, event_ids: list[str], clients: int, mode: str
) -> dict[str, str | None]:
    shards = [event_ids[i::clients] for i in range(clients)]
    merged: dict[str, str | None] = {}
    for part in await asyncio.gather(*(_client(url, prefix, shard, mode) for shard in shards)):
        merged.update(part)
    return merged


def run(
    url: str, prefix: str, event_ids: list[str], clients: int, mode: str = "day"
) -> dict[str, str | None]:
    """event_id -> "<resource_id>@<deferral step>", or None (exhausted)."""
    return asyncio.run(_many(url, prefix, event_ids, clients, mode))
