"""In-memory quota store: the same semantics as Redis, for replay and unit tests.

Atomic because asyncio runs one coroutine at a time and nothing here awaits
between reading and writing a counter. The rules are quota/rules.py's; the
counters are keyed as in Redis, without a prefix.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from allocator.channels import Channel
from allocator.quota.base import (
    Blocked,
    ChannelAsk,
    Held,
    LeadRequest,
    Reservation,
    counter_key,
)
from allocator.quota.rules import choose_on_day


class MemoryQuotaStore:
    def __init__(self) -> None:
        # Every day counter by its key (resources, pools, leads, domains).
        self.counters: dict[str, int] = {}
        self._held: dict[str, Held] = {}

    async def reserve(self, requests: Sequence[LeadRequest]) -> list[Held]:
        return [self.reserve_now(request) for request in requests]

    def reserve_now(self, request: LeadRequest) -> Held:
        """One lead, synchronously (nothing here awaits)."""
        held = self._held.get(request.hold_key)
        if held is None:
            taken = [self._take(request.client_id, ask) for ask in request.asks]
            held = Held(
                request.plan,
                tuple(pick for pick, _ in taken),
                tuple(blocked for _, blocked in taken),
            )
            self._held[request.hold_key] = held
        return held

    def _take(self, client_id: str, ask: ChannelAsk) -> tuple[Reservation | None, Blocked | None]:
        first: Blocked | None = None
        count = self.counters.get
        for step in range(len(ask.days)):
            choice = choose_on_day(ask, client_id, step, lambda key: count(key, 0))
            if choice.chosen is None:
                first = first or choice.blocked
                continue
            for key in choice.increments:
                self.counters[key] = self.counters.get(key, 0) + 1
            return Reservation(step, ask.resources[choice.chosen].resource_id, choice.k), first
        return None, first

    def count(self, channel: Channel, resource_id: str, day: date) -> int:
        """A resource's counter on that day."""
        return self.counters.get(counter_key("", channel, resource_id, day), 0)

    # `client_id` as the Redis store takes it; one counter per resource id here,
    # as on one Redis, whichever clients list it.
    async def usage(
        self, channel: Channel, resource_ids: Sequence[str], day: date, *, client_id: str = ""
    ) -> list[int]:
        return [self.count(channel, rid, day) for rid in resource_ids]

    async def read_counters(self, client_id: str, keys: Sequence[str]) -> list[int]:
        """Counters by their keys without a prefix, as RedisQuotaStore.read_counters."""
        return [self.counters.get(key, 0) for key in keys]

    async def increment(
        self, channel: Channel, resource_id: str, day: date, *, client_id: str = ""
    ) -> int:
        key = counter_key("", channel, resource_id, day)
        self.counters[key] = self.counters.get(key, 0) + 1
        return self.counters[key]

    async def close(self) -> None:
        return None
