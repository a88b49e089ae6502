"""Feedback live (CONTRACT.md section 10): two workers, a SIGKILL while
send-events stream in. Replies cancel the lead's later sends exactly once and
suppress its later scored events; failures give their counts back; a
throttled mailbox gets nothing before its retry; redelivered send-events
change nothing; every Redis counter equals the sends still standing."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from redis.asyncio import Redis

from allocator.quota.base import health_key
from tests.integration.expect import assert_each_once
from tests.integration.pipeline import Pipeline

LEADS = 300
REPLIES = range(0, 60)  # replied Friday 09:30: their linkedin send at 10:00 is cancelled
FAILURES = range(60, 100)  # their email send failed on Thursday: the count comes back
RETRY = "2026-12-07T12:00:00+00:00"  # box-0 throttled until then


def lead(i: int, scored_at: str = "2026-11-26T12:00:00+00:00", tag: str = "") -> dict[str, Any]:
    return {
        "event_id": f"lead{tag}-{i}",
        "lead_id": f"fb-lead-{i}",
        "client_id": "fb",
        "als_score": 40,  # cool: email 09:00 and linkedin 10:00 on Friday
        "scored_at": scored_at,
    }


async def test_feedback_with_a_sigkill(sqlite_pipeline: Pipeline, redis_url: str) -> None:
    pipeline = sqlite_pipeline
    settings = pipeline.settings
    folder = pipeline.workdir
    (folder / "clients.jsonl").write_text(
        json.dumps({"client_id": "fb", "max_defer_days": 10, "suppression_days": 30}) + "\n"
    )
    rows = [
        {"client_id": "fb", "channel": "email", "resource_id": f"box-{i}", "daily_limit": 150}
        for i in range(3)
    ] + [
        {"client_id": "fb", "channel": "linkedin", "resource_id": f"seat-{i}", "daily_limit": 150}
        for i in range(2)
    ]
    (folder / "resources.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for table in ("clients", "resources"):
        done = pipeline.cli(table, "load", str(folder / f"{table}.jsonl"))
        assert done.returncode == 0, done.stderr
    pipeline.start_worker()
    pipeline.start_worker()

    first = [lead(i) for i in range(LEADS)]
    pipeline.produce_json(settings.topic_scored_leads, first, "lead_id")
    wanted = {r["event_id"] for r in first}
    every = pipeline.every_copy(wanted, 120)
    assert_each_once(every, wanted)
    allocation = {e: copies[0] for e, copies in every.items()}

    def entry(i: int, channel: str) -> dict[str, Any]:
        [found] = [c for c in allocation[f"lead-{i}"]["channels"] if c["channel"] == channel]
        return found

    feedback: list[dict[str, Any]] = []
    for i in REPLIES:
        feedback.append(
            {
                "event_id": f"reply-{i}",
                "kind": "replied",
                "client_id": "fb",
                "lead_id": f"fb-lead-{i}",
                "occurred_at": "2026-11-27T09:30:00+00:00",
            }
        )
    for i in FAILURES:
        email = entry(i, "email")
        feedback.append(
            {
                "event_id": f"fail-{i}",
                "kind": "failed",
                "client_id": "fb",
                "lead_id": f"fb-lead-{i}",
                "allocation_id": allocation[f"lead-{i}"]["allocation_id"],
                "channel": "email",
                "resource_id": email["resource_id"],
                "occurred_at": "2026-11-26T13:00:00+00:00",
            }
        )
    throttled = next(i for i in range(100, LEADS) if entry(i, "email")["resource_id"] == "box-0")
    feedback.append(
        {
            "event_id": "throttle-box-0",
            "kind": "throttled",
            "client_id": "fb",
            "lead_id": f"fb-lead-{throttled}",
            "allocation_id": allocation[f"lead-{throttled}"]["allocation_id"],
            "channel": "email",
            "resource_id": "box-0",
            "occurred_at": "2026-11-26T13:00:00+00:00",
            "retry_after": RETRY,
        }
    )
    redelivered = feedback + feedback[::7]  # some of them twice

    def stream_feedback() -> None:
        for start in range(0, len(redelivered), 10):
            pipeline.produce_json(
                settings.topic_send_events, redelivered[start : start + 10], "lead_id"
            )
            threading.Event().wait(0.3)

    producer = threading.Thread(target=stream_feedback, daemon=True)
    producer.start()
    await asyncio.sleep(1.5)
    pipeline.workers[0].kill()  # mid-stream
    pipeline.start_worker(wait=False)
    producer.join()

    cancellations = _until(pipeline, settings.topic_lead_cancellations, len(REPLIES))
    assert len(cancellations) == len(REPLIES)  # each stop's cancellation, once
    assert {c["channel"] for c in cancellations.values()} == {"linkedin"}
    assert {c["reason"] for c in cancellations.values()} == {"replied"}
    health = pipeline.read_json(settings.topic_resource_health, 1, 60)
    assert {(h["resource_id"], h["state"], h["until"]) for h in health} == {
        ("box-0", "cooling", RETRY.replace("+00:00", "Z"))
    } or {(h["resource_id"], h["state"]) for h in health} == {("box-0", "cooling")}

    # Later leads: none on box-0 before its retry; the replied leads are suppressed.
    later = [lead(i, "2026-11-27T12:00:00+00:00", "-later") for i in range(120)]
    pipeline.produce_json(settings.topic_scored_leads, later, "lead_id")
    wanted_later = {r["event_id"] for r in later}
    every_later = pipeline.every_copy(wanted_later, 120)
    assert_each_once(every_later, wanted_later)
    every_later = {e: every_later[e] for e in wanted_later}  # the topic holds the first ones too
    retry = datetime.fromisoformat(RETRY)
    for event, copies in every_later.items():
        i = int(event.rsplit("-", 1)[1])
        statuses = {c["status"] for c in copies[0]["channels"]}
        if i in REPLIES:
            assert statuses == {"suppressed"}, copies[0]
            continue
        for c in copies[0]["channels"]:
            if c["resource_id"] == "box-0":
                assert datetime.fromisoformat(c["send_at"]) >= retry, c

    # Every counter equals the sends still standing: allocated, minus the
    # cancelled, minus the failed (refunded before their day ended).
    standing: Counter[str] = Counter()
    for copies in [*(every[e] for e in wanted), *every_later.values()]:
        a = copies[0]
        i = int(a["event_id"].rsplit("-", 1)[1])
        for c in a["channels"]:
            if c["status"] != "allocated":
                continue
            if a["event_id"] in wanted and (
                (i in REPLIES and c["channel"] == "linkedin")
                or (i in FAILURES and c["channel"] == "email")
            ):
                continue
            standing[
                f"{pipeline.prefix}ratelimit:{c['channel']}:{c['resource_id']}:daily:{c['usage_day']}"
            ] += 1
    redis = Redis.from_url(redis_url, decode_responses=True)
    try:
        keys = [k async for k in redis.scan_iter(match=f"{pipeline.prefix}ratelimit:*:daily:*")]
        stored = {k: int(await redis.get(k) or 0) for k in keys}
    finally:
        await redis.aclose()
    assert {k: v for k, v in stored.items() if v} == dict(standing)
    print(
        f"{len(cancellations)} cancellations, {len(FAILURES)} refunds, box-0 cooling; "
        f"{len(redelivered) - len(feedback)} send-events redelivered; counters exact"
    )


def _until(pipeline: Pipeline, topic: str, want: int) -> dict[tuple[str, str], dict[str, Any]]:
    """The topic's distinct records, read again until there are `want` (or 120 s pass)."""
    deadline = time.monotonic() + 120
    while True:
        found = _distinct(pipeline.read_json(topic, 10**6, 3), topic)
        if len(found) >= want or time.monotonic() > deadline:
            return found


def _distinct(records: list[dict[str, Any]], what: str) -> dict[tuple[str, str], dict[str, Any]]:
    """Records by (allocation_id, channel); a redelivered copy must be identical."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for r in records:
        key = (r["allocation_id"], r["channel"])
        assert found.setdefault(key, r) == r, (what, r)
    return found


async def test_a_cooldown_that_ends_is_published_once_and_forgotten(
    sqlite_pipeline: Pipeline, redis_url: str
) -> None:
    """A throttle whose retry time has passed: the worker's lapse timer claims
    the change in Redis, publishes `active` ("cooldown over", at the retry
    time) on resource-health, then forgets the claim, so that no worker
    publishes it again when the claim's lease ends."""
    pipeline = sqlite_pipeline
    pipeline.extra_env["ALLOCATOR_HEALTH_LAPSE_SECONDS"] = "1"
    settings = pipeline.settings
    folder = pipeline.workdir
    (folder / "clients.jsonl").write_text(json.dumps({"client_id": "fb"}) + "\n")
    box = {"client_id": "fb", "channel": "email", "resource_id": "box-0", "daily_limit": 150}
    (folder / "resources.jsonl").write_text(json.dumps(box) + "\n")
    for table in ("clients", "resources"):
        done = pipeline.cli(table, "load", str(folder / f"{table}.jsonl"))
        assert done.returncode == 0, done.stderr
    pipeline.start_worker()
    pipeline.produce_json(settings.topic_scored_leads, [lead(0)], "lead_id")
    [allocation] = pipeline.every_copy({"lead-0"}, 120)["lead-0"][:1]
    assert [c["resource_id"] for c in allocation["channels"] if c["channel"] == "email"] == [
        "box-0"
    ]
    now = datetime.now(UTC).replace(microsecond=0)
    retry = now - timedelta(hours=1)
    throttle = {
        "event_id": "throttle-box-0",
        "kind": "throttled",
        "client_id": "fb",
        "lead_id": "fb-lead-0",
        "allocation_id": allocation["allocation_id"],
        "channel": "email",
        "resource_id": "box-0",
        "occurred_at": (now - timedelta(hours=2)).isoformat(),
        "retry_after": retry.isoformat(),
    }
    pipeline.produce_json(settings.topic_send_events, [throttle], "lead_id")

    deadline = time.monotonic() + 120
    health: list[dict[str, Any]] = []
    while len(health) < 2 and time.monotonic() < deadline:
        health = pipeline.read_json(settings.topic_resource_health, 2, 5)
    assert [(h["state"], h["reason"], h["changed_at"]) for h in health] == [
        ("cooling", "throttled", throttle["occurred_at"]),
        ("active", "cooldown over", retry.isoformat()),
    ]
    key = f"{pipeline.prefix}{health_key('fb', 'email', 'box-0')}"
    redis = Redis.from_url(redis_url, decode_responses=True)
    try:
        held = "?"
        while held is not None and time.monotonic() < deadline:
            held = await redis.get(key)  # the claim, until the worker forgets it
            await asyncio.sleep(0.2)
        assert held is None
    finally:
        await redis.aclose()
    await asyncio.sleep(3)  # three more lapse timers: nothing to publish
    assert len(pipeline.read_json(settings.topic_resource_health, 3, 3)) == 2
