"""The decision core: a scored lead, its client's setup and patterns -> an allocation.

Pure functions of data. Deciding is two steps around the one piece of shared
state, the quota counters: `plan_lead` says what to ask the quota store for,
`complete` turns the store's answers (and the plan held with them) into the
allocation record.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any

from allocator.channels import (
    ALLOCATED,
    DEFAULT_SEND_HOUR,
    EXHAUSTED,
    NO_RESOURCE,
    RESOURCE_TYPE,
    SUPPRESSED,
    Channel,
    EntryStatus,
)
from allocator.directory import ClientSetup
from allocator.frozen import fast_init
from allocator.intervals import SpanCache
from allocator.models import (
    Allocation,
    ChannelAllocation,
    HowPattern,
    Reason,
    Rotation,
    ScoredLead,
    derived_id,
    zone,
)
from allocator.models.allocation import Source
from allocator.patterns import PatternSet
from allocator.quota.base import (
    Blocked,
    Cap,
    ChannelAsk,
    LeadRequest,
    Reservation,
    ResourceQuota,
)
from allocator.reasons import RESOURCE_NOUNS, Why, blocked_detail
from allocator.tiers import Tier, allowed_channels, default_sequence, tier_for_score
from allocator.timing import SendSlot, plan_sends_until


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


@fast_init
@dataclass(frozen=True, slots=True)
class Paced:
    """Pacing of a channel (CONTRACT.md section 9): the k-th send of a resource
    on a day goes out at its slot + k * gap + jitter seconds."""

    gap: int
    jitter: int  # in [0, gap / 2), from (event_id, channel) only

    def room(self, send_at: datetime, end: datetime) -> int:
        """How many sends of one resource fit from a slot at `send_at` before `end`:
        the k with send_at + k * gap + jitter < end."""
        remaining = int((end - send_at).total_seconds()) - self.jitter
        return 0 if remaining <= 0 else -(-remaining // self.gap)

    def send_at(self, slot: datetime, k: int) -> datetime:
        return slot + timedelta(seconds=k * self.gap + self.jitter)


def jitter(event_id: str, channel: Channel, gap: int) -> int:
    """A spread in [0, gap / 2) seconds that depends on the event and channel only,
    so that a replay sends at the same instants."""
    digest = hashlib.sha256(f"{event_id}|{channel.value}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % ((gap + 1) // 2)


@fast_init
@dataclass(frozen=True, slots=True)
class ChannelPlan:
    channel: Channel
    timing_source: Source
    slots: tuple[SendSlot, ...]  # empty: the client has no active resource for the channel
    # What moved the first slot (a window, a holiday): (reason code, sentence).
    moved: tuple[str, str] | None = None
    paced: Paced | None = None
    # Per slot, the instant its day's sends must go out before (pacing); not
    # held with the plan: only the first reservation needs it.
    ends: tuple[datetime, ...] = ()
    # The allocated entries built from this plan, by (step, resource, what
    # blocked the first day): unpaced, that is all an entry depends on, and
    # leads of the same hours share their plan, so each is built once (issue 15).
    # A memo, not part of the plan's value: left out of equality and hashing.
    entries: dict[tuple[int, str, Blocked | None], ChannelAllocation] = field(
        default_factory=dict, compare=False, repr=False
    )


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
    # Per channel, the quota day its first slot asks for (None: no slot).
    first_days: tuple[date | None, ...] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        days = tuple(c.slots[0].usage_day if c.slots else None for c in self.channels)
        object.__setattr__(self, "first_days", days)

    def encode(self) -> str:
        """The JSON of [tier, source, [channel, ...]], compact, as json.dumps
        writes it (a test holds the two to the same text); assembled from
        parts so that the slots, shared by many leads, are written once."""
        channels = ",".join(_encode(c) for c in self.channels)
        return f'["{self.tier.value}","{self.sequence_source}",[{channels}]]'

    @classmethod
    def decode(cls, text: str) -> Plan:
        tier, source, channels = json.loads(text)
        return cls(Tier(tier), source, tuple(_decode(c) for c in channels))


def _encode(c: ChannelPlan) -> str:
    # Round 1's three elements, and round 2's two only when set: a plan held
    # by round 1 decodes the same.
    encoded = f'["{c.channel.value}","{c.timing_source}",{slot_facts(c.slots).encoded}'
    if c.moved is not None or c.paced is not None:
        moved = json.dumps(list(c.moved), separators=(",", ":")) if c.moved else "null"
        paced = f"[{c.paced.gap},{c.paced.jitter}]" if c.paced is not None else "null"
        encoded += f",{moved},{paced}"
    return encoded + "]"


@fast_init
@dataclass(frozen=True, slots=True)
class SlotFacts:
    """What the quota and the held plan need of a channel's slots: the quota
    days, the instants in Unix seconds, and the slots' JSON."""

    days: tuple[date, ...]
    at: tuple[int, ...]
    encoded: str


# By the identity of the slots tuple: leads of a client in the same hours share
# one (plan_sends hands the same Timing out), and comparing tuples of slots
# for a hash lookup cost more than it saved. The tuple is kept beside its
# facts, so its id is not reused while it is here.
_FACTS: dict[int, tuple[tuple[SendSlot, ...], SlotFacts]] = {}


def slot_facts(slots: tuple[SendSlot, ...]) -> SlotFacts:
    found = _FACTS.get(id(slots))
    if found is not None and found[0] is slots:
        return found[1]
    facts = SlotFacts(
        tuple(s.usage_day for s in slots),
        tuple(int(s.send_at.timestamp()) for s in slots),
        json.dumps(
            [[s.send_at.isoformat(), s.usage_day.isoformat()] for s in slots],
            separators=(",", ":"),
        ),
    )
    if len(_FACTS) >= 4096:
        _FACTS.clear()
    _FACTS[id(slots)] = (slots, facts)
    return facts


def _decode(encoded: list[Any]) -> ChannelPlan:
    channel, timing, slots, *extra = encoded
    moved, paced = extra if extra else (None, None)
    return ChannelPlan(
        Channel(channel),
        timing,
        tuple(SendSlot(datetime.fromisoformat(at), date.fromisoformat(day)) for at, day in slots),
        (moved[0], moved[1]) if moved else None,
        Paced(paced[0], paced[1]) if paced else None,
    )


@fast_init
@dataclass(frozen=True, slots=True)
class Caps:
    """The client's caps across its resources (CONTRACT.md section 8)."""

    rotation: Rotation = "least_used"
    lead_daily_limit: int | None = None
    recipient_domain_daily_limit: int | None = None
    sticky_days: int = 0  # CONTRACT.md section 10
    sticky_require: bool = False

    def lead_cap(self, lead: ScoredLead) -> Cap | None:
        if self.lead_daily_limit is None:
            return None
        return Cap(lead.lead_id, self.lead_daily_limit)

    def domain_cap(self, lead: ScoredLead, channel: Channel) -> Cap | None:
        limit = self.recipient_domain_daily_limit
        if limit is None or channel is not Channel.EMAIL or lead.email_domain is None:
            return None
        return Cap(lead.email_domain, limit)


class Shape:
    """What the leads of one client setup, tier, zone and patterns share while
    their reference (scored_at) lies in one span (intervals.py): the plan, the
    resources per channel and the caps; once a request is made, the quota asks
    and the plan's JSON too (only when no cap names the lead or its domain).
    Only for clients without pacing, whose plans hold nothing of the lead.
    The setup, patterns and schedule are kept, so that their ids, which key
    the shapes, are not reused while a shape is held."""

    __slots__ = (
        "asks",
        "caps",
        "encoded",
        "latest",
        "patterns",
        "plan",
        "quotas",
        "schedule",
        "setup",
    )

    def __init__(
        self,
        setup: ClientSetup,
        patterns: PatternSet,
        schedule: Schedule,
        plan: Plan,
        quotas: tuple[tuple[ResourceQuota, ...], ...],
        caps: Caps,
    ) -> None:
        self.setup, self.patterns, self.schedule = setup, patterns, schedule
        self.plan, self.quotas, self.caps = plan, quotas, caps
        self.asks: tuple[ChannelAsk, ...] | None = None
        self.latest: date | None = None
        self.encoded: str | None = None

    def of(self, setup: ClientSetup, patterns: PatternSet, schedule: Schedule) -> bool:
        return self.setup is setup and self.patterns is patterns and self.schedule is schedule


_ShapeKey = tuple[int, int, int, Tier, str | None]
_SHAPES: SpanCache[_ShapeKey, Shape] = SpanCache()


@fast_init
@dataclass(frozen=True, slots=True)
class LeadPlan:
    """A lead, its plan, and per channel of the plan the resources it may use."""

    lead: ScoredLead
    plan: Plan
    quotas: tuple[tuple[ResourceQuota, ...], ...]
    caps: Caps = Caps()
    shape: Shape | None = field(default=None, compare=False, repr=False)

    def request(self) -> LeadRequest | None:
        """What to reserve and hold; None for a lead without channels (nothing to hold)."""
        if not self.plan.channels:
            return None
        shape = self.shape
        if shape is not None and shape.asks is not None:
            assert shape.latest is not None and shape.encoded is not None
            return self._request(shape.asks, shape.latest, shape.encoded)
        asks, latest = self._asks()
        encoded = self.plan.encode()
        caps = self.caps
        shared = caps.lead_daily_limit is None and caps.recipient_domain_daily_limit is None
        if shape is not None and shared and asks:
            shape.asks, shape.latest, shape.encoded = asks, latest, encoded
        return self._request(asks, latest, encoded)

    def _request(self, asks: tuple[ChannelAsk, ...], latest: date, plan: str) -> LeadRequest:
        lead = self.lead
        event_id = lead.key
        # By position, as the fields are declared: keywords cost 0.4 us a lead.
        return LeadRequest(
            "",  # hold_key: held_name derives it from client_id and event_id when asked
            plan,
            asks,
            latest,  # hold_day
            lead.client_id,
            lead.lead_id,
            allocation_id_for(event_id),
            event_id,
            int(lead.scored_at.timestamp()),
        )

    def _asks(self) -> tuple[tuple[ChannelAsk, ...], date]:
        """Per channel with slots its ask, and the latest quota day of them all
        (the lead's own day when none has slots)."""
        lead, caps = self.lead, self.caps
        lead_cap = caps.lead_cap(lead)
        asks: list[ChannelAsk] = []
        latest = lead.scored_at.date()
        for c, quotas in zip(self.plan.channels, self.quotas, strict=True):
            if not c.slots:
                continue
            facts = slot_facts(c.slots)
            latest = max(latest, facts.days[-1]) if asks else facts.days[-1]
            asks.append(
                ChannelAsk(
                    c.channel,
                    facts.days,
                    quotas,
                    caps.rotation,
                    lead_cap,
                    caps.domain_cap(lead, c.channel),
                    _rooms(c),
                    facts.at,
                    c.paced.gap if c.paced else 0,
                    c.paced.jitter if c.paced else 0,
                    caps.sticky_days,
                    caps.sticky_require,
                )
            )
        return tuple(asks), latest


def _rooms(plan: ChannelPlan) -> tuple[int, ...] | None:
    """Per slot, how many sends of one resource pacing lets out before the day's end."""
    if plan.paced is None:
        return None
    paced = plan.paced
    return tuple(paced.room(s.send_at, end) for s, end in zip(plan.slots, plan.ends, strict=True))


def plan_lead(
    lead: ScoredLead, setup: ClientSetup, patterns: PatternSet, schedule: Schedule
) -> LeadPlan:
    tier = tier_for_score(lead.als_score)
    if setup.client.pacing:
        return _plan_lead(lead, tier, setup, patterns, schedule)[0]
    # Without pacing, nothing of a plan depends on the lead beyond its tier,
    # zone and reference, and leads come in time order: most share a Shape.
    key = (id(setup), id(patterns), id(schedule), tier, lead.timezone)
    held = _SHAPES.get(key, lead.scored_at)
    if held is not None and held[0].of(setup, patterns, schedule):
        shape = held[0]
        return LeadPlan(lead, shape.plan, shape.quotas, shape.caps, shape)
    planned, until = _plan_lead(lead, tier, setup, patterns, schedule)
    shape = Shape(setup, patterns, schedule, planned.plan, planned.quotas, planned.caps)
    _SHAPES.put(key, lead.scored_at, until, shape)
    return LeadPlan(lead, planned.plan, planned.quotas, planned.caps, shape)


# Later than any reference: the bound of a plan without slots.
_NEVER = datetime.max.replace(tzinfo=UTC)


def _plan_lead(
    lead: ScoredLead, tier: Tier, setup: ClientSetup, patterns: PatternSet, schedule: Schedule
) -> tuple[LeadPlan, datetime]:
    """The lead's plan, and until when (from its reference on) the plan stays
    the same for a lead of the same tier, zone, client and patterns."""
    until = _NEVER
    sequence, sequence_source = channel_sequence(tier, patterns.usable_how())
    quota_zone = zone(setup.client.timezone)
    send_zone = zone(lead.timezone) if lead.timezone else quota_zone
    plans = []
    quotas = []
    for channel in sequence:
        when = patterns.usable_when(channel)
        channel_quotas = setup.quotas_for(channel)
        source: Source = "pattern" if when else "default"
        if not channel_quotas:
            plans.append(ChannelPlan(channel, source, ()))
            quotas.append(channel_quotas)
            continue
        timing, candidate = plan_sends_until(
            lead.scored_at,
            schedule.hours[channel],
            send_zone,
            quota_zone,
            when,
            setup.client.max_defer_days,
            setup.window(channel),
            setup.calendar,
        )
        until = min(until, candidate)
        gap = setup.gap(channel)
        paced = Paced(gap, jitter(lead.key, channel, gap)) if gap else None
        plans.append(ChannelPlan(channel, source, timing.slots, timing.moved, paced, timing.ends))
        quotas.append(channel_quotas)
    client = setup.client
    caps = Caps(
        client.rotation,
        client.lead_daily_limit,
        client.recipient_domain_daily_limit,
        client.sticky_days,
        client.sticky == "require",
    )
    return LeadPlan(lead, Plan(tier, sequence_source, tuple(plans)), tuple(quotas), caps), until


@fast_init
@dataclass(frozen=True, slots=True)
class Decision:
    """An allocation with what the record does not say: how many days each send moved."""

    allocation: Allocation
    deferrals: tuple[int | None, ...]  # per channel entry; None unless allocated
    # per channel entry: the quota day the send first asked for (None: no resource)
    wanted_days: tuple[date | None, ...]


def allocation_id_for(event_id: str) -> str:
    """Deterministic from the event: the same event always gets the same id."""
    return derived_id("allocation", event_id)


def complete(
    lead: ScoredLead,
    plan: Plan,
    picks: Sequence[Reservation | None],
    decided_at: datetime,
    blocked: Sequence[Blocked | None] = (),
    suppressed: str = "",
    allocation_id: str = "",
) -> Decision:
    """The allocation record; `picks` answer the plan's channels that have slots,
    in order, and `blocked` says what blocked each one's first day (None: nothing).
    `allocation_id` is the lead's request's, when it made one (derived here if not)."""
    # The record's times say their offset; pydantic used to refuse a naive one.
    assert decided_at.utcoffset() is not None, "decided_at without an offset"
    answers = iter(picks)
    whys = iter(blocked)
    entries = []
    deferrals: list[int | None] = []
    stopped = _suppressed_reason(suppressed) if suppressed else None
    for channel_plan in plan.channels:
        if stopped is not None:
            entries.append(
                _unallocated(channel_plan.channel, SUPPRESSED, channel_plan.timing_source, stopped)
            )
            deferrals.append(None)
            continue
        if not channel_plan.slots:
            entries.append(_no_resource(channel_plan.channel, channel_plan.timing_source))
            deferrals.append(None)
            continue
        pick = next(answers)
        first = next(whys, None)
        if pick is None:
            entries.append(
                _exhausted(
                    channel_plan.channel,
                    channel_plan.timing_source,
                    len(channel_plan.slots),
                    channel_plan.slots[0].usage_day,
                    first,
                )
            )
            deferrals.append(None)
            continue
        deferrals.append(pick.step)
        entries.append(_allocated(channel_plan, pick, first))
    # By position, as the fields are declared (keywords cost 0.4 us a lead).
    allocation = Allocation(
        allocation_id or allocation_id_for(lead.key),
        lead.key,  # event_id
        lead.lead_id,
        lead.client_id,
        lead.als_score,
        plan.tier,
        plan.sequence_source,
        tuple(entries),
        decided_at,
    )
    return Decision(allocation, tuple(deferrals), plan.first_days)


def _allocated(
    channel_plan: ChannelPlan, pick: Reservation, first: Blocked | None
) -> ChannelAllocation:
    """The entry of a channel given a resource; `first` says what blocked its first day."""
    key = (pick.step, pick.resource_id, first if pick.step else None)
    paced = channel_plan.paced
    if paced is None:
        held = channel_plan.entries.get(key)
        if held is not None:
            return held
    slot = channel_plan.slots[pick.step]
    moved = _moved_reason(channel_plan)
    if moved is None and pick.step:
        moved = _blocked_reason(channel_plan, first)
    entry = ChannelAllocation(
        channel=channel_plan.channel,
        status=ALLOCATED,
        resource_type=RESOURCE_TYPE[channel_plan.channel],
        resource_id=pick.resource_id,
        send_at=paced.send_at(slot.send_at, pick.k) if paced else slot.send_at,
        timing_source=channel_plan.timing_source,
        usage_day=slot.usage_day.isoformat(),
        reason=moved,
    )
    if paced is None:  # a paced send's instant depends on the sends before it (pick.k)
        channel_plan.entries[key] = entry
    return entry


# The entries of channels that were not allocated depend on a few values, not
# on the lead: records are immutable, so leads share them (issue 15).
@lru_cache(maxsize=1024)
def _no_resource(channel: Channel, timing_source: Source) -> ChannelAllocation:
    noun = RESOURCE_NOUNS[channel]
    reason = Reason(code=Why.NO_RESOURCE, detail=f"the client has no active {noun}")
    return _unallocated(channel, NO_RESOURCE, timing_source, reason)


@lru_cache(maxsize=4096)
def _exhausted(
    channel: Channel, timing_source: Source, days: int, first_day: date, first: Blocked | None
) -> ChannelAllocation:
    detail = f"no room on any of {days} day{'s' if days > 1 else ''}"
    if first is not None:
        detail += f"; first {_blocked_detail(channel, first_day, first)}"
    reason = Reason(code=Why.EXHAUSTED, detail=detail)
    return _unallocated(channel, EXHAUSTED, timing_source, reason)


def _suppressed_reason(suppressed: str) -> Reason:
    """ "<kind>:<since>:<until or -1>" as the stopped lead's reason."""
    kind, since, until = suppressed.rsplit(":", 2)
    since_at = datetime.fromtimestamp(int(since), UTC).isoformat()
    lasting = (
        "for good"
        if int(until) == -1
        else f"until {datetime.fromtimestamp(int(until), UTC).isoformat()}"
    )
    return Reason(
        code=Why.SUPPRESSED, detail=f"the lead {kind} at {since_at}; suppressed {lasting}"
    )


def _moved_reason(plan: ChannelPlan) -> Reason | None:
    if plan.moved is None:
        return None
    return Reason(code=plan.moved[0], detail=plan.moved[1])


def _blocked_reason(plan: ChannelPlan, blocked: Blocked | None) -> Reason | None:
    """What blocked the channel's first day, as a record says it; None for an
    answer held before round 2 (which did not say)."""
    if blocked is None:
        return None
    detail = _blocked_detail(plan.channel, plan.slots[0].usage_day, blocked)
    return Reason(code=blocked.why, detail=detail)


def _blocked_detail(channel: Channel, first_day: date, blocked: Blocked) -> str:
    return blocked_detail(blocked.why, channel, blocked.resources, blocked.of, first_day)


def _unallocated(
    channel: Channel, status: EntryStatus, timing_source: Source, reason: Reason | None
) -> ChannelAllocation:
    return ChannelAllocation(
        channel=channel,
        status=status,
        resource_type=None,
        resource_id=None,
        send_at=None,
        timing_source=timing_source,
        usage_day=None,
        reason=reason,
    )
