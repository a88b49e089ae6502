"""What a replay did: counted as it runs (`Summary`), then read as typed figures
(`ReplaySummary`, and `Comparison` of two runs) by the terminal summary,
summary.json, compare.json and the report's charts."""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Hashable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Generic, TypeVar, get_args, overload

from allocator.channels import (
    ALLOCATED,
    DEFERRED,
    EXHAUSTED,
    REPORTED_STATUSES,
    SUPPRESSED,
    Channel,
    reported_status,
)
from allocator.decision import Decision
from allocator.directory import ClientSetup
from allocator.errors import ErrorCode, InvalidRecord
from allocator.feedback import Applied
from allocator.models import (
    KINDS,
    STOP_KINDS,
    ChannelAllocation,
    HealthChange,
    HealthState,
    ScoredLead,
    zone,
)
from allocator.reasons import Why
from allocator.replay.sources import History, Origin
from allocator.tiers import DISPLAY_ORDER

# Skipped records listed one by one in summary.json and the report; the rest
# are counted by code. A file of a million bad lines must not make a page of them.
SKIPPED_LISTED = 100

# What a channel entry's reason is counted as when it has none: allocated at
# the slot its pattern or the default schedule gave (CONTRACT.md section 11).
NO_REASON = "none"

# The counters a lead adds 1 to, each with its key.
_Counts = tuple[tuple[Counter[Any], Hashable], ...]
K = TypeVar("K")
# Every reason counted, in the order tables list them: none first, then the
# codes in allocator.reasons' order.
REASONS: tuple[str, ...] = (NO_REASON, *(why.value for why in Why))

# Feedback (CONTRACT.md section 10): the states a resource's health record
# names, the kinds whose events give counts back (a failed send; a stop, for
# the sends it cancels), and how many health changes summary.json lists one by
# one (the rest are counted).
HEALTH_STATES: tuple[str, ...] = get_args(HealthState)
REFUND_KINDS: tuple[str, ...] = ("failed", *STOP_KINDS)
HEALTH_LISTED = 100
# How many lead shapes add() remembers (and tallies) before it counts them and starts over.
MEMO_SHAPES = 4096
# The kind of input a send-events source is, in InputSource.kind.
SEND_EVENTS = "send-events"
# ReplaySummary.feedback_counts()' figures in words, as the terminal's and the
# report's tables name them.
FEEDBACK_LABELS = {
    "send_events_applied": "send-events applied",
    "send_events_naming_no_reserved_send": "send-events naming no reserved send (skipped)",
    "refunds": "sends whose counts were given back (refunds)",
    "cancellations": "reserved sends cancelled",
    "health_changes": "resource health changes",
    "health_active": "health changes to active",
    "health_cooling": "health changes to cooling",
    "health_paused": "health changes to paused",
    "suppressed_entries": "channel entries suppressed (the lead stopped)",
}

# --- the figures, typed -------------------------------------------------------
# Row types name their fields as summary.json names its keys, so that a row's
# JSON is its asdict() and the two cannot drift apart.


@dataclass(frozen=True)
class TierCounts:
    """One tier: its leads, and its channel entries by reported status."""

    tier: str
    leads: int
    statuses: Mapping[str, int]  # every one of REPORTED_STATUSES, in that order

    @property
    def channel_entries(self) -> int:
        return sum(self.statuses.values())

    @property
    def deferred_share(self) -> float:
        return _share(self.statuses.get(DEFERRED, 0), self.channel_entries)

    @property
    def exhausted_share(self) -> float:
        return _share(self.statuses.get(EXHAUSTED, 0), self.channel_entries)

    def to_json(self) -> dict[str, Any]:
        return {
            "leads": self.leads,
            "channel_entries": self.channel_entries,
            **self.statuses,
            "deferred_share": self.deferred_share,
            "exhausted_share": self.exhausted_share,
        }


@dataclass(frozen=True)
class EntryCount:
    tier: str
    channel: str
    status: str
    count: int


@dataclass(frozen=True)
class DayCount:
    """Channel entries of one day: the send's quota day, else the day it asked for."""

    day: str
    channel: str
    status: str
    count: int


@dataclass(frozen=True)
class ClientDayCount:
    """A DayCount of one client's leads: the report's per-client view."""

    client_id: str
    day: str
    channel: str
    status: str
    count: int


@dataclass(frozen=True)
class ReasonCount:
    """Channel entries of one client and channel with one reason (NO_REASON: none)."""

    client_id: str
    channel: str
    reason: str
    count: int


@dataclass(frozen=True)
class ResourceUse:
    """One resource over the replay: days used, mean and peak share of its daily limit."""

    client_id: str
    channel: str
    resource_id: str
    daily_limit: int | None  # None: no daily cap
    days: int
    sends: int
    mean_per_day: float
    peak_per_day: int
    mean_utilisation: float | None  # None when there is no limit to divide by
    peak_utilisation: float | None


@dataclass(frozen=True)
class CapacityNeed:
    """One client and channel: the busiest day's demand against its daily capacity."""

    client_id: str
    channel: str
    peak_day: str
    peak_demand: int
    daily_capacity: int | None  # None: unlimited
    shortfall: int


@dataclass(frozen=True)
class SendTimeCount:
    weekday: int  # 0 = Monday
    hour: int  # local to the send's zone
    count: int


@dataclass(frozen=True)
class SendMinuteCount:
    """Sends of one channel at one minute of the local day (any weekday): the
    spread within the day that pacing gives (CONTRACT.md section 9)."""

    channel: str
    hour: int  # local to the send's zone
    minute: int
    count: int


@dataclass(frozen=True)
class InputSource:
    """One input of the replay: what it held, where it was read, how much of it."""

    kind: str  # leads, patterns, send-events, clients, resources or pools
    origin: str  # file, topic or database
    name: str  # the file's path, the topic's name, or the setting naming the database
    # Valid records read; of send-events, those applied (one naming no reserved
    # send is valid JSON but skipped, as the worker dead-letters it)
    records: int
    skipped: int = 0  # invalid records skipped
    window: str | None = None  # a topic's --from/--to, in words


@dataclass(frozen=True)
class SkippedRecord:
    """An input record the replay skipped, and why (its dead-letter error code)."""

    source: str  # file path, topic, or the leads' source for an undecidable lead
    where: str  # "line 12", "partition 0 offset 81" or "lead l-7"
    code: str
    message: str


@dataclass(frozen=True)
class Inputs:
    """What a replay read: its sources, the span of its leads, what it skipped."""

    sources: tuple[InputSource, ...] = ()
    leads_read: int = 0  # valid leads, decided or not
    patterns_read: int = 0
    send_events_read: int = 0  # valid send-events, applied or naming no reserved send
    first_scored_at: str | None = None  # ISO 8601; None without leads
    last_scored_at: str | None = None
    skipped: tuple[SkippedRecord, ...] = ()  # the first SKIPPED_LISTED
    skipped_total: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "sources": [asdict(s) for s in self.sources],
            "leads_read": self.leads_read,
            "patterns_read": self.patterns_read,
            "send_events_read": self.send_events_read,
            "first_scored_at": self.first_scored_at,
            "last_scored_at": self.last_scored_at,
            "skipped_total": self.skipped_total,
            "skipped_listed": [asdict(s) for s in self.skipped],
        }


@dataclass(frozen=True)
class CancellationCount:
    """Reserved sends of one channel a stop of one kind cancelled."""

    channel: str
    reason: str  # the stop's kind: replied, meeting_booked or unsubscribed
    count: int


@dataclass(frozen=True)
class HealthCount:
    """Changes of resources' health to one state, by the kind of send-event that made them."""

    state: str  # active, cooling or paused
    cause: str  # throttled, auth_failed, bounced (the bounce rate) or complained
    count: int


@dataclass(frozen=True)
class FeedbackDay:
    """What the send-events of one client-local day (of their occurred_at) did."""

    day: str
    send_events: int  # applied
    refunds: int  # sends whose counts were given back
    cancellations: int
    health_changes: int


@dataclass(frozen=True)
class HealthListed:
    """One `resource-health` record the replay produced."""

    changed_at: str  # ISO 8601: the send-event's occurred_at
    client_id: str
    channel: str
    resource_id: str
    state: str
    until: str | None  # None: paused until loaded again with active: true
    reason: str


@dataclass(frozen=True)
class FeedbackFigures:
    """What the replay's send-events did (all zero without send-events, and in a
    summary made before feedback was counted)."""

    send_events: int = 0  # applied; one naming no reserved send is a skipped record
    by_kind: Mapping[str, int] = field(default_factory=dict)  # every kind, in KINDS' order
    refunds: int = 0  # sends whose counts were given back
    refunds_by_kind: Mapping[str, int] = field(default_factory=dict)  # REFUND_KINDS
    cancellations: int = 0
    cancellations_by: tuple[CancellationCount, ...] = ()
    health_changes: int = 0
    health_by_state: Mapping[str, int] = field(default_factory=dict)  # HEALTH_STATES
    health_by: tuple[HealthCount, ...] = ()
    per_day: tuple[FeedbackDay, ...] = ()  # days with a send-event
    health_listed: tuple[HealthListed, ...] = ()  # the first HEALTH_LISTED changes

    def to_json(self) -> dict[str, Any]:
        return {
            "send_events": self.send_events,
            "by_kind": dict(self.by_kind),
            "refunds": self.refunds,
            "refunds_by_kind": dict(self.refunds_by_kind),
            "cancellations": self.cancellations,
            "cancellations_by": [asdict(c) for c in self.cancellations_by],
            "health_changes": self.health_changes,
            "health_by_state": dict(self.health_by_state),
            "health_by": [asdict(h) for h in self.health_by],
            "per_day": [asdict(d) for d in self.per_day],
            "health_listed": [asdict(h) for h in self.health_listed],
        }


@dataclass(frozen=True)
class ReplaySummary:
    """The figures of one replay, as summary.json holds them."""

    rules: Mapping[str, Any]  # Rules.describe()
    leads: int
    invalid_by_code: Mapping[str, int]
    statuses: Mapping[str, int]  # every one of REPORTED_STATUSES, in that order
    by_tier: tuple[TierCounts, ...]  # by tier name, as summary.json lists them
    entries: tuple[EntryCount, ...]
    per_day: tuple[DayCount, ...]
    resources: tuple[ResourceUse, ...]
    capacity_needed: tuple[CapacityNeed, ...]
    usage_balance_spread: float
    send_times: tuple[SendTimeCount, ...]
    # Added after the first release, so they default for the callers that predate them.
    per_client_day: tuple[ClientDayCount, ...] = ()
    leads_by_client: Mapping[str, int] = field(default_factory=dict)
    unknown_clients: tuple[str, ...] = ()  # not among the clients given: no resources
    inputs: Inputs = field(default_factory=Inputs)
    # Round 2: channel entries by reason code, every one of REASONS in that order
    # (empty in a summary made before reasons were counted), and by client and channel.
    reasons: Mapping[str, int] = field(default_factory=dict)
    by_reason: tuple[ReasonCount, ...] = ()
    # Sends by channel and local minute of the day (empty in an older summary).
    send_minutes: tuple[SendMinuteCount, ...] = ()
    # What the send-events did (empty without them, and in an older summary).
    feedback: FeedbackFigures = field(default_factory=FeedbackFigures)

    @property
    def rules_name(self) -> str:
        return str(self.rules["name"])

    @property
    def invalid_records(self) -> int:
        return sum(self.invalid_by_code.values())

    @property
    def channel_entries(self) -> int:
        return sum(self.statuses.values())

    @property
    def allocated_any_day(self) -> int:
        """Entries a record calls allocated: on the day asked for, or deferred to a
        later day (the demo's "allocated", of which deferred)."""
        return self.statuses.get(ALLOCATED, 0) + self.statuses.get(DEFERRED, 0)

    def status_count(self, status: str) -> int:
        """Channel entries of `status`; 0 for one an older summary did not count
        (suppressed, before feedback)."""
        return self.statuses.get(status, 0)

    @property
    def read_send_events(self) -> bool:
        """Whether the replay was given send-events (or applied or skipped one)."""
        return (
            any(s.kind == SEND_EVENTS for s in self.inputs.sources)
            or self.feedback.send_events > 0
            or self.invalid_by_code.get(ErrorCode.UNKNOWN_SEND, 0) > 0
        )

    def feedback_counts(self) -> dict[str, int]:
        """The feedback figures a comparison sets side by side, in this order."""
        f = self.feedback
        return {
            "send_events_applied": f.send_events,
            "send_events_naming_no_reserved_send": self.invalid_by_code.get(
                ErrorCode.UNKNOWN_SEND, 0
            ),
            "refunds": f.refunds,
            "cancellations": f.cancellations,
            "health_changes": f.health_changes,
            **{f"health_{state}": f.health_by_state.get(state, 0) for state in HEALTH_STATES},
            "suppressed_entries": self.status_count(SUPPRESSED),
        }

    def reason_count(self, reason: str) -> int:
        return self.reasons.get(reason, 0)

    def sends_per_day(self) -> Counter[tuple[str, str]]:
        """(day, channel) -> sends on that quota day, deferred ones included."""
        sends: Counter[tuple[str, str]] = Counter()
        for d in self.per_day:
            if d.status in (ALLOCATED, DEFERRED):
                sends[(d.day, d.channel)] += d.count
        return sends

    def clients(self) -> list[str]:
        """Every client with leads, by id."""
        return sorted(self.leads_by_client)

    def tiers_best_first(self) -> list[TierCounts]:
        """The tiers that had leads, in the display order (hot first)."""
        present = {t.tier: t for t in self.by_tier}
        return [present[t.value] for t in DISPLAY_ORDER if t.value in present]

    def to_json(self) -> dict[str, Any]:
        return {
            "rules": dict(self.rules),
            "leads": self.leads,
            "invalid_records": self.invalid_records,
            "invalid_by_code": dict(self.invalid_by_code),
            "channel_entries": self.channel_entries,
            "statuses": dict(self.statuses),
            "by_tier": {t.tier: t.to_json() for t in self.by_tier},
            "by_tier_channel_status": [asdict(e) for e in self.entries],
            "per_day": [asdict(d) for d in self.per_day],
            "resources": [asdict(r) for r in self.resources],
            "capacity_needed": [asdict(c) for c in self.capacity_needed],
            "usage_balance_spread": self.usage_balance_spread,
            "send_times": [asdict(s) for s in self.send_times],
            "allocated_any_day": self.allocated_any_day,
            "per_client_day": [asdict(d) for d in self.per_client_day],
            "leads_by_client": dict(self.leads_by_client),
            "unknown_clients": list(self.unknown_clients),
            "inputs": self.inputs.to_json(),
            "reasons": dict(self.reasons),
            "by_reason": [asdict(r) for r in self.by_reason],
            "send_minutes": [asdict(m) for m in self.send_minutes],
            "feedback": self.feedback.to_json(),
        }


@dataclass(frozen=True)
class ReasonChange:
    """Channel entries of one channel whose reason was `baseline` in the baseline
    and is `variant` under the variant (NO_REASON: none)."""

    channel: str
    baseline: str
    variant: str
    count: int


@dataclass(frozen=True)
class DayChange:
    """Sends of one quota day and channel in the baseline and under the variant."""

    day: str
    channel: str
    baseline: int
    variant: int

    @property
    def change(self) -> int:
        return self.variant - self.baseline

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "change": self.change}


@dataclass(frozen=True)
class SendChanges:
    """How the variant's sends differ from the baseline's, lead by lead and channel
    by channel (counted by runner.send_changes)."""

    moved_in_time: int = 0
    on_another_resource: int = 0
    newly_served: int = 0
    no_longer_served: int = 0
    # Entries of a channel both runs decided whose reason code differs; and how,
    # most frequent first.
    another_reason: int = 0
    reason_changes: tuple[ReasonChange, ...] = ()

    def to_json(self) -> dict[str, int]:
        # This order is the terminal's and the report's table's.
        return {
            "sends_moved_in_time": self.moved_in_time,
            "sends_on_another_resource": self.on_another_resource,
            "sends_newly_served": self.newly_served,
            "sends_no_longer_served": self.no_longer_served,
            "entries_with_another_reason": self.another_reason,
        }


@dataclass(frozen=True)
class Comparison:
    """The same history replayed under the baseline rules and under a variant."""

    baseline: ReplaySummary
    variant: ReplaySummary
    changes: SendChanges

    def reasons(self) -> list[str]:
        """The reasons either side counted, in REASONS' order."""
        return [r for r in REASONS if self.baseline.reason_count(r) or self.variant.reason_count(r)]

    def day_changes(self) -> tuple[DayChange, ...]:
        """Per quota day and channel where they differ: sends in each run."""
        a, b = self.baseline.sends_per_day(), self.variant.sends_per_day()
        return tuple(
            DayChange(day, channel, a[(day, channel)], b[(day, channel)])
            for day, channel in sorted(a.keys() | b.keys())
            if a[(day, channel)] != b[(day, channel)]
        )

    def feedback_changes(self) -> list[tuple[str, int, int]]:
        """(figure, baseline, variant) for each of ReplaySummary.feedback_counts()."""
        a, b = self.baseline.feedback_counts(), self.variant.feedback_counts()
        return [(key, a[key], b.get(key, 0)) for key in a]

    def has_feedback(self) -> bool:
        """Whether either side was given send-events."""
        return self.baseline.read_send_events or self.variant.read_send_events

    def to_json(self) -> dict[str, Any]:
        sides = {"baseline": self.baseline, "variant": self.variant}
        return {
            "baseline": dict(self.baseline.rules),
            "variant": dict(self.variant.rules),
            **self.changes.to_json(),
            "statuses": {k: dict(s.statuses) for k, s in sides.items()},
            "reasons": {k: dict(s.reasons) for k, s in sides.items()},
            "reason_changes": [asdict(c) for c in self.changes.reason_changes],
            "sends_per_day_changed": [d.to_json() for d in self.day_changes()],
            "usage_balance_spread": {k: s.usage_balance_spread for k, s in sides.items()},
            "capacity_needed": {
                k: [asdict(c) for c in s.capacity_needed] for k, s in sides.items()
            },
            "feedback": {
                key: {"baseline": a, "variant": b, "change": b - a}
                for key, a, b in self.feedback_changes()
            },
        }


# --- the counting -------------------------------------------------------------


class _Tally:
    """A lead shape's entries (kept alive: add() finds the shape by their
    ids), the counters a lead of it adds 1 to with their keys, and how many
    of its leads are not counted in them yet."""

    __slots__ = ("counts", "entries", "leads")

    def __init__(self, entries: tuple[ChannelAllocation, ...], counts: _Counts) -> None:
        self.entries = entries
        self.counts = counts
        self.leads = 0


class _Tallied(Generic[K]):
    """A counter of Summary's, read with every lead add() has tallied: add()
    counts a lead whose shape it has seen by one on that shape, and the
    shape's counters get the tally when read (a lead touched a dozen counters
    before, a tenth of a replay's time). Not to be set: add() counts."""

    def __set_name__(self, owner: type, name: str) -> None:
        self._private = f"_{name}"

    @overload
    def __get__(self, summary: None, owner: type | None = None) -> _Tallied[K]: ...

    @overload
    def __get__(self, summary: Summary, owner: type | None = None) -> Counter[K]: ...

    def __get__(
        self, summary: Summary | None, owner: type | None = None
    ) -> Counter[K] | _Tallied[K]:
        if summary is None:
            return self
        summary._fold()
        counter: Counter[K] = getattr(summary, self._private)
        return counter

    def __set__(self, summary: Summary, value: object) -> None:
        raise AttributeError(f"{self._private[1:]} is counted by Summary.add(), not set")


@dataclass(eq=False)  # (its counters are read through _Tallied, which fields do not see)
class Summary:
    """Counts of one replay, added lead by lead (add() tallies a lead under its
    shape, and the counters get the tallies when read); `result()` reads them out."""

    rules: dict[str, Any]
    sources: tuple[InputSource, ...] = ()  # where the inputs were read, as the command says
    leads: int = 0
    invalid: Counter[str] = field(default_factory=Counter)  # error_code -> count
    skipped: list[SkippedRecord] = field(default_factory=list)  # the first SKIPPED_LISTED
    leads_read: int = 0
    patterns_read: int = 0
    scored_span: tuple[str, str] | None = None  # first and last scored_at read
    unknown_clients: set[str] = field(default_factory=set)
    limits: dict[tuple[str, str, str], int | None] = field(default_factory=dict)
    capacity: dict[tuple[str, str], int | None] = field(default_factory=dict)
    _capacity_of: set[str] = field(default_factory=set)  # clients whose capacity is in
    # The counters add() keeps, read through the attributes of the same names
    # without the underscore (below, each with what it counts).
    _tiers: Counter[str] = field(default_factory=Counter, init=False, repr=False)
    _clients: Counter[str] = field(default_factory=Counter, init=False, repr=False)
    _entries: Counter[tuple[str, str, str]] = field(default_factory=Counter, init=False, repr=False)
    _per_client_day: Counter[tuple[str, str, str, str]] = field(
        default_factory=Counter, init=False, repr=False
    )
    _usage: Counter[tuple[str, str, str, str]] = field(
        default_factory=Counter, init=False, repr=False
    )
    _demand: Counter[tuple[str, str, str]] = field(default_factory=Counter, init=False, repr=False)
    _send_times: Counter[tuple[int, int]] = field(default_factory=Counter, init=False, repr=False)
    _send_minutes: Counter[tuple[str, int, int]] = field(
        default_factory=Counter, init=False, repr=False
    )
    _reasons: Counter[tuple[str, str, str]] = field(default_factory=Counter, init=False, repr=False)
    # Feedback: send-events read and applied by kind; counts given back by kind;
    # cancellations by (channel, reason); health changes by (state, cause);
    # per (client-local day, figure); the first HEALTH_LISTED health records;
    # send-events naming no reserved send, by source.
    send_events_read: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    refunds: Counter[str] = field(default_factory=Counter)
    cancelled: Counter[tuple[str, str]] = field(default_factory=Counter)
    health: Counter[tuple[str, str]] = field(default_factory=Counter)
    feedback_days: Counter[tuple[str, str]] = field(default_factory=Counter)
    health_listed: list[HealthListed] = field(default_factory=list)
    not_reserved: Counter[str] = field(default_factory=Counter)
    # add()'s memo: per lead shape, its entries (kept alive), the counters it
    # adds 1 to with their keys, and how many leads of it are not yet counted
    _counted: dict[tuple[object, ...], _Tally] = field(
        default_factory=dict, init=False, compare=False, repr=False
    )

    tiers = _Tallied[str]()
    clients = _Tallied[str]()  # client_id -> leads
    # (tier, channel, status) with status in REPORTED_STATUSES
    entries = _Tallied[tuple[str, str, str]]()
    # (client, day, channel, status): the send's quota day, else the day it asked
    # for; summed over clients, it is summary.json's per_day
    per_client_day = _Tallied[tuple[str, str, str, str]]()
    # (client, channel, resource_id, usage_day) -> sends
    usage = _Tallied[tuple[str, str, str, str]]()
    # (client, channel, day asked for) -> sends wanted that day
    demand = _Tallied[tuple[str, str, str]]()
    # (weekday 0=Mon, hour) of send_at, local to its zone
    send_times = _Tallied[tuple[int, int]]()
    # (channel, hour, minute) of send_at, local to its zone
    send_minutes = _Tallied[tuple[str, int, int]]()
    # (client, channel, reason code or NO_REASON)
    reasons = _Tallied[tuple[str, str, str]]()

    def read(self, history: History) -> None:
        """What the history holds before any lead is decided: counts, span, rejects."""
        self.leads_read = len(history.leads)
        self.patterns_read = len(history.patterns)
        self.send_events_read = len(history.send_events)
        if history.leads:
            times = [lead.scored_at for lead in history.leads]
            self.scored_span = (min(times).isoformat(), max(times).isoformat())
        for rejected in history.rejected:
            self.skip(rejected.source, rejected.where, rejected.error)

    def skip(self, source: str, where: str, error: InvalidRecord) -> None:
        self.invalid[error.code] += 1
        if len(self.skipped) < SKIPPED_LISTED:
            self.skipped.append(SkippedRecord(source, where, error.code, error.message))

    def skip_send_event(self, origin: Origin, error: InvalidRecord) -> None:
        """A valid send-event naming no send the replay reserved (unknown_send)."""
        self.skip(origin.source, origin.where, error)
        self.not_reserved[origin.source] += 1

    def add_feedback(self, applied: Applied, setup: ClientSetup) -> None:
        """What one applied send-event did, on its client-local day."""
        event = applied.event
        day = event.occurred_at.astimezone(zone(setup.client.timezone)).date().isoformat()
        self.kinds[event.kind] += 1
        self.refunds[event.kind] += applied.refunded
        self.feedback_days[(day, "send_events")] += 1
        self.feedback_days[(day, "refunds")] += applied.refunded
        self.feedback_days[(day, "cancellations")] += len(applied.cancellations)
        self.feedback_days[(day, "health_changes")] += len(applied.health)
        for c in applied.cancellations:
            self.cancelled[(c.channel.value, c.reason)] += 1
        for h in applied.health:
            self._add_health(h, event.kind)

    def add_lapse(self, change: HealthChange, setup: ClientSetup) -> None:
        """A resource active again (a cooldown over, a pause lifted): no send-event caused it."""
        day = change.changed_at.astimezone(zone(setup.client.timezone)).date().isoformat()
        self.feedback_days[(day, "health_changes")] += 1
        self._add_health(change, "lapse")

    def _add_health(self, h: HealthChange, cause: str) -> None:
        self.health[(h.state, cause)] += 1
        self.list_health(h)

    def list_health(self, h: HealthChange) -> None:
        """The change among the first HEALTH_LISTED, if there is room."""
        if len(self.health_listed) < HEALTH_LISTED:
            self.health_listed.append(
                HealthListed(
                    h.changed_at.isoformat(),
                    h.client_id,
                    h.channel.value,
                    h.resource_id,
                    h.state,
                    h.until.isoformat() if h.until is not None else None,
                    h.reason,
                )
            )

    def skip_undecidable(self, lead: ScoredLead, error: InvalidRecord) -> None:
        leads = [s.name for s in self.sources if s.kind == "leads"]
        self.skip(leads[0] if leads else "leads", f"lead {lead.lead_id}", error)

    def add(self, decision: Decision, lead: ScoredLead, setup: ClientSetup) -> None:
        allocation = decision.allocation
        self.leads += 1
        if not setup.known:
            self.unknown_clients.add(lead.client_id)
        # Leads of a plan share their entries (decision._allocated), so most
        # leads count under the same keys as one before them: found by the
        # entries' identity. The memo keeps those entries alive, so no other
        # entry can take one of their ids while it holds them.
        shape = (
            lead.client_id,
            allocation.als_tier,
            lead.scored_at.date(),
            decision.deferrals,
            decision.wanted_days,
            *map(id, allocation.channels),
        )
        tally = self._counted.get(shape)
        if tally is None:
            if len(self._counted) >= MEMO_SHAPES:
                self._fold()
                self._counted.clear()
            tally = self._counted[shape] = _Tally(
                allocation.channels, self._counts_of(decision, lead)
            )
        tally.leads += 1
        if setup.client.client_id in self._capacity_of:
            return  # one setup per client in a run: its capacity is counted once
        self._capacity_of.add(setup.client.client_id)
        for channel, quotas in setup.quotas.items():
            key = (setup.client.client_id, channel.value)
            if key not in self.capacity:
                limits = [q.limit for q in quotas]
                self.capacity[key] = (
                    None if None in limits else sum(q for q in limits if q is not None)
                )
                for q in quotas:
                    self.limits[(setup.client.client_id, channel.value, q.resource_id)] = q.limit

    def settle(self) -> None:
        """Count every tallied lead and drop add()'s memo: the summary as it
        leaves a shard's process (the memo holds each shape's entries)."""
        self._fold()
        self._counted.clear()

    def absorb(self, shard: Summary, skipped: int) -> None:
        """Add what a shard of a split replay decided and applied: the same
        history's leads and send-events of other clients, so its counters add
        up with these. What the history held (read()) is this summary's
        already. The lists kept in the order of the whole history are the
        caller's to add, in that order: the shard's `skipped` records (its
        undecidable leads and send-events naming no reserved send) with
        skip_undecidable() and skip_send_event(), its health changes with
        list_health(). ValueError if the shard skipped anything else."""
        if sum(shard.invalid.values()) != skipped:
            raise ValueError("a shard skipped records its caller does not know of")
        shard.settle()
        self._fold()
        self.leads += shard.leads
        self.unknown_clients |= shard.unknown_clients
        self.limits.update(shard.limits)
        self.capacity.update(shard.capacity)
        self._capacity_of |= shard._capacity_of
        for name in _TALLIED:
            getattr(self, name).update(getattr(shard, name))
        self.kinds.update(shard.kinds)
        self.refunds.update(shard.refunds)
        self.cancelled.update(shard.cancelled)
        self.health.update(shard.health)
        self.feedback_days.update(shard.feedback_days)

    def _fold(self) -> None:
        """Count the leads add() tallied into their counters."""
        for tally in self._counted.values():
            n = tally.leads
            if n:
                for counter, counted in tally.counts:
                    counter[counted] += n
                tally.leads = 0

    def _counts_of(self, decision: Decision, lead: ScoredLead) -> _Counts:
        """The counters one lead adds 1 to, and under which keys."""
        allocation = decision.allocation
        tier = allocation.als_tier.value
        counts: list[tuple[Counter[Any], Hashable]] = [
            (self._tiers, tier),
            (self._clients, lead.client_id),
        ]
        for entry, steps, wanted in zip(
            allocation.channels, decision.deferrals, decision.wanted_days, strict=True
        ):
            channel = entry.channel.value
            status = reported_status(entry.status, steps)
            counts.append((self._entries, (tier, channel, status)))
            why = entry.reason.code if entry.reason is not None else NO_REASON
            counts.append((self._reasons, (lead.client_id, channel, why)))
            day = entry.usage_day or (wanted or lead.scored_at.date()).isoformat()
            counts.append((self._per_client_day, (lead.client_id, day, channel, status)))
            if wanted is not None:
                counts.append((self._demand, (lead.client_id, channel, wanted.isoformat())))
            if entry.status == ALLOCATED and entry.send_at is not None:
                assert entry.resource_id is not None and entry.usage_day is not None
                used = (lead.client_id, channel, entry.resource_id, entry.usage_day)
                counts.append((self._usage, used))
                send_at = entry.send_at
                counts.append((self._send_times, (send_at.weekday(), send_at.hour)))
                counts.append((self._send_minutes, (channel, send_at.hour, send_at.minute)))
        return tuple(counts)

    # --- derived figures ------------------------------------------------------

    def status_totals(self) -> Counter[str]:
        totals: Counter[str] = Counter()
        for (_, _, status), n in self.entries.items():
            totals[status] += n
        return totals

    def tier_counts(self) -> tuple[TierCounts, ...]:
        rows = []
        for tier, leads in sorted(self.tiers.items()):
            counted: Counter[str] = Counter()
            for (t, _, s), n in self.entries.items():
                if t == tier:
                    counted[s] += n
            rows.append(TierCounts(tier, leads, {s: counted[s] for s in REPORTED_STATUSES}))
        return tuple(rows)

    def resource_use(self) -> tuple[ResourceUse, ...]:
        """Per resource: days used, mean and peak share of its daily limit."""
        by_resource: dict[tuple[str, str, str], list[int]] = {}
        for (client, channel, resource, _), n in sorted(self.usage.items()):
            by_resource.setdefault((client, channel, resource), []).append(n)
        rows = []
        for key, counts in sorted(by_resource.items()):
            limit = self.limits.get(key)
            mean = statistics.fmean(counts)
            rows.append(
                ResourceUse(
                    client_id=key[0],
                    channel=key[1],
                    resource_id=key[2],
                    daily_limit=limit,
                    days=len(counts),
                    sends=sum(counts),
                    mean_per_day=round(mean, 3),
                    peak_per_day=max(counts),
                    mean_utilisation=None if not limit else round(mean / limit, 4),
                    peak_utilisation=None if not limit else round(max(counts) / limit, 4),
                )
            )
        return tuple(rows)

    def capacity_needs(self) -> tuple[CapacityNeed, ...]:
        """Per client and channel: the busiest day's demand against today's capacity."""
        peaks: dict[tuple[str, str], tuple[int, str]] = {}
        for (client, channel, day), n in sorted(self.demand.items()):
            if n > peaks.get((client, channel), (0, ""))[0]:
                peaks[(client, channel)] = (n, day)
        rows = []
        for (client, channel), (peak, day) in sorted(peaks.items()):
            capacity = self.capacity.get((client, channel))
            rows.append(
                CapacityNeed(
                    client_id=client,
                    channel=channel,
                    peak_day=day,
                    peak_demand=peak,
                    daily_capacity=capacity,
                    shortfall=0 if capacity is None else max(0, peak - capacity),
                )
            )
        return tuple(rows)

    def capacity_needed(self) -> list[dict[str, Any]]:
        """capacity_needs() as summary.json writes them."""
        return [asdict(c) for c in self.capacity_needs()]

    def balance(self) -> float:
        """Mean over (client, channel, day) of the spread max-min of sends across
        resources with equal limits: 0 is perfectly even."""
        peers: dict[tuple[str, str, int | None], list[str]] = {}
        for (client, channel, resource), limit in self.limits.items():
            peers.setdefault((client, channel, limit), []).append(resource)
        used: dict[tuple[str, str, int | None, str], dict[str, int]] = {}
        for (client, channel, resource, day), n in self.usage.items():
            limit = self.limits.get((client, channel, resource))
            used.setdefault((client, channel, limit, day), {})[resource] = n
        spreads = []
        for (client, channel, limit, _), counts in used.items():
            group = peers.get((client, channel, limit), [])
            if len(group) > 1:
                per_resource = [counts.get(r, 0) for r in group]
                spreads.append(max(per_resource) - min(per_resource))
        return round(statistics.fmean(spreads), 4) if spreads else 0.0

    def per_day(self) -> Counter[tuple[str, str, str]]:
        """(day, channel, status) -> entries, over every client."""
        days: Counter[tuple[str, str, str]] = Counter()
        for (_, day, channel, status), n in self.per_client_day.items():
            days[(day, channel, status)] += n
        return days

    def feedback(self) -> FeedbackFigures:
        days = sorted({day for day, _ in self.feedback_days})
        states: Counter[str] = Counter()
        for (state, _), n in self.health.items():
            states[state] += n
        kind_rank = {k: i for i, k in enumerate(KINDS)}
        state_rank = {s: i for i, s in enumerate(HEALTH_STATES)}
        channel_rank = {c.value: i for i, c in enumerate(Channel)}
        return FeedbackFigures(
            send_events=sum(self.kinds.values()),
            by_kind={k: self.kinds[k] for k in KINDS},
            refunds=sum(self.refunds.values()),
            refunds_by_kind={k: self.refunds[k] for k in REFUND_KINDS},
            cancellations=sum(self.cancelled.values()),
            cancellations_by=tuple(
                CancellationCount(channel, reason, n)
                for (channel, reason), n in sorted(
                    self.cancelled.items(),
                    key=lambda item: (
                        channel_rank.get(item[0][0], len(channel_rank)),
                        kind_rank.get(item[0][1], len(kind_rank)),
                        item[0],
                    ),
                )
            ),
            health_changes=sum(self.health.values()),
            health_by_state={s: states[s] for s in HEALTH_STATES},
            health_by=tuple(
                HealthCount(state, cause, n)
                for (state, cause), n in sorted(
                    self.health.items(),
                    key=lambda item: (
                        state_rank.get(item[0][0], len(state_rank)),
                        kind_rank.get(item[0][1], len(kind_rank)),
                        item[0],
                    ),
                )
            ),
            per_day=tuple(
                FeedbackDay(
                    day,
                    self.feedback_days[(day, "send_events")],
                    self.feedback_days[(day, "refunds")],
                    self.feedback_days[(day, "cancellations")],
                    self.feedback_days[(day, "health_changes")],
                )
                for day in days
            ),
            health_listed=tuple(self.health_listed),
        )

    def input_sources(self) -> tuple[InputSource, ...]:
        """The sources, a send-events source's records naming no reserved send
        moved from read to skipped."""
        found = []
        for source in self.sources:
            late = self.not_reserved[source.name] if source.kind == SEND_EVENTS else 0
            if late:
                source = replace(
                    source, records=source.records - late, skipped=source.skipped + late
                )
            found.append(source)
        return tuple(found)

    def inputs(self) -> Inputs:
        first, last = self.scored_span or (None, None)
        return Inputs(
            sources=self.input_sources(),
            leads_read=self.leads_read,
            patterns_read=self.patterns_read,
            send_events_read=self.send_events_read,
            first_scored_at=first,
            last_scored_at=last,
            skipped=tuple(self.skipped),
            skipped_total=sum(self.invalid.values()),
        )

    def result(self) -> ReplaySummary:
        totals = self.status_totals()
        return ReplaySummary(
            rules=self.rules,
            leads=self.leads,
            invalid_by_code=dict(sorted(self.invalid.items())),
            statuses={s: totals[s] for s in REPORTED_STATUSES},
            by_tier=self.tier_counts(),
            entries=tuple(EntryCount(*key, n) for key, n in sorted(self.entries.items())),
            per_day=tuple(DayCount(*key, n) for key, n in sorted(self.per_day().items())),
            resources=self.resource_use(),
            capacity_needed=self.capacity_needs(),
            usage_balance_spread=self.balance(),
            send_times=tuple(SendTimeCount(*key, n) for key, n in sorted(self.send_times.items())),
            per_client_day=tuple(
                ClientDayCount(*key, n) for key, n in sorted(self.per_client_day.items())
            ),
            leads_by_client=dict(sorted(self.clients.items())),
            unknown_clients=tuple(sorted(self.unknown_clients)),
            inputs=self.inputs(),
            reasons=self.reason_totals(),
            by_reason=tuple(ReasonCount(*key, n) for key, n in sorted(self.reasons.items())),
            send_minutes=tuple(
                SendMinuteCount(*key, n) for key, n in sorted(self.send_minutes.items())
            ),
            feedback=self.feedback(),
        )

    def reason_totals(self) -> dict[str, int]:
        totals: Counter[str] = Counter()
        for (_, _, why), n in self.reasons.items():
            totals[why] += n
        # A code this module does not know yet (a newer core) is kept, after the others.
        return {r: totals[r] for r in [*REASONS, *sorted(set(totals) - set(REASONS))]}

    def to_json(self) -> dict[str, Any]:
        return self.result().to_json()


# Summary's counters that add() tallies, by their private names.
_TALLIED = tuple(f"_{name}" for name, value in vars(Summary).items() if isinstance(value, _Tallied))


def _share(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0
