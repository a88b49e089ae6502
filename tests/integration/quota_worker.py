"""Run in a child process: several asyncio clients reserving LinkedIn seats concurrently."""

from __future__ import annotations

import asyncio
from datetime import date

from allocator.channels import Channel
from allocator.quota import ChannelAsk, LeadRequest, ResourceQuota
from allocator.quota.redis_store import RedisQuotaStore

SEATS = tuple(ResourceQuota(f"seat-{i}", 17) for i in range(3))
DAY = date(2026, 11, 27)
CLIENT = "acme"  # on Redis Cluster its keys carry the tag {acme}


async def _client(url: str, prefix: str, event_ids: list[str]) -> dict[str, str | None]:
    store = RedisQuotaStore.from_url(url, prefix=prefix)
    asks = (ChannelAsk(Channel.LINKEDIN, (DAY,), SEATS),)
    results: dict[str, str | None] = {}
    try:
        for start in range(0, len(event_ids), 20):  # batches, as the stream worker does
            chunk = event_ids[start : start + 20]
            requests = [LeadRequest(e, "plan", asks, DAY, CLIENT) for e in chunk]
            for event_id, held in zip(chunk, await store.reserve(requests), strict=True):
                [pick] = held.picks
                results[event_id] = pick.resource_id if pick else None
            await asyncio.sleep(0)
    finally:
        await store.close()
    return results


async def _many(url: str, prefix: str, event_ids: list[str], clients: int) -> dict[str, str | None]:
    shards = [event_ids[i::clients] for i in range(clients)]
    merged: dict[str, str | None] = {}
    for part in await asyncio.gather(*(_client(url, prefix, shard) for shard in shards)):
        merged.update(part)
    return merged


def run(url: str, prefix: str, event_ids: list[str], clients: int) -> dict[str, str | None]:
    return asyncio.run(_many(url, prefix, event_ids, clients))
