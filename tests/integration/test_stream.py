"""End to end: an independent client -> broker -> `allocator worker` -> broker."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

from allocator.directory import ClientSetup, build_snapshot
from allocator.files import load_all
from allocator.models import Client, Resource, ScoredLead, parse_pattern_data, validate
from allocator.patterns import PatternSet
from allocator.store import Database
from allocator.store.database import patterns_for
from streams.samples import SAMPLES_DIR as SAMPLES
from streams.samples import sample_leads, sample_patterns
from tests.integration.expect import (
    assert_counters_match,
    check_allocation,
    check_exhausted_means_full,
    check_limits,
    usage_of,
)
from tests.integration.pipeline import Pipeline


def sample_setups() -> dict[str, ClientSetup]:
    clients = load_all(SAMPLES / "clients.jsonl", lambda d: validate(Client, d))
    resources = load_all(SAMPLES / "resources.jsonl", lambda d: validate(Resource, d))
    return build_snapshot(clients, resources)


def held_patterns(rows: list[dict[str, Any]]) -> dict[str, PatternSet]:
    held: dict[str, PatternSet] = {}
    for row in rows:
        pattern = parse_pattern_data(row)
        held[pattern.client_id] = held.get(pattern.client_id, PatternSet()).with_pattern(pattern)
    return held


def await_patterns(pipeline: Pipeline, clients: list[str], check: str = "pattern") -> int:
    """Probe every lead partition for every client until its allocation shows the pattern.

    Patterns reach leads 'within seconds'; probing each partition makes the test
    wait exactly as long as that takes. Returns the number of probes sent.
    """
    topic = pipeline.settings.topic_scored_leads
    probes = 0
    pending = {(client, p) for client in clients for p in range(pipeline.partitions)}
    deadline = time.monotonic() + 60
    seen: set[str] = set()
    while pending and time.monotonic() < deadline:
        batch = {}
        for client, partition in sorted(pending):
            event = f"probe-{probes}"
            probes += 1
            lead = {
                "event_id": event,
                "lead_id": event,
                "client_id": client,
                "als_score": 25,
                "scored_at": "2026-11-26T13:00:00Z",
            }
            pipeline.produce(topic, [(event.encode(), json.dumps(lead).encode())], partition)
            batch[event] = (client, partition)
        deadline_batch = time.monotonic() + 20
        while batch and time.monotonic() < deadline_batch:
            for allocation in pipeline.read_json(pipeline.settings.topic_allocations, 1, 2):
                event = allocation["event_id"]
                if event in batch and event not in seen:
                    seen.add(event)
                    key = batch.pop(event)
                    if allocation["sequence_source"] == check:
                        pending.discard(key)
        time.sleep(0.5)
    assert not pending, f"patterns never reached {pending}"
    return probes


async def test_allocations_follow_every_rule(postgres_pipeline: Pipeline, redis_url: str) -> None:
    pipeline = postgres_pipeline
    db_url = pipeline.database_url
    settings = pipeline.settings
    pipeline.start_worker()
    patterns = sample_patterns()
    pipeline.produce_json(settings.topic_conversion_patterns, patterns, "client_id")
    probes = await_patterns(pipeline, ["acme"])

    rows = sample_leads(400, seed=11)
    pipeline.produce_json(settings.topic_scored_leads, rows, "lead_id")
    emitted = pipeline.read_json(settings.topic_allocations, 400 + probes, 90)
    by_event = {a["event_id"]: a for a in emitted}
    leads = {r["event_id"]: ScoredLead.model_validate(r) for r in rows}
    assert set(leads) <= set(by_event)

    setups = sample_setups()
    held = held_patterns(patterns)
    for event, lead in leads.items():
        check_allocation(
            by_event[event],
            lead,
            setups.get(lead.client_id),
            held.get(lead.client_id, PatternSet()),
        )

    # Quotas: never over a limit, the Redis counters match what was emitted,
    # and an exhausted channel really had no room on any candidate day.
    allocations = list(by_event.values())
    used = usage_of(allocations)
    check_limits(used, setups)
    await assert_counters_match(redis_url, pipeline.prefix, allocations)
    real = [by_event[e] for e in leads]
    exhausted = check_exhausted_means_full(
        real,
        leads,
        setups,
        {c: held.get(c, PatternSet()) for c in setups},
        used,
    )
    assert exhausted > 0  # the sample data is sized to run out

    # Patterns were persisted for the library API.
    db = Database(db_url)
    async with db.session() as session:
        acme = await patterns_for(session, "acme")
    await db.close()
    assert acme.how is not None and acme.when

    metrics = pipeline.workers[0].metrics()
    assert "allocator_unknown_client_leads_total" in metrics
    unknown = [a for a in real if a["client_id"] == "umbrella"]
    assert unknown and all(c["status"] == "no_resource" for a in unknown for c in a["channels"])


BAD_LEADS: list[tuple[bytes | None, str]] = [
    (b"{oops", "invalid_json"),
    (b'"just a string"', "not_an_object"),
    (b"\xff\xfe\x00garbage", "invalid_encoding"),
    (b'{"lead_id": "b1", "als_score": 50, "scored_at": "2026-11-26T10:00:00Z"}', "missing_field"),
    (
        b'{"lead_id": "b2", "client_id": "acme", "als_score": "72", '
        b'"scored_at": "2026-11-26T10:00:00Z"}',
        "invalid_field",
    ),
    (
        b'{"lead_id": "b3", "client_id": "acme", "als_score": true, '
        b'"scored_at": "2026-11-26T10:00:00Z"}',
        "invalid_field",
    ),
    (
        b'{"lead_id": "b4", "client_id": "acme", "als_score": 72.5, '
        b'"scored_at": "2026-11-26T10:00:00Z"}',
        "invalid_field",
    ),
    (
        b'{"lead_id": "b5", "client_id": "acme", "als_score": 101, '
        b'"scored_at": "2026-11-26T10:00:00Z"}',
        "out_of_range",
    ),
    (
        b'{"lead_id": "b6", "client_id": "acme", "als_score": 50, '
        b'"scored_at": "2026-11-26T10:00:00"}',
        "invalid_timestamp",
    ),
    (
        b'{"lead_id": "b7", "client_id": "acme", "als_score": 50, '
        b'"scored_at": "2026-11-26T10:00:00Z", "timezone": "Atlantis/Capital"}',
        "unknown_timezone",
    ),
    (None, "empty_value"),
    (
        b'{"lead_id": "b8", "client_id": "acme", "als_score": 50, '
        b'"scored_at": "9999-12-31T23:00:00Z"}',
        "out_of_range",
    ),
]
BAD_PATTERNS: list[tuple[bytes, str]] = [
    (
        b'{"client_id": "acme", "pattern_type": "when", "channel": "fax", "optimal_day": 1, '
        b'"optimal_hour": 9, "confidence": 0.9, "updated_at": "2026-11-01T00:00:00Z"}',
        "unknown_channel",
    ),
    (
        b'{"client_id": "acme", "pattern_type": "why", "confidence": 0.9, '
        b'"updated_at": "2026-11-01T00:00:00Z"}',
        "unknown_pattern_type",
    ),
    (
        b'{"client_id": "acme", "pattern_type": "how", "winning_sequence": ["sms", "sms"], '
        b'"confidence": 0.9, "updated_at": "2026-11-01T00:00:00Z"}',
        "duplicate_channel",
    ),
    (
        b'{"client_id": "acme", "pattern_type": "how", "winning_sequence": ["sms"], '
        b'"confidence": 1.5, "updated_at": "2026-11-01T00:00:00Z"}',
        "out_of_range",
    ),
]


async def test_bad_records_go_to_the_dlq_and_good_ones_flow(sqlite_pipeline: Pipeline) -> None:
    pipeline = sqlite_pipeline
    settings = pipeline.settings
    pipeline.start_worker()
    good = sample_leads(60, seed=5)
    records: list[tuple[bytes | None, bytes | None]] = []
    for i, row in enumerate(good):
        records.append((row["lead_id"].encode(), json.dumps(row).encode()))
        if i < len(BAD_LEADS):
            records.append((f"bad-{i}".encode(), BAD_LEADS[i][0]))
    pipeline.produce(settings.topic_scored_leads, records)
    pipeline.produce(
        settings.topic_conversion_patterns, [(b"acme", raw) for raw, _ in BAD_PATTERNS]
    )

    expected = len(BAD_LEADS) + len(BAD_PATTERNS)
    letters = pipeline.read_json(settings.topic_dlq, expected, 60)
    allocations = pipeline.read_json(settings.topic_allocations, len(good), 60)
    assert {a["event_id"] for a in allocations} == {r["event_id"] for r in good}
    assert len(letters) == expected
    codes = sorted(letter["error_code"] for letter in letters)
    assert codes == sorted([c for _, c in BAD_LEADS] + [c for _, c in BAD_PATTERNS])
    assert len(set(codes)) >= 10
    for letter in letters:
        assert letter["source_topic"] in (
            settings.topic_scored_leads,
            settings.topic_conversion_patterns,
        )
        assert isinstance(letter["partition"], int) and isinstance(letter["offset"], int)
        assert letter["error"] and letter["failed_at"]
    binary = next(x for x in letters if x["error_code"] == "invalid_encoding")
    assert base64.b64decode(binary["raw_value"]) == b"\xff\xfe\x00garbage"
    score = next(x for x in letters if '"als_score": "72"' in x["raw_value"])
    assert "als_score" in score["error"] and "'72'" in score["error"]
    assert 'allocator_dead_letters_total{error_code="invalid_json"' in (
        pipeline.workers[0].metrics()
    )
