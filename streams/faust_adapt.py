"""Adapts faust where it has no setting of its own: its consumer fetch wait and
batched producing here; its acks in streams/commits.py (PinnedTopic).

faust-streaming 0.15 creates its Kafka consumers with a hard-coded
`fetch_max_wait_ms=1500` (faust/transport/drivers/aiokafka.py). Kafka answers a
fetch as soon as data arrives, so there the wait only bounds idle polling; but
the embedded Tansu broker answers a long-poll fetch only when the wait runs
out, which put ~0.7-1.7 s into every record's end-to-end latency (topics.md).
`use_fetch_max_wait` makes the wait ALLOCATOR_CONSUMER_FETCH_MAX_WAIT_MS.

faust sends record by record; `BatchSender` hands aiokafka whole batches.
"""

from __future__ import annotations

import asyncio
import types
from collections.abc import Awaitable, Sequence
from typing import Any

import aiokafka
import faust.transport.drivers.aiokafka as _driver

from streams.turns import in_turn


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

    A record goes to the partition faust's `send` would pick: the
    partitioner faust gives its aiokafka producer (`producer.partitioner`,
    aiokafka's default unless `producer_partitioner` is set) over the
    topic's partitions as aiokafka lists them. Not for transactions: under
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
        partitioner = self._producer.partitioner
        partitions = list(await kafka.partitions_for(topic))
        by_partition: dict[int, list[tuple[bytes, bytes]]] = {}
        for key, value in records:
            partition = partitioner(key, partitions, partitions)
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
