"""Two workers, a SIGKILLed worker, and a Redis outage: nothing lost, nothing counted twice."""

from __future__ import annotations

import asyncio
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from redis.asyncio import Redis
from sqlalchemy.engine import make_url

from allocator.store import Database
from allocator.store.database import patterns_for
from streams.local import own_redis_server
from streams.samples import sample_leads
from tests.integration.conftest import _admin, running_pipeline
from tests.integration.expect import (
    assert_counters_match,
    by_event,
    identical_apart_from_decided_at,
)
from tests.integration.pipeline import Pipeline
from tests.integration.test_stream import await_patterns

SAVE_PATTERN_RETRIES = 'allocator_transient_failures_total{operation="save_pattern"'


async def test_two_workers_share_partitions_and_see_every_pattern(
    sqlite_pipeline: Pipeline,
) -> None:
    pipeline = sqlite_pipeline
    settings = pipeline.settings
    first, second = pipeline.start_worker(wait=False), pipeline.start_worker(wait=False)
    pipeline.wait_ready(first)
    pipeline.wait_ready(second)
    leads_topic = settings.topic_scored_leads

    def lead_partitions(worker: Any) -> set[str]:
        return {a for a in worker.health()["assigned"] if a.startswith(leads_topic + ":")}

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # wait out the rebalance that the second join causes
        mine, theirs = lead_partitions(first), lead_partitions(second)
        if mine and theirs and len(mine | theirs) == pipeline.partitions:
            break
        await asyncio.sleep(0.5)
    assert mine and theirs and not mine & theirs
    assert len(mine | theirs) == pipeline.partitions

    stamp = "2026-11-01T00:00:00Z"
    patterns = [
        {
            "client_id": c,
            "pattern_type": "how",
            "winning_sequence": seq,
            "confidence": 0.9,
            "updated_at": stamp,
        }
        for c, seq in [
            ("acme", ["email", "linkedin"]),
            ("globex", ["linkedin", "email"]),
            ("initech", ["email"]),
        ]
    ]
    pipeline.produce_json(settings.topic_conversion_patterns, patterns, "client_id")
    await_patterns(pipeline, ["acme", "globex", "initech"])

    rows = [
        r
        for r in sample_leads(300, seed=3)
        if r["client_id"] != "umbrella" and r["als_score"] >= 20
    ]
    pipeline.produce_json(leads_topic, rows, "lead_id")
    wanted = {r["event_id"] for r in rows}
    emitted = [
        a
        for a in pipeline.read_json(settings.topic_allocations, 10**6, 30)
        if a["event_id"] in wanted
    ]
    assert {a["event_id"] for a in emitted} == wanted
    assert all(a["sequence_source"] == "pattern" for a in emitted)
    for worker in (first, second):
        assert "allocator_leads_total" in worker.metrics()


async def test_sigkill_mid_stream_loses_nothing_and_counts_nothing_twice(
    sqlite_pipeline: Pipeline, redis_url: str
) -> None:
    pipeline = sqlite_pipeline
    settings = pipeline.settings
    worker = pipeline.start_worker()
    rows = sample_leads(5000, seed=9)
    pipeline.produce_json(settings.topic_scored_leads, rows, "lead_id")
    pipeline.read(settings.topic_allocations, 200, 60)  # mid-stream...
    worker.kill()  # ...SIGKILL: no shutdown, no final commit
    done_before = len(pipeline.read(settings.topic_allocations, 10**6, 2))
    assert done_before < len(rows), "the worker finished before it was killed"

    pipeline.start_worker()
    records = pipeline.read_json(settings.topic_allocations, len(rows), 120)
    copies = by_event(records)
    deadline = time.monotonic() + 60
    while len(copies) < len(rows) and time.monotonic() < deadline:
        copies = by_event(pipeline.read_json(settings.topic_allocations, 10**6, 3))
    assert set(copies) == {r["event_id"] for r in rows}
    for event, versions in copies.items():
        assert identical_apart_from_decided_at(versions), event
    distinct = [versions[0] for versions in copies.values()]
    await assert_counters_match(redis_url, pipeline.prefix, distinct)
    print(
        f"killed after {done_before} of {len(rows)}; "
        f"{len(records) - len(copies)} redelivered duplicates, all identical"
    )


async def test_redis_outage_is_retried_not_dead_lettered(
    broker_bootstrap: str, tmp_path: Path
) -> None:
    db_url = f"sqlite+aiosqlite:///{tmp_path}/allocator.db"
    # `restarted` outlives the pipeline so that the pipeline's cleanup finds Redis up.
    with own_redis_server(data_dir=str(tmp_path)) as url, ExitStack() as restarted:
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        async with running_pipeline(broker_bootstrap, db_url, url, tmp_path) as pipeline:
            settings = pipeline.settings
            worker = pipeline.start_worker()
            rows = sample_leads(100, seed=21)
            pipeline.produce_json(settings.topic_scored_leads, rows[:50], "lead_id")
            assert len(pipeline.read(settings.topic_allocations, 50, 60)) == 50

            redis = Redis.from_url(url)
            await redis.shutdown(nosave=True)  # Redis goes away
            await redis.aclose()
            pipeline.produce_json(settings.topic_scored_leads, rows[50:], "lead_id")
            await asyncio.sleep(3)
            later = {r["event_id"] for r in rows[50:]}
            during = [
                a
                for a in pipeline.read_json(settings.topic_allocations, 10**6, 2)
                if a["event_id"] in later
            ]
            # Only an unqualified lead (no channel, nothing to reserve) needs no Redis.
            assert all(a["channels"] == [] for a in during), during
            assert pipeline.read(settings.topic_dlq, 1, 1) == []
            assert worker.health()["live"] is True

            restarted.enter_context(own_redis_server(port=port, data_dir=str(tmp_path)))
            records = pipeline.read_json(settings.topic_allocations, 100, 90)
            assert {r["event_id"] for r in records} == {r["event_id"] for r in rows}
            assert pipeline.read(settings.topic_dlq, 1, 1) == []
            retried = [
                line
                for line in worker.metrics().splitlines()
                if line.startswith("allocator_transient_failures_total")
            ]
            assert retried and float(retried[0].rsplit(" ", 1)[1]) > 0


async def test_database_outage_is_retried_not_dead_lettered(
    postgres_pipeline: Pipeline, postgres_server: str
) -> None:
    pipeline = postgres_pipeline
    db_url = pipeline.database_url
    settings = pipeline.settings
    worker = pipeline.start_worker()
    rows = sample_leads(100, seed=23)
    pipeline.produce_json(settings.topic_scored_leads, rows[:50], "lead_id")
    assert len(pipeline.read(settings.topic_allocations, 50, 60)) == 50

    name = make_url(db_url).database
    admin = await _admin(postgres_server)
    await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
    await admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
    )
    try:
        pattern = {
            "client_id": "acme",
            "pattern_type": "how",
            "confidence": 0.9,
            "winning_sequence": ["email", "linkedin"],
            "updated_at": "2026-11-01T00:00:00Z",
        }
        pipeline.produce_json(settings.topic_conversion_patterns, [pattern], "client_id")
        pipeline.produce_json(settings.topic_scored_leads, rows[50:], "lead_id")
        # Leads go on from the last good snapshot of clients and resources.
        records = pipeline.read_json(settings.topic_allocations, 100, 60)
        assert {r["event_id"] for r in records} == {r["event_id"] for r in rows}
        deadline = time.monotonic() + 30
        retried = 0.0
        while retried == 0 and time.monotonic() < deadline:
            for line in worker.metrics().splitlines():
                if line.startswith(SAVE_PATTERN_RETRIES):
                    retried = float(line.rsplit(" ", 1)[1])
            await asyncio.sleep(0.5)
        assert retried > 0
        assert pipeline.read(settings.topic_dlq, 1, 1) == []
        assert worker.health()["live"] is True
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await admin.close()

    # Back: the pattern is saved, then fanned out, and reaches later leads.
    await_patterns(pipeline, ["acme"])
    db = Database(db_url)
    async with db.session() as session:
        held = await patterns_for(session, "acme")
    await db.close()
    assert held.how is not None
    assert pipeline.read(settings.topic_dlq, 1, 1) == []
