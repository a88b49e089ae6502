"""`allocator demo`: the whole pipeline on embedded defaults, then a summary.

Starts the embedded broker, uses SQLite and the local Redis (or a redis-server
of its own, or in-memory counters when there is no Redis at all), loads the
sample clients and resources, runs a worker, produces sample patterns and
leads, reads the allocations back and prints what was allocated. Stops
everything it started. What it starts comes from streams/local.py, what it
produces from streams/samples.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import sys
import tempfile
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import redis
from aiokafka import AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.table import Table

from allocator.channels import ALLOCATED, DEFERRED, EXHAUSTED, NO_RESOURCE
from allocator.config import Settings
from allocator.running import run_to_end
from allocator.tiers import DISPLAY_ORDER
from streams.local import (
    SHORT_GROUP_TIMINGS,
    EmbeddedBroker,
    Worker,
    forget_keys,
    free_port,
    own_redis_server,
    prepare,
    read_topic,
    start_worker,
)
from streams.samples import BAD_RECORDS, sample_leads, sample_patterns

# A pipe or CI log gets a fixed width wide enough for the summary table.
console = Console(width=None if sys.stdout.isatty() else 110)


def _redis_answers(url: str) -> bool:
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
        with own_redis_server(port, str(workdir)) as own:
            yield own, f"an embedded redis-server on port {port}"
        return
    yield "memory://", "in-memory counters (no Redis found; fine for one worker)"


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


def scrape_deferred(worker: Worker) -> Counter[tuple[str, str]]:
    """Deferred sends per (tier, channel), read from the worker's /metrics."""
    deferred: Counter[tuple[str, str]] = Counter()
    for family in text_string_to_metric_families(worker.metrics()):
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


def feedback_for(allocations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Two send-events a dispatcher could report: a reply from a lead with sends
    still to come (they get cancelled), and a throttled sender (it cools)."""
    events: list[dict[str, Any]] = []
    for a in allocations:
        sends = sorted(
            (c for c in a["channels"] if c["status"] == "allocated"), key=lambda c: c["send_at"]
        )
        if len(sends) >= 2 and not events:
            events.append(
                {
                    "event_id": f"demo-reply-{a['event_id']}",
                    "kind": "replied",
                    "client_id": a["client_id"],
                    "lead_id": a["lead_id"],
                    "occurred_at": sends[0]["send_at"],  # replied to the first touch
                }
            )
        elif sends and events and len(events) == 1 and a["client_id"] == events[0]["client_id"]:
            first = sends[0]
            retry = datetime.fromisoformat(first["send_at"]) + timedelta(days=1)
            events.append(
                {
                    "event_id": f"demo-throttle-{a['event_id']}",
                    "kind": "throttled",
                    "client_id": a["client_id"],
                    "lead_id": a["lead_id"],
                    "allocation_id": a["allocation_id"],
                    "channel": first["channel"],
                    "resource_id": first["resource_id"],
                    "occurred_at": first["send_at"],
                    "retry_after": retry.isoformat(),
                }
            )
            break
    return events


async def _produce_feedback(bootstrap: str, topic: str, events: list[dict[str, Any]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        for event in events:
            await producer.send(
                topic, key=event["lead_id"].encode(), value=json.dumps(event).encode()
            )
        await producer.flush()
    finally:
        await producer.stop()


def show_feedback(
    events: list[dict[str, Any]],
    cancellations: list[dict[str, Any]],
    health: list[dict[str, Any]],
) -> None:
    for event in events:
        console.print(
            f"send-event: {event['kind']} ({event['client_id']}/{event['lead_id']}"
            + (f", {event['resource_id']}" if "resource_id" in event else "")
            + f" at {event['occurred_at']})"
        )
    for c in cancellations:
        console.print(
            f"  cancelled: {c['lead_id']}'s {c['channel']} send at {c['send_at']} "
            f"({c['reason']}; count given back)"
        )
    for h in health:
        console.print(
            f"  health: {h['resource_id']} {h['state']} until {h['until']} ({h['reason']})"
        )


def run_demo(lead_count: int = 300) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="allocator-demo-"))
    run = uuid.uuid4().hex[:8]
    worker: Worker | None = None
    try:
        with EmbeddedBroker() as broker, demo_redis(workdir) as (redis_url, redis_note):
            env = {
                **os.environ,
                **SHORT_GROUP_TIMINGS,
                "ALLOCATOR_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
                "ALLOCATOR_DATABASE_URL": f"sqlite+aiosqlite:///{workdir}/allocator.db",
                "ALLOCATOR_REDIS_URL": redis_url,
                "ALLOCATOR_QUOTA_KEY_PREFIX": f"demo:{run}:",
                "ALLOCATOR_APP_ID": f"allocator-demo-{run}",
                "ALLOCATOR_DATA_DIR": str(workdir),  # removed with it
            }
            console.print(f"broker: embedded Tansu at {broker.bootstrap}")
            console.print(f"quota counters: {redis_note}")
            console.print(f"database: SQLite in {workdir}")
            settings = Settings.from_environment(env)
            clients, resources = run_to_end(prepare(settings))
            console.print(f"loaded {clients} sample clients and {resources} resources")
            console.print("starting the worker (joining its group takes a few seconds)...")
            worker = start_worker(env, workdir / "worker.log")
            leads = sample_leads(lead_count)
            bad = sum(1 for i in range(lead_count) if i % 60 == 0)
            run_to_end(_produce(broker.bootstrap, settings, leads))
            allocations = run_to_end(
                read_topic(broker.bootstrap, settings.topic_allocations, lead_count, 120)
            )
            dead = run_to_end(read_topic(broker.bootstrap, settings.topic_dlq, bad, 30))
            decided = [json.loads(r.value) for r in allocations]
            summarise(decided, [json.loads(r.value) for r in dead], scrape_deferred(worker))
            # The dispatchers' side of the loop: a reply and a throttled sender.
            events = feedback_for(decided)
            run_to_end(_produce_feedback(broker.bootstrap, settings.topic_send_events, events))
            cancelled = run_to_end(
                read_topic(broker.bootstrap, settings.topic_lead_cancellations, 1, 30)
            )
            cooling = run_to_end(
                read_topic(broker.bootstrap, settings.topic_resource_health, 1, 30)
            )
            show_feedback(
                events,
                [json.loads(r.value) for r in cancelled],
                [json.loads(r.value) for r in cooling],
            )
            worker.stop()
            worker = None
            if redis_url.startswith("redis://"):
                forget_keys(redis_url, f"demo:{run}:")
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
            worker.stop()
