"""`allocator demo`: the whole pipeline on embedded defaults, then a summary.

Starts the embedded broker, uses SQLite and the local Redis (or a redis-server
of its own, or in-memory counters when there is no Redis at all), loads the
sample clients and resources, runs a worker, produces sample patterns and
leads, reads the allocations back and prints what was allocated. Stops
everything it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from importlib.resources import files
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from rich.console import Console
from rich.table import Table

from allocator.channels import ALLOCATED, DEFERRED, EXHAUSTED, NO_RESOURCE
from allocator.config import Settings
from allocator.store import Database
from allocator.store.loaders import load_clients, load_resources
from allocator.tiers import DISPLAY_ORDER
from streams.broker import EmbeddedBroker, free_port, stop_process
from streams.topics import ensure_topics

# A pipe or CI log gets a fixed width wide enough for the summary table.
console = Console(width=None if sys.stdout.isatty() else 110)

TEST_BROKER_TIMINGS = {
    "ALLOCATOR_BROKER_REBALANCE_TIMEOUT": "5",
    "ALLOCATOR_BROKER_SESSION_TIMEOUT": "6",
    "ALLOCATOR_BROKER_HEARTBEAT_INTERVAL": "1",
    "ALLOCATOR_BROKER_COMMIT_INTERVAL": "0.5",
}


def _redis_answers(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
    except (redis.exceptions.RedisError, OSError):
        return False


@contextlib.contextmanager
def demo_redis(workdir: Path) -> Iterator[tuple[str, str]]:
    """(url, description): local Redis, else a redis-server of our own, else memory."""
    url = os.environ.get("ALLOCATOR_REDIS_URL", "redis://localhost:6379/0")
    if _redis_answers(url):
        yield url, f"Redis at {url} (keys under a demo prefix, removed afterwards)"
        return
    if shutil.which("redis-server"):
        port = free_port()
        proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        own = f"redis://127.0.0.1:{port}/0"
        try:
            deadline = time.monotonic() + 10
            while not _redis_answers(own) and time.monotonic() < deadline:
                time.sleep(0.1)
            yield own, f"an embedded redis-server on port {port}"
        finally:
            proc.terminate()
            proc.wait(10)
        return
    yield "memory://", "in-memory counters (no Redis found; fine for one worker)"


def sample_patterns() -> list[dict[str, Any]]:
    stamp = "2026-11-01T00:00:00+00:00"
    return [
        {
            "client_id": "acme",
            "pattern_type": "how",
            "confidence": 0.82,
            "updated_at": stamp,
            "winning_sequence": ["linkedin", "email", "voice", "sms", "direct_mail"],
        },
        {
            "client_id": "acme",
            "pattern_type": "when",
            "channel": "linkedin",
            "optimal_day": 1,
            "optimal_hour": 14,
            "confidence": 0.77,
            "updated_at": stamp,
        },
        {
            "client_id": "globex",
            "pattern_type": "when",
            "channel": "email",
            "optimal_day": 2,
            "optimal_hour": 8,
            "confidence": 0.9,
            "updated_at": stamp,
        },
        {
            "client_id": "globex",
            "pattern_type": "how",
            "confidence": 0.55,
            "updated_at": stamp,
            "winning_sequence": ["voice", "email"],
        },  # too unsure: default order
    ]


def sample_leads(count: int, seed: int = 2026) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    start = datetime(2026, 11, 26, 13, 0, tzinfo=UTC)
    leads = []
    for i in range(count):
        client = rng.choices(["acme", "globex", "initech", "umbrella"], [60, 25, 13, 2])[0]
        lead: dict[str, Any] = {
            "event_id": f"demo-{i:05d}",
            "lead_id": f"lead-{i:05d}",
            "client_id": client,
            "als_score": rng.randint(0, 100),
            "scored_at": (start + timedelta(minutes=2 * i)).isoformat(),
        }
        if rng.random() < 0.1:
            lead["timezone"] = rng.choice(["America/Los_Angeles", "Asia/Tokyo", "Europe/London"])
        leads.append(lead)
    return leads


BAD_RECORDS = [
    b"{not json",
    b'{"lead_id": "x", "client_id": "acme", "als_score": "72", '
    b'"scored_at": "2026-11-26T10:00:00Z"}',
    b'{"lead_id": "y", "client_id": "acme", "als_score": 72.5, '
    b'"scored_at": "2026-11-26T10:00:00Z"}',
    b'{"lead_id": "z", "client_id": "acme", "als_score": 50, "scored_at": "2026-11-26"}',
    b"[1, 2, 3]",
]


async def _produce(bootstrap: str, settings: Settings, leads: list[dict[str, Any]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        for pattern in sample_patterns():
            await producer.send(
                settings.topic_conversion_patterns,
                key=pattern["client_id"].encode(),
                value=json.dumps(pattern).encode(),
            )
        await producer.flush()
        await asyncio.sleep(3)  # patterns reach the leads decided after them within seconds
        for index, lead in enumerate(leads):
            await producer.send(
                settings.topic_scored_leads,
                key=lead["lead_id"].encode(),
                value=json.dumps(lead).encode(),
            )
            if index % 60 == 0:
                bad = BAD_RECORDS[(index // 60) % len(BAD_RECORDS)]
                await producer.send(settings.topic_scored_leads, key=b"bad", value=bad)
        await producer.flush()
    finally:
        await producer.stop()


async def read_topic(bootstrap: str, topic: str, want: int, seconds: float) -> list[bytes]:
    """Read `want` records of `topic` from the start (no group, nothing committed)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        values: list[bytes] = []
        deadline = time.monotonic() + seconds
        while len(values) < want and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                values.extend(r.value for r in records if r.value is not None)
        return values
    finally:
        await consumer.stop()


def wait_ready(port: int, worker: subprocess.Popen[bytes], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise RuntimeError("the worker exited before it was ready")
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=1) as r,
        ):
            if r.status == 200:
                return
        time.sleep(0.5)
    raise RuntimeError(f"the worker was not ready within {timeout:.0f}s")


def scrape_deferred(port: int) -> Counter[tuple[str, str]]:
    """Deferred sends per (tier, channel), read from the worker's /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    deferred: Counter[tuple[str, str]] = Counter()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == "allocator_channel_allocations_total" and (
                labels.get("status") == DEFERRED
            ):
                deferred[(labels["tier"], labels["channel"])] += int(sample.value)
    return deferred


def summarise(
    allocations: list[dict[str, Any]],
    dead: list[dict[str, Any]],
    deferred: Counter[tuple[str, str]],
) -> None:
    counts: Counter[tuple[str, str, str]] = Counter()
    tiers: Counter[str] = Counter()
    for allocation in allocations:
        tiers[allocation["als_tier"]] += 1
        for entry in allocation["channels"]:
            counts[(allocation["als_tier"], entry["channel"], entry["status"])] += 1
    table = Table(title=f"{len(allocations)} leads allocated")
    # The records' statuses (allocated includes deferred), with the deferred
    # count from the worker's metrics.
    for column in (
        "tier",
        "leads",
        "channel",
        ALLOCATED,
        f"of which {DEFERRED}",
        EXHAUSTED,
        NO_RESOURCE.replace("_", " "),
    ):
        table.add_column(column, justify="left" if column in ("tier", "channel") else "right")
    for tier in (t.value for t in DISPLAY_ORDER):
        channels = sorted({c for (t, c, _) in counts if t == tier})
        if not channels:
            table.add_row(tier, str(tiers[tier]), "-", "", "", "", "")
        for i, channel in enumerate(channels):
            table.add_row(
                tier if i == 0 else "",
                str(tiers[tier]) if i == 0 else "",
                channel,
                str(counts[(tier, channel, ALLOCATED)]),
                str(deferred[(tier, channel)]),
                str(counts[(tier, channel, EXHAUSTED)]),
                str(counts[(tier, channel, NO_RESOURCE)]),
            )
    console.print(table)
    codes = Counter(d["error_code"] for d in dead)
    console.print(
        f"dead letters: {len(dead)} " + ", ".join(f"{c}={n}" for c, n in sorted(codes.items()))
    )


def run_demo(lead_count: int = 300) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="allocator-demo-"))
    run = uuid.uuid4().hex[:8]
    worker: subprocess.Popen[bytes] | None = None
    try:
        with EmbeddedBroker() as broker, demo_redis(workdir) as (redis_url, redis_note):
            env = {
                **os.environ,
                **TEST_BROKER_TIMINGS,
                "ALLOCATOR_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
                "ALLOCATOR_DATABASE_URL": f"sqlite+aiosqlite:///{workdir}/allocator.db",
                "ALLOCATOR_REDIS_URL": redis_url,
                "ALLOCATOR_QUOTA_KEY_PREFIX": f"demo:{run}:",
                "ALLOCATOR_APP_ID": f"allocator-demo-{run}",
            }
            console.print(f"broker: embedded Tansu at {broker.bootstrap}")
            console.print(f"quota counters: {redis_note}")
            console.print(f"database: SQLite in {workdir}")
            settings = Settings.from_environment(env)
            asyncio.run(_prepare(settings))
            port = free_port()
            log = open(workdir / "worker.log", "wb")  # noqa: SIM115  closed with the worker
            worker = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "streams.cli",
                    "worker",
                    "-l",
                    "warn",
                    "--web-port",
                    str(port),
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            console.print("starting the worker (joining its group takes a few seconds)...")
            wait_ready(port, worker)
            leads = sample_leads(lead_count)
            bad = sum(1 for i in range(lead_count) if i % 60 == 0)
            asyncio.run(_produce(broker.bootstrap, settings, leads))
            allocations = asyncio.run(
                read_topic(broker.bootstrap, settings.topic_allocations, lead_count, 120)
            )
            dead = asyncio.run(read_topic(broker.bootstrap, settings.topic_dlq, bad, 30))
            deferred = scrape_deferred(port)
            summarise([json.loads(v) for v in allocations], [json.loads(v) for v in dead], deferred)
            stop_process(worker)
            worker = None
            if redis_url.startswith("redis://"):
                _forget_keys(redis_url, f"demo:{run}:")
            if len(allocations) < lead_count:
                console.print(
                    f"[red]only {len(allocations)} of {lead_count} allocations; "
                    f"see {workdir / 'worker.log'}[/red]"
                )
                return 1
        shutil.rmtree(workdir, ignore_errors=True)
        return 0
    finally:
        if worker is not None:
            stop_process(worker)


async def _prepare(settings: Settings) -> None:
    db = Database(settings.database_url)
    await db.create_schema()
    samples = files("streams.samples")
    clients = await load_clients(db, str(samples.joinpath("clients.jsonl")))
    resources = await load_resources(db, str(samples.joinpath("resources.jsonl")))
    await db.close()
    console.print(f"loaded {clients} sample clients and {resources} resources")
    await ensure_topics(settings)


def _forget_keys(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    for key in client.scan_iter(match=f"{prefix}*", count=1000):
        client.delete(key)
