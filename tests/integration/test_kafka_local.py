"""Apache Kafka 4.x (KRaft) from streams/kafka_local.py, and what it does that Tansu does not.

Without Java or Maven these tests skip and say why; with CI set they fail
instead, so that CI never passes without running them.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from streams.kafka_local import KAFKA_VERSION, POM, KafkaBroker, KafkaCluster
from tests import services

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def kafka_broker() -> Iterator[str]:
    """An Apache Kafka broker of these tests' own (they check Kafka, not the allocator)."""
    with services.broker("kafka") as bootstrap:
        yield bootstrap


def create_topic(bootstrap: str, partitions: int, replication: int = 1) -> str:
    topic = f"kafka-local-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(topic, partitions, replication)])
    futures[topic].result(timeout=30)
    return topic


def produce(bootstrap: str, topic: str, values: list[str], **config: Any) -> None:
    """Produces `values` (keyed by themselves, so they spread over partitions); all acknowledged."""
    failures: list[KafkaError] = []

    def delivered(err: KafkaError | None, _msg: Any) -> None:
        if err is not None:
            failures.append(err)

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, **config})
    for value in values:
        producer.produce(topic, value=value.encode(), key=value.encode(), on_delivery=delivered)
    assert producer.flush(60) == 0, "records left undelivered"
    assert failures == []


def read_all(
    bootstrap: str, topic: str, partitions: int, expect: int, **config: Any
) -> dict[int, list[str]]:
    """Reads the topic from its start without a consumer group, until `expect` records."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"unused-{uuid.uuid4().hex[:8]}",  # assign() joins no group
            "enable.auto.commit": False,
            **config,
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    seen: dict[int, list[str]] = {p: [] for p in range(partitions)}
    deadline = time.monotonic() + 30
    try:
        while sum(map(len, seen.values())) < expect and time.monotonic() < deadline:
            for msg in consumer.consume(100, timeout=0.5):
                assert msg.error() is None, msg.error()
                seen[msg.partition()].append(msg.value().decode())
        # Anything beyond `expect` would be a duplicate or a leak (aborted records).
        for msg in consumer.consume(100, timeout=1.0):
            if msg.error() is None:
                seen[msg.partition()].append(msg.value().decode())
    finally:
        consumer.close()
    return seen


def high_watermarks(bootstrap: str, topic: str, partitions: int) -> list[int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused"})
    try:
        return [
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in range(partitions)
        ]
    finally:
        consumer.close()


def test_pom_default_is_the_version_used() -> None:
    """kafka/pom.xml's default version is the one kafka_jars() asks Maven for."""
    found = re.search(r"<kafka.version>([^<]+)</kafka.version>", Path(POM).read_text())
    assert found is not None and found.group(1) == KAFKA_VERSION


def test_produce_read_back_and_exact_high_watermark(kafka_broker: str) -> None:
    topic = create_topic(kafka_broker, partitions=4)
    values = [f"record-{i}" for i in range(100)]
    # Three rounds, so that each partition holds several batches: the case
    # where Tansu's high watermark reads low (broker.md).
    for start, end in ((0, 30), (30, 60), (60, 100)):
        produce(kafka_broker, topic, values[start:end])

    seen = read_all(kafka_broker, topic, 4, expect=100)

    assert sorted(v for vs in seen.values() for v in vs) == sorted(values)
    assert all(seen.values()), f"keys should spread over all 4 partitions: {seen}"
    # Kafka's semantics: the high watermark is the last offset + 1, exactly.
    assert high_watermarks(kafka_broker, topic, 4) == [len(seen[p]) for p in range(4)]


def test_transactions_commit_and_abort(kafka_broker: str) -> None:
    """Kafka has transactions (faust's exactly_once needs them); Tansu 0.6.0 has not."""
    topic = create_topic(kafka_broker, partitions=1)
    producer = Producer(
        {"bootstrap.servers": kafka_broker, "transactional.id": f"tx-{uuid.uuid4().hex[:8]}"}
    )
    producer.init_transactions(30)
    producer.begin_transaction()
    for i in range(10):
        producer.produce(topic, value=f"committed-{i}".encode())
    producer.commit_transaction(30)
    producer.begin_transaction()
    for i in range(5):
        producer.produce(topic, value=f"aborted-{i}".encode())
    producer.flush(30)
    producer.abort_transaction(30)

    seen = read_all(kafka_broker, topic, 1, expect=10, **{"isolation.level": "read_committed"})

    assert seen[0] == [f"committed-{i}" for i in range(10)]
    # 10 + 5 records and one commit/abort marker after each transaction.
    assert high_watermarks(kafka_broker, topic, 1) == [17]


def test_three_node_cluster_survives_a_killed_node() -> None:
    services.require_local_kafka()
    with KafkaCluster(3) as cluster:
        print(f"\n3-node KRaft cluster ready in {cluster.startup_seconds:.1f}s")
        topic = create_topic(cluster.bootstrap, partitions=4, replication=3)
        produce(cluster.bootstrap, topic, [f"before-{i}" for i in range(50)], acks="all")

        # Node 1 is also a controller (and perhaps the active one): two of
        # three voters keep the quorum, two of three replicas keep min ISR 2.
        cluster.nodes[0].kill()
        alive = ",".join(node.bootstrap for node in cluster.nodes[1:])
        produce(alive, topic, [f"after-{i}" for i in range(50)], acks="all")
        seen = read_all(alive, topic, 4, expect=100)
        assert sum(map(len, seen.values())) == 100

        cluster.nodes[0].restart()
        wait_for_full_isrs(cluster.bootstrap, topic)
        assert high_watermarks(cluster.bootstrap, topic, 4) == [len(seen[p]) for p in range(4)]


def wait_for_full_isrs(bootstrap: str, topic: str, replicas: int = 3) -> None:
    """Until every partition has all its replicas in sync again (a restarted node caught up)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    deadline = time.monotonic() + 60
    while True:
        parts = admin.list_topics(topic, timeout=10).topics[topic].partitions.values()
        if all(len(part.isrs) == replicas for part in parts):
            return
        assert time.monotonic() < deadline, f"ISRs of {topic} not full again: {list(parts)}"
        time.sleep(0.2)


def test_a_killed_broker_restarts_with_its_data() -> None:
    services.require_local_kafka()
    with KafkaBroker() as broker:
        topic = create_topic(broker.bootstrap, partitions=1)
        produce(broker.bootstrap, topic, ["kept"], acks="all")
        port = broker.port
        broker.kill()
        assert not broker.running
        broker.restart()
        assert broker.port == port
        assert read_all(broker.bootstrap, topic, 1, expect=1) == {0: ["kept"]}
