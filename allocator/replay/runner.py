"""Replay history through the one decision core, in event time.

Leads, patterns and send-events are merged by event time (scored_at,
updated_at, occurred_at): a pattern takes effect for leads scored at or after
its updated_at; a send-event is applied at its occurred_at, through the same
quota store and directory as the decisions (so a refund gives a count back to
later leads, a stop cancels reserved sends and suppresses the lead's later
events, a cooling resource is skipped, the sticky sender sees the sends held);
leads are decided in scored_at order, input order among equal times; every
decision's reference time and decided_at are the lead's scored_at. Quotas live
in the store given (in memory by default), never in the live counters.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from allocator.batch import BatchDecider, Undecidable, event_time
from allocator.channels import ALLOCATED, Channel
from allocator.decision import Schedule
from allocator.directory import ClientDirectory, build_snapshot, unknown_client
from allocator.errors import InvalidRecord
from allocator.feedback import (
    Applied,
    FeedbackApplier,
    forget_published_health,
    lapsed_health,
)
from allocator.models import (
    Client,
    ConversionPattern,
    HealthChange,
    Pool,
    Resource,
    ScoredLead,
)
from allocator.patterns import NO_PATTERNS, PatternSet
from allocator.quota import MemoryQuotaStore, QuotaStore
from allocator.replay.rules import Rules
from allocator.replay.sources import Event, History, Rejected
from allocator.replay.summary import (
    NO_REASON,
    REASONS,
    InputSource,
    ReasonChange,
    SendChanges,
    Summary,
)

# Per lead, per channel: (status, resource_id, send_at, reason code or
# NO_REASON) for comparing runs.
Outcome = dict[str, tuple[str, str | None, str | None, str]]


@dataclass
class ReplayRun:
    rules: Rules
    lines: list[str]  # allocation records as JSON, in input order
    summary: Summary
    outcomes: list[Outcome] = field(default_factory=list)  # kept when comparing
    undecidable: list[str] = field(default_factory=list)  # leads the rules could not decide
    # The lead-cancellations and resource-health records the send-events
    # produced, as JSON, in the order they were produced.
    cancellations: list[str] = field(default_factory=list)
    health: list[str] = field(default_factory=list)
    # Send-events naming no send this run reserved (unknown_send), as skipped.
    rejected: list[Rejected] = field(default_factory=list)
    # The leads of `undecidable`, by index in the history's leads, with why
    # (after a split replay, an InvalidRecord of its code, field and message).
    undecided: list[tuple[int, InvalidRecord]] = field(default_factory=list)
    processes: int = 1  # that decided the leads (processes.py)
    # Each application of send-events, in order (what a split replay merges).
    applications: list[Application] = field(default_factory=list)

    @classmethod
    def of(
        cls,
        rules: Rules,
        lines: list[str],
        summary: Summary,
        outcomes: list[Outcome],
        undecided: list[tuple[int, InvalidRecord]],
        history: History,
        applications: list[Application],
        processes: int = 1,
    ) -> ReplayRun:
        """The run whose `lines` are per lead of the history ("" where none was
        decided) and whose records of feedback its `applications` produced."""
        cancellations, health, rejected = produced(history, applications)
        return cls(
            rules,
            [line for line in lines if line],
            summary,
            outcomes,
            [error.message for _, error in undecided],
            cancellations,
            [change.model_dump_json() for change in health],
            rejected,
            undecided,
            processes,
            applications,
        )


@dataclass
class Application:
    """One application of send-events as the whole history batches them: the
    resources found active again at its start (lapsed), then each send-event's
    records. `sends` are the batch's send-events, by index in the history's;
    `applied` the results of those this run applied (a shard's: its clients').
    A run with send-events ends with one more, whose `sends` is empty: the
    lapses at its last send-event's time."""

    lapsed: list[HealthChange]
    sends: list[int]
    applied: dict[int, Applied | InvalidRecord]


async def replay(
    history: History,
    clients: list[Client],
    resources: list[Resource],
    rules: Rules,
    schedule: Schedule,
    quota: QuotaStore,
    progress: Callable[[int], None] = lambda n: None,
    keep_outcomes: bool = False,
    batch_size: int = 1000,
    sources: Sequence[InputSource] = (),
    pools: Sequence[Pool] = (),
    only: frozenset[str] | None = None,
    in_event_time: Sequence[tuple[int, Event]] | None = None,
) -> ReplayRun:
    """Every lead of `history` decided under `rules`, and every send-event
    applied, in event time; `sources` say where the history and the setup were
    read, for the summary to report. Consecutive leads are decided in batches
    of up to `batch_size`, consecutive send-events applied likewise. An
    in-memory `quota` is told whether to index the leads' sends: only
    send-events and sticky senders read the index.

    A shard of a split replay (processes.py) decides and applies `only` the
    leads and send-events of these client ids (None: every client's),
    walking past the others' so that its batches and its checks for lapsed
    health fall where the whole history's do; every client's patterns are
    held all the same, and its lines and outcomes are its clients'. Its
    summary counts what it decided and applied, not what the history held
    (the whole run's summary reads that). `in_event_time` is this history's
    history.in_event_time(), when the caller has it already (a split replay
    merges it once, before forking; its indexes point into this history's
    lists, which is not checked)."""
    setup = rules.apply(clients, resources, pools)
    if isinstance(quota, MemoryQuotaStore):
        sticky = any(client.sticky_days for client in setup.clients)
        quota.index_sends = bool(history.send_events) or sticky
    snapshot = build_snapshot(setup.clients, setup.resources, setup.pools)
    # One directory and one store for deciding and for feedback.
    directory = ClientDirectory.fixed(snapshot)
    decider = BatchDecider(directory, quota, rules.schedule(schedule), event_time)
    applier = FeedbackApplier(directory, quota)
    summary = Summary(rules.describe(), tuple(sources))
    if only is None:
        summary.read(history)
    applications: list[Application] = []
    sends: list[int] = []  # send-events waiting to be applied, by index

    leads, events = history.leads, history.send_events
    held: dict[str, PatternSet] = {}
    lines: list[str] = [""] * len(leads)
    undecided: list[tuple[int, InvalidRecord]] = []
    outcomes: list[Outcome] = [{} for _ in leads] if keep_outcomes else []
    pending: list[int] = []

    def patterns_of(lead: ScoredLead) -> PatternSet:
        return held.get(lead.client_id, NO_PATTERNS)

    async def decide_pending() -> None:
        batch = [leads[i] for i in pending]
        decisions = await decider.decide_detailed(batch, patterns_of)
        for index, lead, decision in zip(pending, batch, decisions, strict=True):
            if isinstance(decision, Undecidable):
                summary.skip_undecidable(lead, decision.error)
                undecided.append((index, decision.error))
                continue
            allocation = decision.allocation
            lines[index] = allocation.to_json()
            setup = snapshot.get(lead.client_id) or unknown_client(lead.client_id)
            summary.add(decision, lead, setup)
            if keep_outcomes:
                outcomes[index] = {
                    e.channel.value: (
                        e.status,
                        e.resource_id,
                        e.send_at.isoformat() if e.send_at else None,
                        e.reason.code if e.reason is not None else NO_REASON,
                    )
                    for e in allocation.channels
                }
        progress(len(pending))
        pending.clear()

    async def lapses(now: datetime, batch: list[int]) -> Application:
        # Resources active again by the event time (a cooldown over): the
        # records no send-event produces, at the instant each changed.
        changes = await lapsed_health(directory, quota, now)
        for change in changes:
            owner = snapshot.get(change.client_id) or unknown_client(change.client_id)
            summary.add_lapse(change, owner)
        await forget_published_health(quota, changes)
        application = Application(changes, batch, {})
        applications.append(application)
        return application

    async def apply_sends() -> None:
        # The batch as the whole history makes it: its first event's time is
        # when lapsed health is looked for, in a shard as in one process.
        application = await lapses(history.send_events[sends[0]].occurred_at, list(sends))
        mine = sends if only is None else [i for i in sends if events[i].client_id in only]
        batch = [events[i] for i in mine]
        results = await applier.apply(batch)
        application.applied.update(zip(mine, results, strict=True))
        for index, event, result in zip(mine, batch, results, strict=True):
            if isinstance(result, InvalidRecord):
                summary.skip_send_event(history.origin(index), result)
                continue
            owner = snapshot.get(event.client_id) or unknown_client(event.client_id)
            summary.add_feedback(result, owner)
        sends.clear()

    walked = history.in_event_time() if in_event_time is None else in_event_time
    for index, event in walked:
        if isinstance(event, ScoredLead):
            if sends:
                await apply_sends()  # a lead after a send-event sees what it did
            if only is not None and event.client_id not in only:
                continue  # another shard's
            pending.append(index)
            if len(pending) >= batch_size:
                await decide_pending()
            continue
        if pending:
            await decide_pending()  # leads before this event do not see it
        if isinstance(event, ConversionPattern):
            # Send-events waiting go on waiting: a pattern changes only leads.
            if rules.use_patterns:
                current = held.get(event.client_id, NO_PATTERNS)
                held[event.client_id] = current.with_pattern(event)
        else:
            sends.append(index)
            if len(sends) >= batch_size:
                await apply_sends()
    if pending:
        await decide_pending()
    if sends:
        await apply_sends()
    if history.send_events:
        await lapses(max(e.occurred_at for e in history.send_events), [])
    return ReplayRun.of(rules, lines, summary, outcomes, undecided, history, applications)


def produced(
    history: History, applications: Sequence[Application]
) -> tuple[list[str], list[HealthChange], list[Rejected]]:
    """What the applications of send-events produced, in that order: the
    lead-cancellations (as JSON), the health changes (health_changes()),
    and the send-events refused as naming no reserved send."""
    cancellations: list[str] = []
    rejected: list[Rejected] = []
    for application in applications:
        for index in application.sends:
            result = application.applied.get(index)
            if isinstance(result, InvalidRecord):
                origin = history.origin(index)
                rejected.append(Rejected(origin.source, origin.where, result))
            elif result is not None:  # (None: another shard's)
                cancellations.extend(c.model_dump_json() for c in result.cancellations)
    return cancellations, list(health_changes(applications)), rejected


def health_changes(applications: Sequence[Application]) -> Iterator[HealthChange]:
    """The health changes of the applications, in order: each one's found
    lapsed, then each of its send-events' (a shard's: its clients')."""
    for application in applications:
        yield from application.lapsed
        for index in application.sends:
            result = application.applied.get(index)
            if isinstance(result, Applied):
                yield from result.health


def send_changes(base: ReplayRun, variant: ReplayRun) -> SendChanges:
    """How the variant's sends differ from the baseline's, lead by lead; and
    how the reasons of the channels both runs decided changed."""
    moved = resource_changed = newly_served = no_longer_served = 0
    reasons: Counter[tuple[str, str, str]] = Counter()
    absent = ("absent", None, None, NO_REASON)
    for mine, theirs in zip(base.outcomes, variant.outcomes, strict=True):
        for channel in mine.keys() | theirs.keys():
            a = mine.get(channel, absent)
            b = theirs.get(channel, absent)
            if channel in mine and channel in theirs and a[3] != b[3]:
                reasons[(channel, a[3], b[3])] += 1
            served_a, served_b = a[0] == ALLOCATED, b[0] == ALLOCATED
            if served_a and served_b:
                if a[2] != b[2]:
                    moved += 1
                elif a[1] != b[1]:
                    resource_changed += 1
            elif served_b:
                newly_served += 1
            elif served_a:
                no_longer_served += 1
    rank = {r: i for i, r in enumerate(REASONS)}

    def order(item: tuple[tuple[str, str, str], int]) -> tuple[int, int, int, int, str]:
        (channel, was, now), n = item
        where = list(Channel).index(Channel(channel))
        return (-n, where, rank.get(was, len(rank)), rank.get(now, len(rank)), was + now)

    changes = tuple(ReasonChange(*key, n) for key, n in sorted(reasons.items(), key=order))
    return SendChanges(
        moved, resource_changed, newly_served, no_longer_served, sum(reasons.values()), changes
    )
