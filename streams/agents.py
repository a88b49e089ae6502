"""What the agents do with a batch of events; app.py wires these to faust.

Each batch runs inside the agent's `Commits` (streams/commits.py, the one
owner of the commit protocol): pinned before anything is decided, released
once everything it produced (the deliveries these methods return) has been
acknowledged by the broker. A batch that fails
stops the agent: its records stay uncommitted and come again, and the held
quota answers give them the same allocations without counting them twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from allocator.batch import BatchDecider, Planned, Undecidable
from allocator.errors import InvalidRecord, ServiceUnavailable
from allocator.feedback import FeedbackApplier
from allocator.models import (
    DLQ_KEY_BYTES,
    ScoredLead,
    SendEvent,
    dead_letter,
    parse_lead,
    parse_pattern,
    parse_send_event,
)
from allocator.store import Database
from streams.metrics import Metrics
from streams.patterns import PatternFeed
from streams.turns import forfeit_on_failure, in_turn

log = logging.getLogger(__name__)

T = TypeVar("T")


class Send(Protocol):
    """Schedules a record produced from the consumed record at `source` (its
    topic partition); returns the delivery future. Under exactly_once the record
    joins the source partition's transaction (streams/app.py)."""

    def __call__(
        self, topic: str, key: bytes | None, value: bytes, partition: int | None, source: Any
    ) -> Awaitable[Awaitable[Any]]: ...


class SendMany(Protocol):
    """Schedules records produced from a batch, each (key, value, its source
    partition), to one topic; returns the delivery futures (fewer than the
    records when they travel in batches)."""

    def __call__(
        self, topic: str, records: Sequence[tuple[bytes, bytes, Any]]
    ) -> Awaitable[Sequence[Awaitable[Any]]]: ...


async def with_retry(
    operation: str,
    attempt: Callable[[], Awaitable[T]],
    metrics: Metrics,
    max_delay: float = 5.0,
) -> T:
    """Run `attempt` until it succeeds, backing off while a service is unavailable."""
    delay = 0.1
    while True:
        try:
            return await attempt()
        except ServiceUnavailable as exc:
            metrics.retries.labels(operation).inc()
            log.warning("%s failed (%s); retrying in %.1fs", operation, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_delay)


class DeadLetters:
    def __init__(self, send: Send, topic: str, metrics: Metrics) -> None:
        self._send = send
        self._topic = topic
        self._metrics = metrics

    async def send(self, event: Any, error: InvalidRecord) -> Awaitable[Any]:
        message = event.message
        letter = dead_letter(
            message.topic,
            message.partition,
            message.offset,
            message.key,
            message.value,
            error,
            datetime.now(UTC),
        )
        self._metrics.dead_letters.labels(message.topic, error.code).inc()
        log.warning(
            "DLQ %s[%s]@%s %s: %s",
            message.topic,
            message.partition,
            message.offset,
            error.code,
            error.message,
        )
        # The input key, unless it is too large to travel: a record near the
        # broker's size limit must still fit in a dead letter.
        key = message.key
        if isinstance(key, bytes) and len(key) > DLQ_KEY_BYTES:
            key = key[:DLQ_KEY_BYTES]
        return await self._send(
            self._topic, key, letter.model_dump_json().encode(), None, message.tp
        )


class LeadAllocator:
    """scored-leads batch -> allocations (and dead letters)."""

    def __init__(
        self,
        decider: BatchDecider,
        patterns: PatternFeed,
        send: SendMany,
        allocations_topic: str,
        dead_letters: DeadLetters,
        metrics: Metrics,
        pipelined: bool = True,
    ) -> None:
        self._decider = decider
        self._patterns = patterns
        self._send = send
        self._topic = allocations_topic
        self._dead = dead_letters
        self._metrics = metrics
        self._pipelined = pipelined
        self._unknown_seen = 0
        # The previous batch's turns: its reservation made, its allocations handed over.
        self._reserved: asyncio.Future[None] | None = None
        self._sent: asyncio.Future[None] | None = None

    async def decide(self, events: Sequence[Any]) -> list[Awaitable[Any]]:
        """Plan a batch; the deliveries of its dead letters, and of the rest of
        its work: reserving, completing and sending its allocations.

        Pipelined (the default), that rest runs in the background, so that the
        agent parses and plans its next batch while this one waits on Redis
        and the broker; batch after batch, the reservations are made and the
        allocations handed to the producer in the order the batches came, as
        when each batch ran whole. The commit protocol is unchanged: a batch
        is released once all it produced is acknowledged, and a batch that
        fails stops the agent (streams/commits.py).
        """
        deliveries: list[Awaitable[Any]] = []
        parsed: list[tuple[Any, ScoredLead]] = []
        for event in events:
            try:
                parsed.append((event, parse_lead(event.message.value)))
            except InvalidRecord as err:
                deliveries.append(await self._dead.send(event, err))
        if not parsed:
            return deliveries
        await with_retry("load_patterns", self._patterns.ensure_seeded, self._metrics)
        leads = [lead for _, lead in parsed]
        patterns = self._patterns.get
        planned = await with_retry(
            "allocate",
            lambda: self._decider.plan(leads, lambda lead: patterns(lead.client_id)),
            self._metrics,
        )
        loop = asyncio.get_running_loop()
        reserved, sent = loop.create_future(), loop.create_future()
        rest = asyncio.ensure_future(
            self._finish(parsed, planned, (self._reserved, reserved), (self._sent, sent))
        )
        self._reserved, self._sent = reserved, sent
        if not self._pipelined:
            await rest
        deliveries.append(rest)
        return deliveries

    async def _finish(
        self,
        parsed: Sequence[tuple[Any, ScoredLead]],
        planned: Planned,
        reserving: tuple[asyncio.Future[None] | None, asyncio.Future[None]],
        sending: tuple[asyncio.Future[None] | None, asyncio.Future[None]],
    ) -> None:
        """Reserve (after the batch before has), complete, send (after the
        batch before has handed its allocations over); done once everything
        sent is acknowledged. A failure anywhere, between the turns too,
        fails the turns this batch has not taken, and so the batches after it."""
        deliveries: list[Awaitable[Any]] = []
        decisions = []
        records = []
        with forfeit_on_failure(reserving[1], sending[1]):
            async with in_turn(*reserving):
                answers = await with_retry(
                    "allocate", lambda: self._decider.reserve(planned), self._metrics
                )
            outcomes = self._decider.complete(planned, answers)
            async with in_turn(*sending):
                for (event, _), outcome in zip(parsed, outcomes, strict=True):
                    if isinstance(outcome, Undecidable):
                        deliveries.append(await self._dead.send(event, outcome.error))
                    else:
                        decisions.append(outcome)
                        allocation = outcome.allocation
                        key = allocation.lead_id.encode()
                        value = allocation.to_json().encode()
                        records.append((key, value, event.message.tp))
                if records:
                    deliveries.extend(await self._send(self._topic, records))
        self._metrics.record_batch(decisions)
        self._count_unknown_clients()
        await asyncio.gather(*deliveries)

    def _count_unknown_clients(self) -> None:
        total = self._decider.unknown_client_leads
        if total > self._unknown_seen:
            self._metrics.unknown_client_leads.inc(total - self._unknown_seen)
            self._unknown_seen = total


class PatternFanOut:
    """conversion-patterns batch -> database row and one copy per fan-out partition."""

    def __init__(
        self,
        database: Database,
        send: Send,
        fanout_topic: str,
        partitions: int,
        dead_letters: DeadLetters,
        metrics: Metrics,
    ) -> None:
        self._database = database
        self._send = send
        self._topic = fanout_topic
        self._partitions = partitions
        self._dead = dead_letters
        self._metrics = metrics

    async def persist_and_copy(self, events: Sequence[Any]) -> list[Awaitable[Any]]:
        """Save each valid pattern, then copy it to every fan-out partition; the deliveries."""
        deliveries: list[Awaitable[Any]] = []
        for event in events:
            try:
                pattern = parse_pattern(event.message.value)
            except InvalidRecord as err:
                deliveries.append(await self._dead.send(event, err))
                continue

            # Persisted before it is copied: a worker seeding its pattern book
            # from the database never misses a pattern that was copied.
            await with_retry(
                "save_pattern",
                lambda: self._database.save_pattern(pattern),  # noqa: B023  awaited here
                self._metrics,
            )
            value = pattern.model_dump_json().encode()
            key = pattern.client_id.encode()
            for partition in range(self._partitions):
                deliveries.append(
                    await self._send(self._topic, key, value, partition, event.message.tp)
                )
        return deliveries


class FeedbackAgent:
    """send-events batch -> lead-cancellations and resource-health records (and dead letters)."""

    def __init__(
        self,
        applier: FeedbackApplier,
        send: Send,
        cancellations_topic: str,
        health_topic: str,
        dead_letters: DeadLetters,
        metrics: Metrics,
    ) -> None:
        self._applier = applier
        self._send = send
        self._cancellations = cancellations_topic
        self._health = health_topic
        self._dead = dead_letters
        self._metrics = metrics

    async def apply(self, events: Sequence[Any]) -> list[Awaitable[Any]]:
        """Apply a batch in order; the deliveries of what it produced."""
        deliveries: list[Awaitable[Any]] = []
        parsed: list[tuple[Any, SendEvent]] = []
        for event in events:
            try:
                parsed.append((event, parse_send_event(event.message.value)))
            except InvalidRecord as err:
                deliveries.append(await self._dead.send(event, err))
        if not parsed:
            return deliveries
        results = await with_retry(
            "apply_feedback",
            lambda: self._applier.apply([one for _, one in parsed]),
            self._metrics,
        )
        applied = []
        for (event, _), result in zip(parsed, results, strict=True):
            source = event.message.tp
            if isinstance(result, InvalidRecord):
                deliveries.append(await self._dead.send(event, result))
                continue
            applied.append(result)
            for cancellation in result.cancellations:
                deliveries.append(
                    await self._send(
                        self._cancellations,
                        cancellation.lead_id.encode(),
                        cancellation.model_dump_json().encode(),
                        None,
                        source,
                    )
                )
            for change in result.health:
                deliveries.append(
                    await self._send(
                        self._health,
                        change.resource_id.encode(),
                        change.model_dump_json().encode(),
                        None,
                        source,
                    )
                )
        self._metrics.record_feedback(applied)
        return deliveries
