"""AllocatorEngine: the design's API, composed from the decision core and the ports.

The stream worker, the replay and library callers all decide through
`AllocatorEngine.decide_detailed`, so no rule is written twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from allocator.channels import Channel, ResourceType
from allocator.decision import (
    Decision,
    LeadPlan,
    Plan,
    Schedule,
    channel_sequence,
    complete,
    plan_lead,
)
from allocator.directory import ClientDirectory, ClientSetup, daily_limit, unknown_client
from allocator.errors import ErrorCode, InvalidRecord
from allocator.models import Allocation, Resource, ScoredLead, zone
from allocator.patterns import PatternSet
from allocator.quota.base import LeadRequest, QuotaStore, choose_resource
from allocator.store import database as queries
from allocator.tiers import Tier
from allocator.timing import send_slots

log = logging.getLogger(__name__)

AllocationResult = Allocation
PatternLookup = Callable[[ScoredLead], PatternSet]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Undecidable:
    """A valid lead the rules could not decide (e.g. a scored_at so far in the
    future that no send day exists); it goes to the DLQ, the rest go on."""

    lead: ScoredLead
    error: InvalidRecord


T = TypeVar("T")


def _guarded(lead: ScoredLead, step: Callable[..., T], *args: Any) -> T | Undecidable:
    # Only pure steps run here: any exception is about this lead's data, not I/O.
    try:
        return step(*args)
    except Exception as exc:
        message = f"lead {lead.lead_id!r} cannot be decided: {type(exc).__name__}: {exc}"
        return Undecidable(lead, InvalidRecord(ErrorCode.UNDECIDABLE, None, None, message))


def _planned(
    lead: ScoredLead, setup: ClientSetup, patterns: PatternSet, schedule: Schedule
) -> tuple[LeadPlan, LeadRequest | None]:
    plan = plan_lead(lead, setup, patterns, schedule)
    return plan, plan.request()


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
        self.unknown_client_leads = 0
        self._unknown_seen: set[str] = set()

    # --- the batch path shared by stream, replay and library ----------------

    async def decide(
        self,
        leads: Sequence[ScoredLead],
        patterns: PatternLookup,
        replay: bool = False,
    ) -> list[Allocation]:
        """Allocations in input order; InvalidRecord if a lead cannot be decided."""
        allocations = []
        for outcome in await self.decide_detailed(leads, patterns, replay):
            if isinstance(outcome, Undecidable):
                raise outcome.error
            allocations.append(outcome.allocation)
        return allocations

    async def decide_detailed(
        self,
        leads: Sequence[ScoredLead],
        patterns: PatternLookup,
        replay: bool = False,
    ) -> list[Decision | Undecidable]:
        """Allocate a batch of leads with one quota round trip, in input order.

        Live, decided_at is the wall clock; in a replay it is the lead's scored_at.
        A lead the rules cannot decide comes back as Undecidable and costs the
        others nothing; a failure of the quota store or the database raises.
        """
        snapshot = await self.directory.snapshot()
        plans = [self._plan(lead, snapshot.get(lead.client_id), patterns) for lead in leads]
        asked = [p[1] for p in plans if not isinstance(p, Undecidable) and p[1] is not None]
        held = iter(await self.quota.reserve(asked) if asked else [])
        now = self.clock()
        decided: list[Decision | Undecidable] = []
        for planned in plans:
            if isinstance(planned, Undecidable):
                decided.append(planned)
                continue
            plan, request = planned
            decided_at = plan.lead.scored_at if replay else now
            if request is None:
                decided.append(_guarded(plan.lead, complete, plan.lead, plan.plan, (), decided_at))
                continue
            answer = next(held)
            # A redelivery: complete from the plan held with the first answer.
            first = plan.plan if answer.plan == request.plan else Plan.decode(answer.plan)
            decided.append(
                _guarded(plan.lead, complete, plan.lead, first, answer.picks, decided_at)
            )
        return decided

    def _plan(
        self, lead: ScoredLead, setup: ClientSetup | None, patterns: PatternLookup
    ) -> tuple[LeadPlan, LeadRequest | None] | Undecidable:
        return _guarded(
            lead, _planned, lead, self._setup(setup, lead), patterns(lead), self.schedule
        )

    def _setup(self, setup: ClientSetup | None, lead: ScoredLead) -> ClientSetup:
        if setup is not None:
            return setup
        # Not bad input: decided with no resources, counted and logged so that
        # operators notice the missing setup (contract section 5).
        self.unknown_client_leads += 1
        if lead.client_id not in self._unknown_seen:
            self._unknown_seen.add(lead.client_id)
            log.warning(
                "lead %s: client %r is not in the database; every channel no_resource",
                lead.lead_id,
                lead.client_id,
            )
        return unknown_client(lead.client_id)

    # --- the design's API ---------------------------------------------------

    async def allocate(self, db: AsyncSession, lead_id: str, client_id: str) -> AllocationResult:
        """Allocate the lead's latest score from the `leads` table (idempotent per score)."""
        lead = await queries.find_lead(db, lead_id, client_id)
        if lead is None:
            raise LookupError(f"lead_id {lead_id!r} of client_id {client_id!r} is not in leads")
        patterns = await queries.patterns_for(db, client_id)
        [allocation] = await self.decide([lead], lambda _: patterns)
        return allocation

    async def select_resource(self, channel: Channel | str, client_id: str) -> Resource | None:
        """The least-used resource with room today (client's zone); reserves nothing."""
        channel = Channel(channel)
        setup = await self.directory.setup_for(client_id)
        quotas = setup.quotas_for(channel)
        today = self._today(setup)
        counts = await self.quota.usage(channel, [q.resource_id for q in quotas], today)
        chosen = choose_resource(counts, quotas)
        if chosen is None:
            return None
        return next(
            r
            for r in setup.resources
            if r.channel == channel and r.resource_id == quotas[chosen].resource_id
        )

    async def check_rate_limit(self, resource_type: ResourceType | str, resource_id: str) -> bool:
        """True when the resource has reached its daily limit today (client's zone)."""
        setup, resource = await self.directory.owner_of(ResourceType(resource_type), resource_id)
        limit = daily_limit(resource)
        if limit is None:
            return False
        [count] = await self.quota.usage(resource.channel, [resource_id], self._today(setup))
        return count >= limit

    async def increment_usage(self, resource_type: ResourceType | str, resource_id: str) -> int:
        """Count one send on today's counter (client's zone); the new count."""
        setup, resource = await self.directory.owner_of(ResourceType(resource_type), resource_id)
        return await self.quota.increment(resource.channel, resource_id, self._today(setup))

    async def get_optimal_send_time(
        self, db: AsyncSession, client_id: str, channel: Channel | str
    ) -> datetime:
        """Next send time from now: the WHEN pattern if usable, else the default schedule."""
        channel = Channel(channel)
        setup = await self.directory.setup_for(client_id)
        patterns = await queries.patterns_for(db, client_id)
        tz = zone(setup.client.timezone)
        [slot] = send_slots(
            self.clock(), self.schedule.hours[channel], tz, tz, patterns.usable_when(channel), 0
        )
        return slot.send_at

    async def get_channel_sequence(
        self, db: AsyncSession, client_id: str, als_tier: Tier | str
    ) -> list[Channel]:
        patterns = await queries.patterns_for(db, client_id)
        sequence, _ = channel_sequence(Tier(als_tier), patterns.usable_how())
        return sequence

    def _today(self, setup: ClientSetup) -> date:
        return self.clock().astimezone(zone(setup.client.timezone)).date()
