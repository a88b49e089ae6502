"""A batch that cannot finish stops its agent visibly, and nothing after it is
skipped: /health says 503 and why, and a restarted worker allocates the batch."""

from __future__ import annotations

import asyncio
import json
import signal
import time

from redis.asyncio import Redis

from allocator.models import derived_id
from streams.samples import sample_leads
from tests.integration.pipeline import Pipeline


async def test_a_failing_batch_stops_the_agent_and_is_not_skipped(
    sqlite_pipeline: Pipeline, redis_url: str
) -> None:
    pipeline = sqlite_pipeline
    settings = pipeline.settings
    worker = pipeline.start_worker()
    # Not bad data and not an outage: the lead's held answer is corrupt, so
    # reading it back fails, a bug-like failure. (A key of the wrong type no
    # longer fails: the script reads holds with MGET, which answers nil for it.)
    redis = Redis.from_url(redis_url)
    hold_key = f"{pipeline.prefix}allocator:held:{derived_id('held', 'acme', 'ev-stuck')}"
    await redis.set(hold_key, "not a held answer")

    stuck = {
        "event_id": "ev-stuck",
        "lead_id": "stuck",
        "client_id": "acme",
        "als_score": 70,
        "scored_at": "2026-11-26T12:00:00+00:00",
    }
    after = sample_leads(40, seed=43)
    records = [(r["lead_id"].encode(), json.dumps(r).encode()) for r in after]
    # The stuck lead and 20 more in one go (some may share its batch), ...
    pipeline.produce(
        settings.topic_scored_leads,
        [(b"stuck", json.dumps(stuck).encode()), *records[:20]],
        partition=0,
    )

    deadline = time.monotonic() + 60
    status, body = worker.get("/health")
    while status != 503 and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        status, body = worker.get("/health")
    health = json.loads(body)
    assert status == 503 and health["crashed_agents"] == ["allocate_leads"]
    assert health["errors"]["allocate_leads"].startswith("JSONDecodeError")  # the answer read
    assert worker.get("/ready")[0] == 503
    # ... and 20 that arrive once the agent has stopped. faust's stream went
    # on draining them, acking each itself: the worker committed partition 0
    # past the stuck lead and all 40 (streams/commits.py, PinnedTopic).
    pipeline.produce(settings.topic_scored_leads, records[20:], partition=0)
    emitted = {a["event_id"] for a in pipeline.read_json(settings.topic_allocations, 10**6, 3)}
    assert "ev-stuck" not in emitted
    await asyncio.sleep(settings.broker_commit_interval + 1)  # a commit would have passed it by now
    committed = pipeline.committed(settings.topic_scored_leads)
    assert committed[0] <= 0, f"committed past the stuck lead at offset 0: {committed}"

    await redis.delete(hold_key)
    await redis.aclose()
    worker.stop()  # SIGTERM, and SIGKILL only if it has not exited within the grace period
    assert worker.process.returncode != -signal.SIGKILL, "SIGTERM did not stop the worker"
    restarted = pipeline.start_worker()
    wanted = {"ev-stuck"} | {r["event_id"] for r in after}
    emitted = {a["event_id"] for a in pipeline.read_json(settings.topic_allocations, 41, 120)}
    # (the first test on a fresh Kafka broker: its group coordinator may be slow to answer)
    assert wanted <= emitted, restarted.log_tail()
    assert pipeline.read(settings.topic_dlq, 1, 1) == []
