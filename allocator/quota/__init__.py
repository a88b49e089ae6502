"""Atomic, idempotent daily quotas: the port and its adapters (Redis, in-memory)."""

from allocator.quota.base import (
    QuotaStore,
    Reservation,
    ReservationRequest,
    ResourceQuota,
    choose_resource,
)
from allocator.quota.memory import MemoryQuotaStore

__all__ = [
    "MemoryQuotaStore",
    "QuotaStore",
    "Reservation",
    "ReservationRequest",
    "ResourceQuota",
    "choose_resource",
]
