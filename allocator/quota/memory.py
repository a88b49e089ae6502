"""In-memory quota store: the same semantics as Redis, for replay and unit tests.

Atomic because asyncio runs one coroutine at a time and nothing here awaits
between reading and writing a counter. The rules are quota/rules.py's and
quota/feedback.py's; the counters are keyed as in Redis, without a prefix.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date

from allocator.channels import Channel
from allocator.quota import feedback as rules
from allocator.quota.base import (
    LAPSE_LEASE_SECONDS,
    NO_HEALTH,
    Blocked,
    ChannelAsk,
    FeedbackOutcome,
    FeedbackRequest,
    HealthSet,
    Held,
    LeadRequest,
    Reservation,
    counter_key,
    health_key,
    health_stat_key,
    sends_key,
    suppressed_key,
)
from allocator.quota.feedback import FeedbackState, Send, field_of, sticky_resource
from allocator.quota.rules import FullDays, choose_on_day


class MemoryQuotaStore:
    def __init__(self, index_sends: bool = True) -> None:
        # False: keep no index of the leads' sends, for a caller that knows
        # nothing will read one: no send-event will come (refunds, stops) and
        # no client keeps a sticky sender. A replay of leads alone is one
        # (replay/runner.py); the index was 3% of its instructions a lead.
        self.index_sends = index_sends
        # Every day counter by its key (resources, pools, leads, domains, health stats).
        self.counters: dict[str, int] = {}
        # Answers by hold_key, or by client and event where the request leaves
        # hold_key to be derived (base.held_name). A caller keeps to one way
        # per lead: a request with the derived key given and one without it
        # would be held apart.
        self._held: dict[str | tuple[str, str], Held] = {}
        self.state = FeedbackState(self.counters)
        # Days found full; forgotten whenever feedback may give a count back or
        # record a health (feedback_now, resume, lapse).
        self._full = FullDays()

    async def reserve(self, requests: Sequence[LeadRequest]) -> list[Held]:
        return [self.reserve_now(request) for request in requests]

    def reserve_now(self, request: LeadRequest) -> Held:
        """One lead, synchronously (nothing here awaits)."""
        key = request.hold_key or (request.client_id, request.event_id)
        held = self._held.get(key)
        if held is None:
            held = self._suppressed(request) or self._reserve(request)
            self._held[key] = held
        return held

    def _suppressed(self, request: LeadRequest) -> Held | None:
        if not request.lead_id or not self.state.suppressed:
            return None
        found = self.state.suppressed.get(suppressed_key(request.client_id, request.lead_id))
        if found is None:
            return None
        kind, since, until = found
        if since <= request.scored_at and (until == -1 or request.scored_at < until):
            none = tuple(None for _ in request.asks)
            return Held(request.plan, none, none, suppressed=f"{kind}:{since}:{until}")
        return None

    def _reserve(self, request: LeadRequest) -> Held:
        # The lead's index of sends, made only once it has one (most leads of a
        # busy replay get none).
        index = self.index_sends and request.lead_id
        index_key = sends_key(request.client_id, request.lead_id) if index else ""
        picks = []
        blocked = []
        for ask in request.asks:
            pick, first = self._take(request, ask, index_key)
            picks.append(pick)
            blocked.append(first)
        return Held(request.plan, tuple(picks), tuple(blocked))

    def _count(self, key: str) -> int:
        return self.counters.get(key, 0)

    def _take(
        self, request: LeadRequest, ask: ChannelAsk, index_key: str
    ) -> tuple[Reservation | None, Blocked | None]:
        client_id = request.client_id
        first: Blocked | None = None
        health: Callable[[str], tuple[str, int] | None] | None = None
        if self.state.health:  # else no health is recorded: every resource is active

            def health(resource_id: str) -> tuple[str, int] | None:
                found = self.state.health.get(health_key(client_id, ask.channel, resource_id))
                return (found[0], found[1]) if found is not None else None

        # A day known full (rules.FullDays) is passed over here, as
        # choose_on_day would answer it, without the call: a busy replay asks
        # for the same full days again and again. choose_on_day reads a lead
        # or domain cap before the days it knows, so only an ask without them.
        full = self._full if health is None and not ask.sticky_days else None
        if ask.lead is not None or ask.domain is not None:
            full = None
        start = 0
        if full is not None:
            start, first = full.skip(ask, client_id)
        for step in range(start, len(ask.days)):
            if full is not None and step > start:  # the first is known not full
                known = full.get(ask, client_id, ask.days[step])
                if known is not None:
                    first = first or known.blocked
                    continue
            sticky = None
            if ask.sticky_days and ask.at:
                index = self.state.sends.get(index_key, {})
                sticky = sticky_resource(index, ask.channel.value, ask.at[step], ask.sticky_days)
            choice = choose_on_day(ask, client_id, step, self._count, health, sticky, self._full)
            if choice.chosen is None:
                first = first or choice.blocked
                continue
            for key in (*choice.increments, *([choice.pace] if choice.pace else [])):
                self.counters[key] = self.counters.get(key, 0) + 1
            resource_id = ask.resources[choice.chosen].resource_id
            if index_key:
                at = (ask.at[step] if ask.at else 0) + choice.k * ask.gap + ask.jitter
                sends = self.state.sends.setdefault(index_key, {})
                sends[field_of(request.allocation_id, ask.channel.value)] = Send(
                    request.event_id,
                    resource_id,
                    at,
                    ask.days[step].isoformat(),
                    list(choice.increments),
                )
            return Reservation(step, resource_id, choice.k), first
        return None, first

    async def feedback(self, requests: Sequence[FeedbackRequest]) -> list[FeedbackOutcome]:
        return [self.feedback_now(request) for request in requests]

    def feedback_now(self, request: FeedbackRequest) -> FeedbackOutcome:
        self._full.forget()
        client_id = request.client_id

        def health(channel: str, resource_id: str) -> str:
            return health_key(client_id, channel, resource_id)

        def stat(channel: str, resource_id: str, kind: str, day: str) -> str:
            return health_stat_key(client_id, channel, resource_id, kind, date.fromisoformat(day))

        return rules.apply(
            self.state,
            request,
            sends_key(client_id, request.lead_id),
            health,
            stat,
            suppressed_key(client_id, request.lead_id),
        )

    async def health(
        self, client_id: str, resources: Sequence[tuple[Channel, str]]
    ) -> list[tuple[str, int, str]]:
        return [
            self.state.health.get(health_key(client_id, channel, rid), NO_HEALTH)
            for channel, rid in resources
        ]

    async def resume(
        self, client_id: str, resources: Sequence[tuple[Channel, str]], at: int
    ) -> int:
        self._full.forget()
        lifted = 0
        for channel, rid in resources:
            key = health_key(client_id, channel, rid)
            if self.state.health.get(key, ("",))[0] == "paused":
                self.state.health[key] = rules.resumed(at)
                lifted += 1
        return lifted

    async def lapse(
        self,
        client_id: str,
        resources: Sequence[tuple[Channel, str]],
        now: int,
        lease: int = LAPSE_LEASE_SECONDS,
    ) -> list[HealthSet]:
        # Forgotten at once: this memory dies with the only caller (no lease).
        self._full.forget()
        back = []
        for channel, rid in resources:
            key = health_key(client_id, channel, rid)
            found = self.state.health.get(key)
            change = rules.lapsed(found, now)
            if change is not None:
                del self.state.health[key]
                back.append(HealthSet(channel.value, rid, "active", change[0], change[1]))
        return back

    async def lapse_published(self, client_id: str, published: Sequence[HealthSet]) -> None:
        return None  # lapse() forgot them already

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
