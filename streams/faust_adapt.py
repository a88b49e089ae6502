"""Adapts faust where it has no setting of its own: its consumer fetch wait and
batched producing here; its acks in streams/commits.py (PinnedTopic).

faust-streaming 0.15 creates its Kafka consumers with a hard-coded
`fetch_max_wait_ms=1500` (faust/transport/drivers/aiokafka.py). Kafka answers a
fetch as soon as data arrives, so there the wait only bounds idle polling; but
the embedded Tansu broker answers a long-poll fetch only when the wait runs
out, which put ~0.7-1.7 s into every record's end-to-end latency (topics.md).
`use_fetch_max_wait` makes the wait ALLOCATOR_CONSUMER_FETCH_MAX_WAIT_MS.

faust hands each fetched record to its topic in a race of four new tasks;
`use_batched_drain` races once per fetch. faust sends record by record;
`BatchSender` hands aiokafka whole batches.
"""

from __future__ import annotations

import asyncio
import logging
import types
from collections.abc import Awaitable, Sequence
from typing import Any

import aiokafka
import faust
import faust.transport.consumer as _consumer
import faust.transport.drivers.aiokafka as _driver

from streams.offsets import Rewinds
from streams.partitions import partitioner_for
from streams.turns import in_turn

log = logging.getLogger(__name__)


class _AiokafkaWithFetchWait(types.ModuleType):
    """aiokafka as faust's driver sees it, with our fetch wait for its consumers."""

    def __init__(self, fetch_max_wait_ms: int) -> None:
        super().__init__("aiokafka")
        self.fetch_max_wait_ms = fetch_max_wait_ms

    def __getattr__(self, name: str) -> Any:
        return getattr(aiokafka, name)

    def AIOKafkaConsumer(self, *args: Any, **kwargs: Any) -> aiokafka.AIOKafkaConsumer:
        kwargs["fetch_max_wait_ms"] = self.fetch_max_wait_ms
        return aiokafka.AIOKafkaConsumer(*args, **kwargs)


def use_fetch_max_wait(fetch_max_wait_ms: int) -> None:
    """Every consumer faust creates in this process from now on waits at most this long."""
    _driver.aiokafka = _AiokafkaWithFetchWait(fetch_max_wait_ms)  # type: ignore[attr-defined]


async def _drain_in_batches(self: Any, fetcher: Any) -> None:
    """faust's `Consumer._drain_messages` (faust-streaming 0.15.3) with one race
    per fetch where faust has one per record.

    faust delivers each record as `wait_first(callback(message),
    suspend_flow.wait())`: four tasks made (the callback, the suspension, the
    consumer's stop and crash), an `asyncio.wait` and three cancellations per
    record, a third of a bare forwarding agent's time (bench/stream_bench.py
    profile). Here the same per-record steps (gap bookkeeping, the callback,
    the read offset) run in one task per fetch, raced the same way: a
    suspension (a rebalance) or a stop cancels the delivery where it waits,
    as faust cancels the one record's callback, and faust's `getmany` stops
    yielding records once the flow stops or the generation changes, as
    before. faust's commit every N acks is checked once a fetch, outside the
    race. The fetch itself is awaited outside the race, as faust awaits it: a
    suspended flow waits there for its resumption. Acks are untouched: a
    record is acked by whoever acked it before."""
    callback = self.callback
    getmany = self.getmany
    consumer_should_stop = self._stopped.is_set
    fetcher_should_stop = fetcher._stopped.is_set
    get_read_offset = self._read_offset.__getitem__
    set_read_offset = self._read_offset.__setitem__
    set_flag = self.diag.set_flag
    unset_flag = self.diag.unset_flag
    commit_every = self._commit_every
    acks_enabled_for = self.app.topics.acks_enabled_for
    sleep = asyncio.sleep

    async def deliver(tp: Any, message: Any, rest: Any, rewinds: Rewinds | None) -> None:
        since_yield = 0
        while True:
            offset = message.offset
            r_offset = get_read_offset(tp)
            if rewinds is not None and tp in rewinds.wanted:
                pass  # the seek after this fetch reads it again (streams/offsets.py)
            elif r_offset is None or offset >= r_offset:
                gap = offset - (r_offset or 0)
                # Watched offsets: faust may commit over a transaction's
                # marker only; any other gap is rewound (streams/offsets.py).
                listed = (
                    rewinds is None
                    or message.topic not in rewinds.topics
                    or (rewinds.markers and gap == 2)
                )
                if gap > 1 and r_offset and listed and acks_enabled_for(message.topic):
                    # Shielded: faust's gap bookkeeping yields halfway, and
                    # faust runs it outside its race, never cancelled there.
                    await asyncio.shield(self._add_gap(tp, r_offset + 1, offset))
                try:
                    await callback(message)
                except asyncio.CancelledError:
                    # faust sets the read offset of a record whose callback
                    # the race cancelled (not of one whose callback failed)
                    if rewinds is None or tp not in rewinds.wanted:
                        set_read_offset(tp, offset)
                    raise
                # (a rewind wanted meanwhile keeps the read offset where it is)
                if rewinds is None or tp not in rewinds.wanted:
                    set_read_offset(tp, offset)
            # faust lets the event loop run between records (its race
            # yields); a callback that does not wait would otherwise hold it
            # for the whole fetch.
            since_yield += 1
            if since_yield >= 100:
                since_yield = 0
                await sleep(0)
            try:
                tp, message = await rest.__anext__()
            except StopAsyncIteration:
                return

    try:
        while not (consumer_should_stop() or fetcher_should_stop()):
            # faust's commit every N acks, checked once a fetch and outside
            # the race, so that a suspension never cancels a commit
            if commit_every is not None and self._n_acked >= commit_every:
                self._n_acked = 0
                await self.commit()
            set_flag(_consumer.CONSUMER_FETCHING)
            rewinds = _REWINDS
            records = getmany(timeout=1.0)
            await self.sleep(0)
            try:
                first = None if self.should_stop else await anext(records, None)
                if first is not None:
                    tp, message = first
                    await self.wait_first(
                        deliver(tp, message, records, rewinds), self.suspend_flow.wait()
                    )
            finally:
                # A delivery the race cancelled leaves the fetch's iterator
                # at a yield (faust's getmany awaits nothing after its first).
                await records.aclose()
            unset_flag(_consumer.CONSUMER_FETCHING)
            # Not while the flow is suspended: a rebalance is under way, its
            # seek to the committed offsets replaces ours (`reassigned`), and a
            # delivery it cancelled may still set its read offset.
            if rewinds is not None and rewinds.wanted and self.flow_active:
                await _rewind(self, rewinds)
    except self.consumer_stopped_errors:
        if self.transport.app.should_stop:
            self.log.info("Broker stopped consumer, shutting down...")
            return
        raise
    except asyncio.CancelledError:
        if self.transport.app.should_stop:
            self.log.info("Consumer shutting down for user cancel.")
            return
        raise
    except Exception as exc:
        self.log.exception("Drain messages raised: %r", exc)
        raise
    finally:
        unset_flag(_consumer.CONSUMER_FETCHING)


async def _rewind(consumer: Any, rewinds: Rewinds) -> None:
    """Seek back the partitions the agents found records skipped on, between
    fetches. faust's `seek_wait` runs in the consumer's thread (aiokafka's
    consumer lives there) and sets faust's read offset to the same offset.
    A seek that fails is asked again while the partition stays assigned."""
    for tp, offset in rewinds.take().items():
        if tp not in consumer.assignment():
            continue  # a rebalance took it: its next owner starts at the committed offset
        try:
            await consumer.seek_wait({tp: offset})
        except Exception as exc:
            log.warning("could not rewind %s to %d (asked again): %r", tp, offset, exc)
            rewinds.want(tp, offset)
            continue
        rewinds.made += 1
        log.info("rewound %s to %d", tp, offset)


# The faust-streaming whose `_drain_messages` _drain_in_batches follows.
DRAIN_OF_FAUST = "0.15.3"


# The rewinds the fetch loop makes (one app a process): set with the drain,
# before any fetch, so that no fetch lists a gap of watched offsets.
_REWINDS: Rewinds | None = None


def use_batched_drain(rewinds: Rewinds | None = None) -> bool:
    """Every faust consumer in this process delivers a fetch's records in one
    task (`_drain_in_batches`) from now on, and makes the seeks `rewinds`
    asks for; whether it does. Only on the faust it follows: another keeps
    its own drain (no rewinds), and a warning says so."""
    global _REWINDS
    _REWINDS = rewinds
    if faust.__version__ != DRAIN_OF_FAUST:
        log.warning(
            "faust-streaming %s, not %s: its own drain is kept (one race per record)",
            faust.__version__,
            DRAIN_OF_FAUST,
        )
        return False
    _consumer.Consumer._drain_messages = _drain_in_batches  # type: ignore[method-assign]
    return True


class BatchSender:
    """Sends keyed records through faust's Kafka producer in a few batches:
    one aiokafka batch (up to the producer's max batch size) per partition at
    a time, each delivered with one future, where faust's `send` makes a
    future, a partitioner call and an accumulator append per record.

    `send` returns at once with one delivery awaitable for all the records:
    the batches are handed to aiokafka in the background, call after call in
    the order of the calls, so that the agent decides its next batch while
    this one is being produced (aiokafka takes a partition's next batch only
    once the one before it is on its way to the broker). Records of a
    partition keep their order, within a call and across calls.

    A record goes to the partition faust's `send` would pick: that of the
    partitioner faust gives its aiokafka producer (`producer.partitioner`)
    over the topic's partitions sorted by id. Unless `producer_partitioner`
    is set, that is aiokafka's default, worked out by `streams.partitions`
    with the same result in less time. Not for transactions: under
    exactly_once the worker sends record by record.
    """

    def __init__(self, producer: Any) -> None:
        self._producer = producer  # faust's Producer
        self._handed: asyncio.Future[None] | None = None  # the last call's batches handed over

    def send(self, topic: str, records: Sequence[tuple[bytes, bytes]]) -> Awaitable[None]:
        before, handed = self._handed, asyncio.get_running_loop().create_future()
        self._handed = handed
        return asyncio.ensure_future(self._send(topic, records, before, handed))

    async def _send(
        self,
        topic: str,
        records: Sequence[tuple[bytes, bytes]],
        before: asyncio.Future[None] | None,
        handed: asyncio.Future[None],
    ) -> None:
        async with in_turn(before, handed):  # a failed call before fails this one too
            deliveries = await self._hand_over(topic, records)
        await asyncio.gather(*deliveries)

    async def _hand_over(
        self, topic: str, records: Sequence[tuple[bytes, bytes]]
    ) -> list[asyncio.Future[Any]]:
        kafka = self._producer._ensure_producer()  # faust's own aiokafka producer
        partitions = sorted(await kafka.partitions_for(topic))
        partition_of = partitioner_for(self._producer.partitioner, partitions)
        by_partition: dict[int, list[tuple[bytes, bytes]]] = {}
        for key, value in records:
            partition = partition_of(key)
            by_partition.setdefault(partition, []).append((key, value))
        futures = []
        for partition, items in by_partition.items():
            batch = kafka.create_batch()
            for key, value in items:
                if batch.append(key=key, value=value, timestamp=None) is None:
                    futures.append(await kafka.send_batch(batch, topic, partition=partition))
                    batch = kafka.create_batch()
                    if batch.append(key=key, value=value, timestamp=None) is None:
                        raise ValueError(f"a record of {len(value)} bytes fits no batch")
            futures.append(await kafka.send_batch(batch, topic, partition=partition))
        return futures
