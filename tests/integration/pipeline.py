"""A running allocator for end-to-end tests: its own topics, group, database and
Redis prefix on the shared broker; workers as real `allocator worker` processes
(streams/local.py); an independent client (confluent-kafka / librdkafka) to
produce and read.

The reader here is not streams.local.read_topic on purpose: the worker speaks
aiokafka, so what the tests read back goes through another Kafka client."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

from allocator.config import Settings
from streams.local import ALLOCATOR_COMMAND, SHORT_GROUP_TIMINGS, Worker, start_worker


@dataclass
class Pipeline:
    bootstrap: str
    database_url: str
    redis_url: str
    workdir: Path
    partitions: int = 4
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    workers: list[Worker] = field(default_factory=list)
    # The short group timings of local runs; {} keeps faust's defaults.
    timings: dict[str, str] = field(default_factory=lambda: dict(SHORT_GROUP_TIMINGS))
    # More ALLOCATOR_* settings for this test's workers.
    extra_env: dict[str, str] = field(default_factory=dict)
    # More librdkafka settings for the independent client's producer and
    # consumer (security.protocol, sasl.*, ssl.ca.location on a secured broker).
    client_config: dict[str, str] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            **self.timings,
            "ALLOCATOR_KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "ALLOCATOR_DATABASE_URL": self.database_url,
            "ALLOCATOR_REDIS_URL": self.redis_url,
            "ALLOCATOR_QUOTA_KEY_PREFIX": self.prefix,
            "ALLOCATOR_APP_ID": f"alloc-{self.run}",
            "ALLOCATOR_TOPIC_SCORED_LEADS": f"leads-{self.run}",
            "ALLOCATOR_TOPIC_CONVERSION_PATTERNS": f"patterns-{self.run}",
            "ALLOCATOR_TOPIC_ALLOCATIONS": f"allocations-{self.run}",
            "ALLOCATOR_TOPIC_DLQ": f"dlq-{self.run}",
            # Every topic of its own: a shared one would carry other tests'
            # records (send-events naming sends this run never reserved).
            "ALLOCATOR_TOPIC_SEND_EVENTS": f"send-events-{self.run}",
            "ALLOCATOR_TOPIC_LEAD_CANCELLATIONS": f"cancellations-{self.run}",
            "ALLOCATOR_TOPIC_RESOURCE_HEALTH": f"health-{self.run}",
            # faust's data folder in the test's own folder, not ~/.cache
            "ALLOCATOR_DATA_DIR": str(self.workdir),
            "ALLOCATOR_TOPIC_PARTITIONS": str(self.partitions),
            "ALLOCATOR_RESOURCE_CACHE_SECONDS": "1",
            **self.extra_env,
        }

    @property
    def prefix(self) -> str:
        return f"test:{self.run}:"

    @property
    def settings(self) -> Settings:
        return Settings.from_environment(self.env)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*ALLOCATOR_COMMAND, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def start_worker(self, wait: bool = True) -> Worker:
        log = self.workdir / f"worker-{len(self.workers)}.log"
        worker = start_worker(self.env, log, level="info", wait=False)
        self.workers.append(worker)  # stopped with the pipeline even if it never gets ready
        if wait:
            worker.wait_ready()
        return worker

    def wait_ready(self, worker: Worker, timeout: float = 90) -> None:
        worker.wait_ready(timeout)

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()

    # --- the independent client ---------------------------------------------

    def produce(
        self,
        topic: str,
        records: list[tuple[bytes | None, bytes | None]],
        partition: int | None = None,
    ) -> None:
        producer = Producer(
            {"bootstrap.servers": self.bootstrap, "linger.ms": 5, **self.client_config}
        )
        for key, value in records:
            if partition is None:
                producer.produce(topic, key=key, value=value)
            else:
                producer.produce(topic, key=key, value=value, partition=partition)
            producer.poll(0)
        assert producer.flush(30) == 0

    def produce_json(self, topic: str, rows: list[dict[str, Any]], key: str) -> None:
        self.produce(topic, [(str(r[key]).encode(), json.dumps(r).encode()) for r in rows])

    def _consumer(self, group_id: str, **config: str) -> Consumer:
        """The independent client's consumer: it commits nothing, and joins no
        group unless it subscribes (these only assign or ask)."""
        return Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": group_id,
                "enable.auto.commit": False,
                **self.client_config,
                **config,
            }
        )

    def read(
        self, topic: str, want: int, timeout: float = 60, committed_only: bool = False
    ) -> list[tuple[bytes | None, bytes]]:
        """At least `want` records of `topic` from the start, read without a group;
        `committed_only`: as a read_committed consumer sees them (Kafka transactions)."""
        consumer = self._consumer(
            f"r-{uuid.uuid4()}",
            **{
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed" if committed_only else "read_uncommitted",
            },
        )
        try:
            meta = consumer.list_topics(topic, timeout=10)
            partitions = meta.topics[topic].partitions
            consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
            out: list[tuple[bytes | None, bytes]] = []
            deadline = time.monotonic() + timeout
            while len(out) < want and time.monotonic() < deadline:
                for message in consumer.consume(500, timeout=0.5):
                    if message.error() is None and message.value() is not None:
                        out.append((message.key(), message.value()))
            return out
        finally:
            consumer.close()

    def committed(self, topic: str) -> dict[int, int]:
        """The workers' group's committed offset of each partition of `topic`
        (-1001, librdkafka's OFFSET_INVALID, where it has committed none)."""
        consumer = self._consumer(self.settings.app_id)
        try:
            partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
            asked = [TopicPartition(topic, p) for p in partitions]
            return {tp.partition: tp.offset for tp in consumer.committed(asked, timeout=10)}
        finally:
            consumer.close()

    def locate(self, topic: str, event_ids: set[str]) -> dict[str, tuple[int, int]]:
        """Where the records with these event_ids sit in `topic`: (partition, offset)."""
        consumer = self._consumer(f"r-{uuid.uuid4()}")
        try:
            partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
            consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
            found: dict[str, tuple[int, int]] = {}
            idle = 0
            while idle < 6 and len(found) < len(event_ids):
                messages = consumer.consume(500, timeout=0.5)
                idle = 0 if messages else idle + 1
                for m in messages:
                    if m.error() is None and m.value() is not None:
                        event_id = json.loads(m.value()).get("event_id")
                        if event_id in event_ids:
                            found[event_id] = (m.partition(), m.offset())
            return found
        finally:
            consumer.close()

    def worker_lines(self, needle: str) -> list[str]:
        """Lines of every worker's log that contain `needle`."""
        return [
            f"{worker.log.name}: {line}"
            for worker in self.workers
            if worker.log.exists()
            for line in worker.log.read_text(errors="replace").splitlines()
            if needle in line
        ]

    def trickle(self, rows: list[dict[str, Any]], chunks: int, pause: float) -> None:
        """Produce leads in `chunks`, `pause` seconds apart, so that faults land mid-stream."""
        size = max(len(rows) // chunks, 1)
        for start in range(0, len(rows), size):
            self.produce_json(
                self.settings.topic_scored_leads, rows[start : start + size], "lead_id"
            )
            time.sleep(pause)

    def every_copy(self, wanted: set[str], seconds: float) -> dict[str, list[dict[str, Any]]]:
        """Every allocation record by event_id, read again until all of `wanted`
        are there (or `seconds` pass)."""
        deadline = time.monotonic() + seconds
        copies: dict[str, list[dict[str, Any]]] = {}
        while time.monotonic() < deadline and not wanted <= copies.keys():
            records = self.read_json(self.settings.topic_allocations, 10**7, 5)
            copies = defaultdict(list)
            for record in records:
                copies[record["event_id"]].append(record)
        return dict(copies)

    def read_json(
        self, topic: str, want: int, timeout: float = 60, committed_only: bool = False
    ) -> list[dict[str, Any]]:
        return [json.loads(v) for _, v in self.read(topic, want, timeout, committed_only)]
