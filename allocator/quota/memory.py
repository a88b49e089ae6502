"""In-memory quota store: the same semantics as Redis, for replay and unit tests.

Atomic because asyncio runs one coroutine at a time and nothing here awaits
between reading and writing a counter.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from allocator.channels import Channel
from allocator.quota.base import Reservation, ReservationRequest, choose_resource


class MemoryQuotaStore:
    def __init__(self) -> None:
        self.counters: dict[tuple[Channel, str, date], int] = {}
        self._reservations: dict[tuple[str, Channel], Reservation | None] = {}

    async def reserve(self, requests: Sequence[ReservationRequest]) -> list[Reservation | None]:
        return [self.reserve_now(request) for request in requests]

    def reserve_now(self, request: ReservationRequest) -> Reservation | None:
        """One request, synchronously (nothing here awaits)."""
        held_key = (request.event_id, request.channel)
        if held_key in self._reservations:
            return self._reservations[held_key]
        outcome: Reservation | None = None
        for step, day in enumerate(request.days):
            counts = [
                self.counters.get((request.channel, r.resource_id, day), 0)
                for r in request.resources
            ]
            chosen = choose_resource(counts, request.resources)
            if chosen is not None:
                resource_id = request.resources[chosen].resource_id
                key = (request.channel, resource_id, day)
                self.counters[key] = counts[chosen] + 1
                outcome = Reservation(step, resource_id)
                break
        self._reservations[held_key] = outcome
        return outcome

    async def usage(self, channel: Channel, resource_ids: Sequence[str], day: date) -> list[int]:
        return [self.counters.get((channel, rid, day), 0) for rid in resource_ids]

    async def increment(self, channel: Channel, resource_id: str, day: date) -> int:
        key = (channel, resource_id, day)
        self.counters[key] = self.counters.get(key, 0) + 1
        return self.counters[key]

    async def close(self) -> None:
        return None
