"""The decision core: a scored lead, its client's setup and patterns -> an allocation.

Pure functions of data. Deciding is two steps around the one piece of shared
state, the quota counters: `plan_lead` says what to ask the quota store for,
`complete` turns the store's answers (and the plan held with them) into the
allocation record.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal

from allocator.channels import (
    ALLOCATED,
    DEFAULT_SEND_HOUR,
    EXHAUSTED,
    NO_RESOURCE,
    RESOURCE_TYPE,
    Channel,
    EntryStatus,
)
from allocator.directory import ClientSetup
from allocator.models import (
    Allocation,
    ChannelAllocation,
    HowPattern,
    Reason,
    ScoredLead,
    derived_id,
    zone,
)
from allocator.patterns import PatternSet
from allocator.quota.base import (
    Blocked,
    Cap,
    ChannelAsk,
    LeadRequest,
    Reservation,
    ResourceQuota,
    Rotation,
)
from allocator.reasons import RESOURCE_NOUNS, Why, blocked_detail
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
    slots: tuple[SendSlot, ...]  # empty: the client has no active resource for the channel


@dataclass(frozen=True)
class Plan:
    """All a lead's allocation depends on besides the quota's answers.

    It is held with the answers (quota.base.LeadRequest), so that a redelivered
    event is completed from the plan it was first decided with: a change of
    zone, deferral horizon, resources or patterns in between changes nothing.
    """

    tier: Tier
    sequence_source: Source
    channels: tuple[ChannelPlan, ...]

    def encode(self) -> str:
        return json.dumps(
            [
                self.tier.value,
                self.sequence_source,
                [
                    [
                        c.channel.value,
                        c.timing_source,
                        [[s.send_at.isoformat(), s.usage_day.isoformat()] for s in c.slots],
                    ]
                    for c in self.channels
                ],
            ],
            separators=(",", ":"),
        )

    @classmethod
    def decode(cls, text: str) -> Plan:
        tier, source, channels = json.loads(text)
        return cls(
            Tier(tier),
            source,
            tuple(
                ChannelPlan(
                    Channel(channel),
                    timing,
                    tuple(
                        SendSlot(datetime.fromisoformat(at), date.fromisoformat(day))
                        for at, day in slots
                    ),
                )
                for channel, timing, slots in channels
            ),
        )


@dataclass(frozen=True)
class Caps:
    """The client's caps across its resources (CONTRACT.md section 8)."""

    rotation: Rotation = "least_used"
    lead_daily_limit: int | None = None
    recipient_domain_daily_limit: int | None = None

    def lead_cap(self, lead: ScoredLead) -> Cap | None:
        if self.lead_daily_limit is None:
            return None
        return Cap(lead.lead_id, self.lead_daily_limit)

    def domain_cap(self, lead: ScoredLead, channel: Channel) -> Cap | None:
        limit = self.recipient_domain_daily_limit
        if limit is None or channel is not Channel.EMAIL or lead.email_domain is None:
            return None
        return Cap(lead.email_domain, limit)


@dataclass(frozen=True)
class LeadPlan:
    """A lead, its plan, and per channel of the plan the resources it may use."""

    lead: ScoredLead
    plan: Plan
    quotas: tuple[tuple[ResourceQuota, ...], ...]
    caps: Caps = Caps()

    def request(self) -> LeadRequest | None:
        """What to reserve and hold; None for a lead without channels (nothing to hold)."""
        if not self.plan.channels:
            return None
        lead, caps = self.lead, self.caps
        asks = tuple(
            ChannelAsk(
                c.channel,
                tuple(slot.usage_day for slot in c.slots),
                quotas,
                caps.rotation,
                caps.lead_cap(lead),
                caps.domain_cap(lead, c.channel),
            )
            for c, quotas in zip(self.plan.channels, self.quotas, strict=True)
            if c.slots
        )
        days = [slot.usage_day for c in self.plan.channels for slot in c.slots]
        return LeadRequest(
            hold_key=derived_id("held", lead.client_id, lead.key),
            plan=self.plan.encode(),
            asks=asks,
            hold_day=max(days, default=lead.scored_at.date()),
            client_id=lead.client_id,
        )


def plan_lead(
    lead: ScoredLead, setup: ClientSetup, patterns: PatternSet, schedule: Schedule
) -> LeadPlan:
    tier = tier_for_score(lead.als_score)
    sequence, source = channel_sequence(tier, patterns.usable_how())
    quota_zone = zone(setup.client.timezone)
    send_zone = zone(lead.timezone) if lead.timezone else quota_zone
    plans = []
    quotas = []
    for channel in sequence:
        when = patterns.usable_when(channel)
        channel_quotas = setup.quotas_for(channel)
        slots = (
            send_slots(
                lead.scored_at,
                schedule.hours[channel],
                send_zone,
                quota_zone,
                when,
                setup.client.max_defer_days,
            )
            if channel_quotas
            else []
        )
        plans.append(ChannelPlan(channel, "pattern" if when else "default", tuple(slots)))
        quotas.append(channel_quotas)
    client = setup.client
    caps = Caps(client.rotation, client.lead_daily_limit, client.recipient_domain_daily_limit)
    return LeadPlan(lead, Plan(tier, source, tuple(plans)), tuple(quotas), caps)


@dataclass(frozen=True)
class Decision:
    """An allocation with what the record does not say: how many days each send moved."""

    allocation: Allocation
    deferrals: tuple[int | None, ...]  # per channel entry; None unless allocated
    # per channel entry: the quota day the send first asked for (None: no resource)
    wanted_days: tuple[date | None, ...]


def complete(
    lead: ScoredLead,
    plan: Plan,
    picks: Sequence[Reservation | None],
    decided_at: datetime,
    blocked: Sequence[Blocked | None] = (),
) -> Decision:
    """The allocation record; `picks` answer the plan's channels that have slots,
    in order, and `blocked` says what blocked each one's first day (None: nothing)."""
    answers = iter(picks)
    whys = iter(blocked)
    entries = []
    deferrals: list[int | None] = []
    for channel_plan in plan.channels:
        if not channel_plan.slots:
            noun = RESOURCE_NOUNS[channel_plan.channel]
            reason = Reason(code=Why.NO_RESOURCE, detail=f"the client has no active {noun}")
            entries.append(_unallocated(channel_plan, NO_RESOURCE, reason))
            deferrals.append(None)
            continue
        pick = next(answers)
        first = next(whys, None)
        if pick is None:
            days = len(channel_plan.slots)
            why = _blocked_reason(channel_plan, first)
            detail = f"no room on any of {days} day{'s' if days > 1 else ''}"
            if why is not None:
                detail += f"; first {why.detail}"
            reason = Reason(code=Why.EXHAUSTED, detail=detail)
            entries.append(_unallocated(channel_plan, EXHAUSTED, reason))
            deferrals.append(None)
            continue
        deferrals.append(pick.step)
        slot = channel_plan.slots[pick.step]
        entries.append(
            ChannelAllocation(
                channel=channel_plan.channel,
                status=ALLOCATED,
                resource_type=RESOURCE_TYPE[channel_plan.channel],
                resource_id=pick.resource_id,
                send_at=slot.send_at,
                timing_source=channel_plan.timing_source,
                usage_day=slot.usage_day.isoformat(),
                reason=_blocked_reason(channel_plan, first) if pick.step else None,
            )
        )
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
    wanted = tuple(c.slots[0].usage_day if c.slots else None for c in plan.channels)
    return Decision(allocation, tuple(deferrals), wanted)


def _blocked_reason(plan: ChannelPlan, blocked: Blocked | None) -> Reason | None:
    """What blocked the channel's first day, as a record says it; None for an
    answer held before round 2 (which did not say)."""
    if blocked is None:
        return None
    first_day = plan.slots[0].usage_day
    detail = blocked_detail(blocked.why, plan.channel, blocked.resources, blocked.of, first_day)
    return Reason(code=blocked.why, detail=detail)


def _unallocated(
    plan: ChannelPlan, status: EntryStatus, reason: Reason | None
) -> ChannelAllocation:
    return ChannelAllocation(
        channel=plan.channel,
        status=status,
        resource_type=None,
        resource_id=None,
        send_at=None,
        timing_source=plan.timing_source,
        usage_day=None,
        reason=reason,
    )
