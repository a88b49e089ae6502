"""In-memory quota store: the same semantics as Redis, for replay and unit tests.

Atomic because asyncio runs one coroutine at a time and nothing here awaits
between reading and writing a counter.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from allocator.channels import Channel
from allocator.quota.base import ChannelAsk, Held, LeadRequest, Reservation, choose_resource


class MemoryQuotaStore:
    def __init__(self) -> None:
        self.counters: dict[tuple[Channel, str, date], int] = {}
        self._held: dict[str, Held] = {}

    async def reserve(self, requests: Sequence[LeadRequest]) -> list[Held]:
        return [self.reserve_now(request) for request in requests]

    def reserve_now(self, request: LeadRequest) -> Held:
        """One lead, synchronously (nothing here awaits)."""
        held = self._held.get(request.hold_key)
        if held is None:
            held = Held(request.plan, tuple(self._take(ask) for ask in request.asks))
            self._held[request.hold_key] = held
        return held

    def _take(self, ask: ChannelAsk) -> Reservation | None:
        for step, day in enumerate(ask.days):
            counts = [
                self.counters.get((ask.channel, r.resource_id, day), 0) for r in ask.resources
            ]
            chosen = choose_resource(counts, ask.resources)
            if chosen is not None:
                resource_id = ask.resources[chosen].resource_id
                self.counters[(ask.channel, resource_id, day)] = counts[chosen] + 1
                return Reservation(step, resource_id)
        return None

    # `client_id` as the Redis store takes it; one counter per resource id here,
    # as on one Redis, whichever clients list it.
    async def usage(
        self, channel: Channel, resource_ids: Sequence[str], day: date, *, client_id: str = ""
    ) -> list[int]:
        return [self.counters.get((channel, rid, day), 0) for rid in resource_ids]

    async def increment(
        self, channel: Channel, resource_id: str, day: date, *, client_id: str = ""
    ) -> int:
        key = (channel, resource_id, day)
        self.counters[key] = self.counters.get(key, 0) + 1
        return self.counters[key]

    async def close(self) -> None:
        return None
