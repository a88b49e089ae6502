"""Atomic, idempotent daily quotas: the port and its adapters (Redis, in-memory)."""

from allocator.quota.base import (
    ChannelAsk,
    Held,
    LeadRequest,
    QuotaStore,
    Reservation,
    ResourceQuota,
    choose_resource,
)
from allocator.quota.memory import MemoryQuotaStore

__all__ = [
    "ChannelAsk",
    "Held",
    "LeadRequest",
    "MemoryQuotaStore",
    "QuotaStore",
    "Reservation",
    "ResourceQuota",
    "choose_resource",
]


def open_quota_store(url: str, prefix: str = "", retention_days: int = 3) -> QuotaStore:
    """`redis://...` (one Redis), `redis+cluster://...` (a Redis Cluster; see
    redis_store.RedisTarget for both) or `memory://` (one process only)."""
    if url.startswith("memory://"):
        return MemoryQuotaStore()
    from allocator.quota.redis_store import RedisQuotaStore

    return RedisQuotaStore.from_url(url, prefix=prefix, retention_days=retention_days)


__all__ += ["open_quota_store"]
