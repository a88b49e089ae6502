"""The decision core: a scored lead, its client's setup and patterns -> an allocation.

Pure functions of data. Deciding is two steps around the one piece of shared
state, the quota counters: `plan_lead` says what to ask the quota store for,
`complete` turns the store's answers into the allocation record.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal

from allocator.channels import DEFAULT_SEND_HOUR, RESOURCE_TYPE, Channel
from allocator.directory import ClientSetup
from allocator.models import Allocation, ChannelAllocation, HowPattern, ScoredLead, derived_id, zone
from allocator.patterns import PatternSet
from allocator.quota.base import Reservation, ReservationRequest, ResourceQuota
from allocator.tiers import Tier, allowed_channels, default_sequence, tier_for_score
from allocator.timing import SendSlot, send_slots

Source = Literal["pattern", "default"]


@dataclass(frozen=True)
class Schedule:
    """Default local send hour per channel (configurable)."""

    hours: Mapping[Channel, int] = field(default_factory=lambda: dict(DEFAULT_SEND_HOUR))


def channel_sequence(tier: Tier, how: HowPattern | None) -> tuple[list[Channel], Source]:
    """HOW patterns never widen access: the pattern's order, filtered to the tier."""
    if how is not None:
        allowed = allowed_channels(tier)
        kept = [channel for channel in how.winning_sequence if channel in allowed]
        if kept:
            return kept, "pattern"
    return default_sequence(tier), "default"


@dataclass(frozen=True)
class ChannelPlan:
    channel: Channel
    timing_source: Source
    slots: tuple[SendSlot, ...]
    quotas: tuple[ResourceQuota, ...]


@dataclass(frozen=True)
class LeadPlan:
    lead: ScoredLead
    tier: Tier
    sequence_source: Source
    channels: tuple[ChannelPlan, ...]

    def requests(self) -> Iterator[ReservationRequest]:
        """What to reserve: one request per channel that has resources, in sequence order."""
        for plan in self.channels:
            if plan.quotas:
                yield ReservationRequest(
                    self.lead.key,
                    plan.channel,
                    tuple(slot.usage_day for slot in plan.slots),
                    plan.quotas,
                )


def plan_lead(
    lead: ScoredLead, setup: ClientSetup, patterns: PatternSet, schedule: Schedule
) -> LeadPlan:
    tier = tier_for_score(lead.als_score)
    sequence, source = channel_sequence(tier, patterns.usable_how())
    quota_zone = zone(setup.client.timezone)
    send_zone = zone(lead.timezone) if lead.timezone else quota_zone
    plans = []
    for channel in sequence:
        when = patterns.usable_when(channel)
        quotas = setup.quotas_for(channel)
        slots = (
            send_slots(
                lead.scored_at,
                schedule.hours[channel],
                send_zone,
                quota_zone,
                when,
                setup.client.max_defer_days,
            )
            if quotas
            else []
        )
        plans.append(ChannelPlan(channel, "pattern" if when else "default", tuple(slots), quotas))
    return LeadPlan(lead, tier, source, tuple(plans))


@dataclass(frozen=True)
class Decision:
    """An allocation with what the record does not say: how many days each send moved."""

    allocation: Allocation
    deferrals: tuple[int | None, ...]  # per channel entry; None unless allocated
    # per channel entry: the quota day the send first asked for (None: no resource)
    wanted_days: tuple[date | None, ...]


def complete(
    plan: LeadPlan, outcomes: Sequence[Reservation | None], decided_at: datetime
) -> Decision:
    """The allocation record; `outcomes` answer `plan.requests()` one for one."""
    answers = iter(outcomes)
    entries = []
    deferrals: list[int | None] = []
    for channel_plan in plan.channels:
        if not channel_plan.quotas:
            entries.append(_unallocated(channel_plan, "no_resource"))
            deferrals.append(None)
            continue
        outcome = next(answers)
        if outcome is None:
            entries.append(_unallocated(channel_plan, "exhausted"))
            deferrals.append(None)
            continue
        deferrals.append(outcome.step)
        slot = channel_plan.slots[outcome.step]
        entries.append(
            ChannelAllocation(
                channel=channel_plan.channel,
                status="allocated",
                resource_type=RESOURCE_TYPE[channel_plan.channel],
                resource_id=outcome.resource_id,
                send_at=slot.send_at,
                timing_source=channel_plan.timing_source,
                usage_day=slot.usage_day.isoformat(),
            )
        )
    lead = plan.lead
    allocation = Allocation(
        allocation_id=derived_id("allocation", lead.key),
        event_id=lead.key,
        lead_id=lead.lead_id,
        client_id=lead.client_id,
        als_score=lead.als_score,
        als_tier=plan.tier,
        sequence_source=plan.sequence_source,
        channels=entries,
        decided_at=decided_at,
    )
    wanted = tuple(p.slots[0].usage_day if p.slots else None for p in plan.channels)
    return Decision(allocation, tuple(deferrals), wanted)


def _unallocated(
    plan: ChannelPlan, status: Literal["exhausted", "no_resource"]
) -> ChannelAllocation:
    return ChannelAllocation(
        channel=plan.channel,
        status=status,
        resource_type=None,
        resource_id=None,
        send_at=None,
        timing_source=plan.timing_source,
        usage_day=None,
    )
