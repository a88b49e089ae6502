"""The batch path every caller decides through: leads -> plans -> one quota
round trip -> allocations, in input order.

The stream worker, the replay and the design's per-call API
(allocator/engine.py) all use `BatchDecider`, so no rule is written twice.
What differs between them is chosen when the decider is built: where clients
come from (the directory), which quota store counts, and what `decided_at`
says (`wall_clock` live, `event_time` in a replay).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from allocator.decision import Decision, LeadPlan, Plan, Schedule, complete, plan_lead
from allocator.directory import ClientDirectory, ClientSetup, unknown_client
from allocator.errors import UndecidableLead
from allocator.frozen import fast_init
from allocator.models import Allocation, ScoredLead
from allocator.patterns import PatternSet
from allocator.quota.base import Held, LeadRequest, QuotaStore

log = logging.getLogger(__name__)

PatternLookup = Callable[[ScoredLead], PatternSet]
# What an allocation's decided_at says about the lead it was decided for.
DecidedAt = Callable[[ScoredLead], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def wall_clock(clock: Callable[[], datetime] = utc_now) -> DecidedAt:
    """Live: the time of deciding."""
    return lambda lead: clock()


def event_time(lead: ScoredLead) -> datetime:
    """In a replay: the lead's scored_at, so that the same history gives the same bytes."""
    return lead.scored_at


@fast_init
@dataclass(frozen=True, slots=True)
class Undecidable:
    """A valid lead the rules could not decide; it goes to the DLQ, the rest go on."""

    lead: ScoredLead
    error: UndecidableLead


# Per lead of a batch: its plan and quota request, or why it cannot be decided.
Planned = list["tuple[LeadPlan, LeadRequest | None] | Undecidable"]


# The answer a lead without channels completes from: no picks, nothing blocked.
_NOTHING_HELD = Held("", ())


def _undecidable(lead: ScoredLead, exc: Exception) -> Undecidable:
    return Undecidable(lead, UndecidableLead(lead.lead_id, exc))


def _planned(
    lead: ScoredLead, setup: ClientSetup, patterns: PatternSet, schedule: Schedule
) -> tuple[LeadPlan, LeadRequest | None]:
    plan = plan_lead(lead, setup, patterns, schedule)
    return plan, plan.request()


class BatchDecider:
    def __init__(
        self,
        directory: ClientDirectory,
        quota: QuotaStore,
        schedule: Schedule | None = None,
        decided_at: DecidedAt | None = None,
    ) -> None:
        self.directory = directory
        self.quota = quota
        self.schedule = schedule or Schedule()
        self.decided_at = decided_at or wall_clock()
        self.unknown_client_leads = 0
        self._unknown_seen: set[str] = set()

    async def decide(
        self, leads: Sequence[ScoredLead], patterns: PatternLookup
    ) -> list[Allocation]:
        """Allocations in input order; UndecidableLead if a lead cannot be decided."""
        allocations = []
        for outcome in await self.decide_detailed(leads, patterns):
            if isinstance(outcome, Undecidable):
                raise outcome.error
            allocations.append(outcome.allocation)
        return allocations

    async def decide_detailed(
        self, leads: Sequence[ScoredLead], patterns: PatternLookup
    ) -> list[Decision | Undecidable]:
        """Allocate a batch of leads with one quota round trip, in input order.

        A lead the rules cannot decide comes back as Undecidable and costs the
        others nothing; a failure of the quota store or the database raises.
        The three steps are also offered apart (plan, reserve, complete), so
        that a worker can plan its next batch while this one's reservation
        is on its way.
        """
        planned = await self.plan(leads, patterns)
        return self.complete(planned, await self.reserve(planned))

    async def plan(self, leads: Sequence[ScoredLead], patterns: PatternLookup) -> Planned:
        """Each lead's plan and what it asks of the quota (pure, but for the
        directory's snapshot)."""
        snapshot = await self.directory.snapshot()
        return [self._plan(lead, snapshot.get(lead.client_id), patterns) for lead in leads]

    async def reserve(self, planned: Planned) -> list[Held]:
        """The quota's answers to the plans' requests, in one round trip."""
        asked = [p[1] for p in planned if not isinstance(p, Undecidable) and p[1] is not None]
        return await self.quota.reserve(asked) if asked else []

    def complete(self, planned: Planned, answers: Sequence[Held]) -> list[Decision | Undecidable]:
        """The decisions, in input order, from the plans and the quota's answers."""
        held = iter(answers)
        decided: list[Decision | Undecidable] = []
        for one in planned:
            if isinstance(one, Undecidable):
                decided.append(one)
                continue
            plan, request = one
            lead = plan.lead
            at = self.decided_at(lead)
            if request is None:  # a lead without channels: nothing was held
                first, answer, allocation_id = plan.plan, _NOTHING_HELD, ""
            else:
                answer = next(held)
                # A redelivery: complete from the plan held with the first answer.
                first = plan.plan if answer.plan == request.plan else Plan.decode(answer.plan)
                allocation_id = request.allocation_id
            try:  # pure: an exception here is about this lead's data, not I/O
                decided.append(
                    complete(
                        lead,
                        first,
                        answer.picks,
                        at,
                        answer.blocked,
                        answer.suppressed,
                        allocation_id,
                    )
                )
            except Exception as exc:
                decided.append(_undecidable(lead, exc))
        return decided

    def _plan(
        self, lead: ScoredLead, setup: ClientSetup | None, patterns: PatternLookup
    ) -> tuple[LeadPlan, LeadRequest | None] | Undecidable:
        known = setup if setup is not None else self._unknown(lead)
        held = patterns(lead)
        try:  # pure: an exception here is about this lead's data, not I/O
            return _planned(lead, known, held, self.schedule)
        except Exception as exc:
            return _undecidable(lead, exc)

    def _unknown(self, lead: ScoredLead) -> ClientSetup:
        """The setup of a lead whose client the directory has not."""
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
