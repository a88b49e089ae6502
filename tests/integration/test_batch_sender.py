"""The worker's batched producing (streams/faust_adapt.py BatchSender), on a
real broker: every record lands in the partition aiokafka's own send would
put it in, and each partition keeps the order of the calls and of the
records within them."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.partitioner import DefaultPartitioner

from streams.faust_adapt import BatchSender


class _FaustProducer:
    """What BatchSender asks of faust's Producer: its aiokafka producer and the
    partitioner faust handed that producer."""

    def __init__(self, kafka: AIOKafkaProducer) -> None:
        self.kafka = kafka
        self.partitioner = DefaultPartitioner()

    def _ensure_producer(self) -> AIOKafkaProducer:
        return self.kafka


async def test_batches_keep_partitions_and_order(broker_bootstrap: str) -> None:
    topic = f"batches-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=broker_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=4, replication_factor=1)])
    finally:
        await admin.close()
    kafka = AIOKafkaProducer(bootstrap_servers=broker_bootstrap, max_batch_size=4096)
    await kafka.start()
    try:
        sender = BatchSender(_FaustProducer(kafka))
        calls = [
            [
                (f"lead-{(7 * n + i) % 50}".encode(), f"{n}:{i}:{'x' * 300}".encode())
                for i in range(120)
            ]
            for n in range(5)
        ]
        deliveries = [sender.send(topic, records) for records in calls]  # all in flight at once
        await asyncio.wait_for(asyncio.gather(*deliveries), 60)
        await kafka.partitions_for(topic)
        expected: dict[int, list[bytes]] = {}
        for records in calls:
            for key, value in records:
                # aiokafka's own choice for a record sent one by one
                partition = kafka._partition(topic, None, key, value, key, value)
                expected.setdefault(partition, []).append(value)
    finally:
        await kafka.stop()
    assert len(expected) > 1
    consumer = AIOKafkaConsumer(bootstrap_servers=broker_bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(4)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        got: dict[int, list[bytes]] = {}
        want = sum(len(r) for r in calls)
        seen = 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while seen < want and loop.time() < deadline:
            fetched: dict[Any, list[Any]] = await consumer.getmany(timeout_ms=500)
            for tp, messages in fetched.items():
                got.setdefault(tp.partition, []).extend(m.value for m in messages)
                seen += len(messages)
    finally:
        await consumer.stop()
    assert got == expected
