"""Three Apache Kafka brokers, replication 3, min.insync.replicas 2: the leader of
a scored-leads partition is SIGKILLed mid-stream and restarted. Nothing is lost,
and duplicates stay within at_least_once's promise (identical copies)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from confluent_kafka.admin import AdminClient

from streams.kafka_local import KafkaCluster
from streams.samples import sample_leads
from tests import services
from tests.integration.conftest import running_pipeline
from tests.integration.expect import assert_counters_match, assert_each_once
from tests.integration.pipeline import Pipeline

LEADS = 3000


def leader_of(bootstrap: str, topic: str, partition: int) -> int:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    return int(admin.list_topics(topic, timeout=10).topics[topic].partitions[partition].leader)


async def test_a_killed_partition_leader_loses_nothing(redis_url: str, tmp_path: Path) -> None:
    services.require_local_kafka()
    with KafkaCluster(3) as cluster:
        replicated = {"ALLOCATOR_TOPIC_REPLICATION_FACTOR": "3"}
        db = f"sqlite+aiosqlite:///{tmp_path}/allocator.db"
        async with running_pipeline(
            cluster.bootstrap, db, redis_url, tmp_path, replicated
        ) as pipeline:
            await _kill_a_leader_mid_stream(pipeline, cluster, redis_url)


async def _kill_a_leader_mid_stream(
    pipeline: Pipeline, cluster: KafkaCluster, redis_url: str
) -> None:
    settings = pipeline.settings
    pipeline.start_worker()
    rows = sample_leads(LEADS, seed=61)
    producer = threading.Thread(target=pipeline.trickle, args=(rows, 30, 0.5), daemon=True)
    producer.start()
    pipeline.read(settings.topic_allocations, 300, 90)  # mid-stream

    leader = leader_of(cluster.bootstrap, settings.topic_scored_leads, 0)
    node = next(n for n in cluster.nodes if n.node_id == leader)
    node.kill()
    await asyncio.sleep(5)
    node.restart()
    producer.join()

    wanted = {r["event_id"] for r in rows}
    every = pipeline.every_copy(wanted, 180)
    duplicates = assert_each_once(every, wanted)
    assert pipeline.read(settings.topic_dlq, 1, 1) == []
    await assert_counters_match(
        redis_url, pipeline.prefix, [v[0] for v in every.values()], complete=True
    )
    print(
        f"leader {leader} of partition 0 killed and restarted: {len(wanted)} of {LEADS} "
        f"allocated, {duplicates} redelivered copies, all identical"
    )
