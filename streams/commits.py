"""The commit protocol: the one place that decides when a consumed record may be committed.

A record may be committed once everything it produced (allocations, dead
letters, pattern copies) has been acknowledged by the broker, and never before
a record of the same partition that came earlier: faust commits the highest
offset of a contiguous run of acked offsets and lets a gap of one offset
through (`Consumer._new_offset`), so the order has to be ours.

How: every record is pinned the moment faust decodes it for the agent's
channel (`PinnedTopic`: one extra reference on its message), so that no ack of
faust's own is ever the final one. faust acks records it never hands to the
agent: once an agent's `take_events` has ended, every record its stream still
drains (acks back on), and in its pure-Python stream iterator a record
fetched before a rebalance and skipped after it (stale generation, flow
control off). Each such ack used to make an offset committable that no batch
had decided: measured, a stopped agent's worker committed its partition past
the failed batch and the 40 leads after it. Now only the ledger releases a
reference: a batch's events are adopted by the `OffsetLedger` when the batch
is taken; when its deliveries are acknowledged, the ledger says which events
are now releasable: per partition, the longest run of finished events from
the oldest pending one. Releasing acks them through the stream, which makes
their offsets committable. A record faust skipped keeps its pin and is never
committed; it comes again from the committed offset (a rebalance seeks
there), or by a rewind once a later record of its partition shows the skip
(streams/offsets.py). A batch that fails is never finished: nothing after it on its
partitions is released, the ledger is broken, and the agent stops (and
`/health` says so) instead of going on past it. On a restart the pinned
records come again, and the held quota answers give them the same
allocations.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import faust

from streams.offsets import OffsetWatch, Rewinds, Seen

log = logging.getLogger(__name__)

# A gap still open this long after its last rewind, with records past it
# coming: asked again (streams/offsets.py, `OffsetWatch.ask_again`).
ASK_AGAIN_SECONDS = 5.0

E = TypeVar("E")


@dataclass
class OffsetLedger(Generic[E]):
    """Which events may be released, in order per partition (pure; no faust)."""

    _pending: dict[Hashable, deque[tuple[int, E]]] = field(default_factory=dict)
    _finished: set[int] = field(default_factory=set)
    _next_ticket: int = 0

    def add(self, events: Sequence[tuple[Hashable, E]]) -> int:
        """Register a batch of (partition, event) in consumption order; its ticket."""
        ticket = self._next_ticket
        self._next_ticket += 1
        for partition, event in events:
            self._pending.setdefault(partition, deque()).append((ticket, event))
        return ticket

    def finish(self, ticket: int) -> list[E]:
        """Mark a batch done; the events now releasable, in order within each partition."""
        self._finished.add(ticket)
        released: list[E] = []
        for partition, queue in list(self._pending.items()):
            while queue and queue[0][0] in self._finished:
                released.append(queue.popleft()[1])
            if not queue:
                del self._pending[partition]
        live = {t for queue in self._pending.values() for t, _ in queue}
        self._finished &= live  # a finished ticket is forgotten once none of it waits
        return released

    @property
    def waiting(self) -> int:
        """Events pinned and not yet released."""
        return sum(len(queue) for queue in self._pending.values())


class BatchFailed(RuntimeError):
    """A batch could not finish; its records stay uncommitted until a restart."""


class Commits:
    """Pins batches, releases them in order once their deliveries are acknowledged.

    At most `limit` batches wait for the broker at once, so the agent goes on
    deciding while the broker acknowledges; a delivery failure is raised into
    the agent at its next batch (never lost in a background task). With
    `exclusive` (and limit 0), a batch runs from pin to release under that
    lock, so that whoever else holds it sees no batch half sent.
    """

    def __init__(
        self,
        name: str,
        stream: Any,
        limit: int = 4,
        exclusive: asyncio.Lock | None = None,
        watch_offsets: bool = True,
        rewinds: Rewinds | None = None,
        on_skipped: Callable[[int], None] | None = None,
    ) -> None:
        self.name = name
        self._stream = stream
        self._limit = limit
        # Held for a whole batch (exactly_once): see streams/app.py's commit timer.
        self._exclusive = exclusive
        self._ledger: OffsetLedger[Any] = OffsetLedger()
        self._tasks: deque[asyncio.Task[None]] = deque()
        self.failure: BaseException | None = None
        # Offsets are contiguous without transactions (no control records):
        # a record never seen between two consumed ones is one faust would
        # commit over, or never hand over again (streams/offsets.py). Watched,
        # and a skip is rewound by the consumer's fetch loop (`rewinds`).
        self._watch = watch_offsets
        self._offsets = OffsetWatch(markers=rewinds is not None and rewinds.markers)
        self._rewinds = rewinds
        self._on_skipped = on_skipped
        self.skipped_offsets = 0
        # Events read past an open gap: never acked. faust would commit over
        # a gap of one at its head, or any gap with no committed offset; the
        # rewind reads each of them again, and that copy is acked.
        self._past_gap: set[int] = set()  # id() of the event
        self._asked: dict[Any, float] = {}  # partition -> when a rewind was last asked

    def reassigned(self) -> None:
        """A rebalance: the next record of each partition starts from its committed offset."""
        self._offsets.reassigned()  # (events past a gap stay unacked: read again from there)
        self._asked.clear()

    def bind(self, stream: Any) -> None:
        """The stream the agent's actor iterates (faust may hand a restarted
        actor the same one or a new one)."""
        self._stream = stream

    async def run(
        self,
        events: Sequence[Any],
        work: Callable[[Sequence[Any]], Awaitable[Sequence[Awaitable[Any]]]],
    ) -> None:
        """Pin the batch, do `work` (which returns what the batch produced, as
        delivery futures), and release the batch once those are acknowledged.
        If `work` fails, the batch never finishes and the agent stops."""
        async with self._exclusive or contextlib.nullcontext():
            ticket = self.pin(events)
            try:
                deliveries = await work(events)
            except Exception as exc:
                self.fail(exc)
                raise
            await self.release_after(ticket, deliveries)

    def pin(self, events: Sequence[Any]) -> int:
        """Adopt the batch's arrival pins (`PinnedTopic`) into the ledger."""
        self._raise_if_broken()
        for event in events:
            message = event.message
            # faust's reference and the pin: faust acks a batch only after
            # the agent has handed it back. Fewer means an ack of faust's own
            # came first (or a topic that is not pinned): stop rather than let
            # that offset be committed undecided.
            if message.refcount < 2:
                where = f"offset {message.offset} of {message.tp}"
                exc = RuntimeError(f"{where} was acked before its batch was decided")
                self.fail(exc)
                raise exc
        if self._watch:
            self._check_contiguous(events)
        return self._ledger.add([(event.message.tp, event) for event in events])

    def _check_contiguous(self, events: Sequence[Any]) -> None:
        """Watch each partition's offsets: a record past the one expected (the
        partition's previous record + 1, or after a rebalance its committed
        offset) means records were skipped. faust must not commit over them,
        and the fetch loop rewinds to them. Redeliveries are normal."""
        app = getattr(self._stream, "app", None)
        consumer = getattr(app, "consumer", None)
        committed = getattr(consumer, "_committed_offset", {})
        generation = getattr(app, "consumer_generation_id", None)
        for event in events:
            message = event.message
            if generation is not None and message.generation_id != generation:
                continue  # taken before a rebalance: the new assignment starts afresh
            tp, offset = message.tp, message.offset
            known = self._offsets.gap(tp)
            seen = self._offsets.see(tp, offset, committed.get(tp))
            if seen is Seen.NEXT or seen is Seen.AGAIN or seen is Seen.MARKER:
                continue
            gap_lists = getattr(consumer, "_gap", None)  # faust's: a defaultdict
            gaps = gap_lists[tp] if gap_lists is not None else None
            if seen is Seen.EMPTY_GAP:
                assert known is not None  # an empty gap is one being rewound
                start = known[0]
                # faust's fetch loop lists no gap of watched offsets; this one
                # holds nothing, so faust may commit over it.
                if gaps is not None:
                    gaps.addi(start, offset)
                    gaps.merge_overlaps()
                log.info(
                    "agent %s: offsets %d..%d of %s hold no records (the same record %d "
                    "came first after two rewinds: deleted, compacted, or transactions' markers)",
                    self.name, start, offset - 1, tp, offset,
                )  # fmt: skip
                continue
            gap = self._offsets.gap(tp)
            assert gap is not None  # SKIPPED opens or keeps a gap
            start = gap[0]
            self._past_gap.add(id(event))
            if gaps:  # listed by faust's own fetch loop (not ours): not committable unseen
                gaps.chop(start, offset)
            if known is None:  # a new gap: said once, however many rewinds it takes
                self.skipped_offsets += offset - start
                if self._on_skipped is not None:
                    self._on_skipped(offset - start)
                log.warning(
                    "agent %s: offsets %d..%d of %s were never consumed (next was %d; "
                    "faust's read offset %s, committed %s); rewinding to %d",
                    self.name,
                    start,
                    offset - 1,
                    tp,
                    offset,
                    getattr(consumer, "_read_offset", {}).get(tp),
                    committed.get(tp),
                    start,
                )
            # Asked when the gap opens and when its first record past comes
            # again (a rewind made); not for each record queued before it.
            # And once more after a while with neither: the first record past
            # may have been deleted meanwhile, and the rewind's first is later.
            if self._rewinds is not None:
                now = time.monotonic()
                if known is None or offset <= known[1]:
                    self._want(tp, start, now)
                elif now - self._asked.get(tp, now) > ASK_AGAIN_SECONDS:
                    self._offsets.ask_again(tp)
                    self._want(tp, start, now)

    def _want(self, tp: Any, start: int, now: float) -> None:
        assert self._rewinds is not None
        self._rewinds.want(tp, start)
        self._asked[tp] = now

    async def release_after(self, ticket: int, deliveries: Sequence[Awaitable[Any]]) -> None:
        """Release the batch once `deliveries` are acknowledged (in the background)."""
        self._raise_if_broken()
        self._tasks.append(asyncio.ensure_future(self._release(ticket, deliveries)))
        while len(self._tasks) > self._limit:
            await self._tasks.popleft()
        while self._tasks and self._tasks[0].done():
            self._tasks.popleft().result()

    async def _release(self, ticket: int, deliveries: Sequence[Awaitable[Any]]) -> None:
        try:
            await asyncio.gather(*deliveries)
        except BaseException as exc:
            self.fail(exc)
            raise
        past_gap = self._past_gap
        for event in self._ledger.finish(ticket):
            if past_gap and id(event) in past_gap:
                past_gap.discard(id(event))
                self._forget(event)  # read again by the rewind, and acked then
                continue
            await self._stream.ack(event)

    def _forget(self, event: Any) -> None:
        """Never ack this event: out of faust's set of unacked messages, so
        that no rebalance or stop waits for it; its offset stays uncommitted."""
        unacked = self._unacked_messages()
        if unacked is not None:
            unacked.discard(event.message)

    def _unacked_messages(self) -> Any:
        """faust's set of the messages its waits wait for (None without a consumer)."""
        app = getattr(self._stream, "app", None)
        return getattr(getattr(app, "consumer", None), "_unacked_messages", None)

    def fail(self, exc: BaseException) -> None:
        """The batch cannot finish: nothing after it is ever released by this worker."""
        if self.failure is None:
            self.failure = exc
            self.forget_unacked()
            log.error(
                "agent %s stopped: a batch could not finish (%s); its records and "
                "everything after them stay uncommitted and come again after a restart",
                self.name,
                self.why,
            )

    @staticmethod
    def never_wait_for_stopped(consumer: Any, commits: Sequence[Commits]) -> None:
        """Make faust's wait for unacked records (a rebalance, a stop) forget a
        stopped agent's records first."""
        wait_empty = consumer.wait_empty

        async def wait_for_running_agents() -> None:
            for each in commits:
                each.forget_unacked()
            await wait_empty()

        consumer.wait_empty = wait_for_running_agents

    def forget_unacked(self) -> None:
        """A stopped agent: stop faust from waiting for its records to be acked.

        faust waits, at shutdown and on a rebalance, until every message its
        streams took has been acked (`Consumer.wait_empty`). A stopped agent's
        never will be, so that they are never committed: the pinned ones, and
        those its stream still takes after the failure. Dropping them from
        faust's set of unacked messages does not ack them: their offsets stay
        uncommitted and come again after a restart. Done at the failure and,
        as the stream may take more, before each of faust's waits
        (`never_wait_for_stopped`); without it a stopped agent would hang the
        worker's SIGTERM until it is killed, and each rebalance of its group
        until the broker's timeout.
        """
        if self.failure is None:
            return
        unacked = self._unacked_messages()
        if unacked is not None:
            topics = set(self._stream.channel.topics)  # the agent's topic
            for message in list(unacked):
                if message.topic in topics:
                    unacked.discard(message)

    @property
    def why(self) -> str | None:
        """The failure that stopped the agent, as one line; None while it runs."""
        if self.failure is None:
            return None
        return f"{type(self.failure).__name__}: {self.failure}"

    def _raise_if_broken(self) -> None:
        if self.failure is not None:
            raise BatchFailed(f"agent {self.name} stopped after {self.why}")

    async def drain(self) -> None:
        """On a clean stop: let acknowledged batches become committable."""
        while self._tasks:
            task = self._tasks.popleft()
            try:
                await task
            except Exception:  # already recorded by _release
                continue

    @property
    def waiting(self) -> int:
        return self._ledger.waiting


class PinnedTopic(faust.Topic):
    """A topic whose records are pinned as faust decodes them for the agent's channel.

    faust's conductor decodes a record once for the channels that share its
    key and value types (ours: the agent's channel alone) before queueing it.
    faust's own acks of it (its stream's, once per iteration that takes it)
    then never reach the last reference: only `Commits` releases that
    (module docstring), and `Commits.pin` stops the agent if one came first.
    Clones (faust clones a topic for each agent's channel) are PinnedTopics
    too.
    """

    def _compile_decode(self) -> None:
        super()._compile_decode()
        decode = self.decode
        if self._raw():
            # faust's decode of raw bytes (two codec lookups, each handing
            # the bytes back as they are) is the event faust makes of them.
            create_event = self.app.create_event

            async def decode_raw(message: Any, *, propagate: bool = False) -> Any:
                message.incref()
                return create_event(message.key, message.value, message.headers, message)

            self.decode = decode_raw  # type: ignore[method-assign]
            return

        async def decode_pinned(message: Any, *, propagate: bool = False) -> Any:
            event = await decode(message, propagate=propagate)
            message.incref()
            return event

        self.decode = decode_pinned  # type: ignore[method-assign]

    def _raw(self) -> bool:
        return (
            self.key_type is None
            and self.value_type is None
            and self.key_serializer == "raw"
            and self.value_serializer == "raw"
        )
