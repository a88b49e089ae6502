"""AllocatorEngine: the design's per-call API, for library callers.

It sits above the batch path (allocator/batch.py) and the store: `allocate`
reads the lead and its client's patterns from the database, then decides
through the same `BatchDecider` the stream worker and the replay use.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from allocator.batch import BatchDecider, utc_now, wall_clock
from allocator.channels import Channel, ResourceType
from allocator.decision import Schedule, channel_sequence
from allocator.directory import ClientDirectory, ClientSetup
from allocator.models import Allocation, Resource, zone
from allocator.quota.base import ChannelAsk, QuotaStore, ResourceQuota
from allocator.quota.rules import DayChoice, choose_on_day
from allocator.store import database as queries
from allocator.tiers import Tier
from allocator.timing import plan_sends

AllocationResult = Allocation


class AllocatorEngine:
    def __init__(
        self,
        directory: ClientDirectory,
        quota: QuotaStore,
        schedule: Schedule | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.directory = directory
        self.quota = quota
        self.schedule = schedule or Schedule()
        self.clock = clock
        self.decider = BatchDecider(directory, quota, self.schedule, wall_clock(clock))

    # --- the design's API ---------------------------------------------------

    async def allocate(self, db: AsyncSession, lead_id: str, client_id: str) -> AllocationResult:
        """Allocate the lead's latest score from the `leads` table (idempotent per score)."""
        lead = await queries.find_lead(db, lead_id, client_id)
        if lead is None:
            raise LookupError(f"lead_id {lead_id!r} of client_id {client_id!r} is not in leads")
        patterns = await queries.patterns_for(db, client_id)
        [allocation] = await self.decider.decide([lead], lambda _: patterns)
        return allocation

    async def select_resource(self, channel: Channel | str, client_id: str) -> Resource | None:
        """The resource the rules would take now (client's zone): the client's
        rotation among those with room today by every limit (day cap after
        warm-up, rolling week, pool, health); reserves nothing."""
        channel = Channel(channel)
        setup = await self.directory.setup_for(client_id)
        quotas = setup.quotas_for(channel)
        choice = await self._room_now(setup, channel, quotas)
        if choice.chosen is None:
            return None
        return next(
            r
            for r in setup.resources
            if r.channel == channel and r.resource_id == quotas[choice.chosen].resource_id
        )

    async def check_rate_limit(self, resource_type: ResourceType | str, resource_id: str) -> bool:
        """True when the resource has no room today (client's zone) by any of its
        limits: its daily limit (after warm-up), rolling week, pool, or health."""
        setup, resource = await self.directory.owner_of(ResourceType(resource_type), resource_id)
        quota = next(
            (q for q in setup.quotas_for(resource.channel) if q.resource_id == resource_id),
            None,
        )
        if quota is None:  # paused (inactive): nothing may be sent with it
            return True
        choice = await self._room_now(setup, resource.channel, (quota,))
        return choice.chosen is None

    async def _room_now(
        self, setup: ClientSetup, channel: Channel, quotas: tuple[ResourceQuota, ...]
    ) -> DayChoice:
        """quota/rules.py's choice for today, on the live counters and health."""
        client_id = setup.client.client_id
        now = self.clock()
        ask = ChannelAsk(
            channel,
            (self._today(setup),),
            quotas,
            setup.client.rotation,
            at=(int(now.timestamp()),),
        )
        if not quotas:
            return DayChoice(None)
        # The rules read the counters they need; a first pass on zeros names
        # every one they could (a real count only skips reads), so one round trip.
        wanted: list[str] = []

        def named(key: str) -> int:
            wanted.append(key)
            return 0

        choose_on_day(ask, client_id, 0, named)
        counts = dict(zip(wanted, await self.quota.read_counters(client_id, wanted), strict=True))
        healths = await self.quota.health(client_id, [(channel, q.resource_id) for q in quotas])
        held = {
            q.resource_id: (state, until)
            for q, (state, until, _) in zip(quotas, healths, strict=True)
        }
        return choose_on_day(
            ask, client_id, 0, lambda key: counts.get(key, 0), lambda rid: held.get(rid)
        )

    async def increment_usage(self, resource_type: ResourceType | str, resource_id: str) -> int:
        """Count one send on today's counter (client's zone); the new count."""
        setup, resource = await self.directory.owner_of(ResourceType(resource_type), resource_id)
        return await self.quota.increment(
            resource.channel, resource_id, self._today(setup), client_id=setup.client.client_id
        )

    async def get_optimal_send_time(
        self, db: AsyncSession, client_id: str, channel: Channel | str
    ) -> datetime:
        """Next send time from now: the WHEN pattern if usable, else the default schedule."""
        channel = Channel(channel)
        setup = await self.directory.setup_for(client_id)
        patterns = await queries.patterns_for(db, client_id)
        tz = zone(setup.client.timezone)
        timing = plan_sends(
            self.clock(),
            self.schedule.hours[channel],
            tz,
            tz,
            patterns.usable_when(channel),
            0,
            setup.window(channel),
            setup.calendar,
        )
        return timing.slots[0].send_at

    async def get_channel_sequence(
        self, db: AsyncSession, client_id: str, als_tier: Tier | str
    ) -> list[Channel]:
        patterns = await queries.patterns_for(db, client_id)
        sequence, _ = channel_sequence(Tier(als_tier), patterns.usable_how())
        return sequence

    def _today(self, setup: ClientSetup) -> date:
        return self.clock().astimezone(zone(setup.client.timezone)).date()
