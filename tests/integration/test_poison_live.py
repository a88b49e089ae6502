"""Every poison kind found so far, interleaved with good leads on two live
workers: every good lead allocated, every poison record in the DLQ with its
code and a bounded copy of its bytes, and no agent ever restarted."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from streams.samples import sample_leads
from tests.integration.pipeline import Pipeline

GOOD = {
    "lead_id": "p",
    "client_id": "acme",
    "als_score": 70,
    "scored_at": "2026-11-26T12:00:00+00:00",
}


def lead_bytes(**fields: Any) -> bytes:
    return json.dumps({**GOOD, **fields}).encode()


# (name, topic kind, raw value, expected error_code)
POISON: list[tuple[str, str, bytes | None, str]] = [
    ("deep nesting", "leads", b"[" * 100_000, "too_deep"),
    (
        "integer of 5,000 digits",
        "leads",
        b'{"lead_id": "p", "client_id": "acme", "scored_at": "2026-11-26T12:00:00Z", '
        b'"als_score": ' + b"7" * 5000 + b"}",
        "too_large",
    ),
    (
        "scored_at in year 1",
        "leads",
        lead_bytes(scored_at="0001-01-01T00:00:00+01:00"),
        "out_of_range",
    ),
    (
        "scored_at at the end of year 9999",
        "leads",
        lead_bytes(scored_at="9999-12-31T23:30:00-01:00"),
        "out_of_range",
    ),
    ("zone that is a directory", "leads", lead_bytes(timezone="America"), "unknown_timezone"),
    ("zone of 300 characters", "leads", lead_bytes(timezone="A" * 300), "unknown_timezone"),
    (
        "lone surrogate in lead_id",
        "leads",
        lead_bytes().replace(b'"lead_id": "p"', b'"lead_id": "\\ud800"'),
        "invalid_field",
    ),
    (
        "lone surrogate in event_id",
        "leads",
        lead_bytes(event_id="E").replace(b'"event_id": "E"', b'"event_id": "\\ud800"'),
        "invalid_field",
    ),
    ("900 KB record", "leads", lead_bytes(lead_id="x" * 900_000), "too_large"),
    ("not UTF-8", "leads", b'{"lead_id": "\xff\xfe"}', "invalid_encoding"),
    ("not JSON", "leads", b"{lead_id: p", "invalid_json"),
    ("tombstone", "leads", None, "empty_value"),
    (
        "pattern updated in year 1",
        "patterns",
        json.dumps(
            {
                "client_id": "acme",
                "pattern_type": "how",
                "winning_sequence": ["email"],
                "confidence": 0.9,
                "updated_at": "0001-01-01T00:00:00+00:00",
            }
        ).encode(),
        "out_of_range",
    ),
]


async def test_poison_goes_to_the_dlq_and_good_leads_go_on(sqlite_pipeline: Pipeline) -> None:
    pipeline = sqlite_pipeline
    settings = pipeline.settings
    workers = [pipeline.start_worker(wait=False), pipeline.start_worker(wait=False)]
    for worker in workers:
        pipeline.wait_ready(worker)

    rows = sample_leads(400, seed=41)
    step = len(rows) // len(POISON)
    for i, (name, kind, raw, _) in enumerate(POISON):
        chunk = rows[i * step : (i + 1) * step]
        leads = [(r["lead_id"].encode(), json.dumps(r).encode()) for r in chunk]
        if kind == "leads":
            # The poison in the middle of good leads of the same partition.
            pipeline.produce(
                settings.topic_scored_leads,
                [*leads[: step // 2], (name.encode(), raw), *leads[step // 2 :]],
                partition=i % pipeline.partitions,
            )
        else:
            pipeline.produce(settings.topic_conversion_patterns, [(b"acme", raw)])
            pipeline.produce(settings.topic_scored_leads, leads, partition=i % pipeline.partitions)
    pipeline.produce_json(settings.topic_scored_leads, rows[len(POISON) * step :], "lead_id")

    allocations = pipeline.read_json(settings.topic_allocations, len(rows), 90)
    assert {a["event_id"] for a in allocations} == {r["event_id"] for r in rows}
    letters = [json.loads(v) for _, v in pipeline.read(settings.topic_dlq, len(POISON), 60)]
    assert len(letters) == len(POISON)
    by_key = {letter["key"]: letter for letter in letters}
    for name, kind, raw, code in POISON:
        letter = by_key.get("acme" if kind == "patterns" else name)
        assert letter is not None, name
        assert letter["error_code"] == code, (name, letter["error_code"], letter["error"])
        assert len(json.dumps(letter)) < 16_384, name  # bounded, however large the record
        assert letter["raw_length"] == (0 if raw is None else len(raw)), name
        if raw is not None:
            assert letter["raw_sha256"] == hashlib.sha256(raw).hexdigest(), name

    for worker in workers:
        log = worker.log.read_text(errors="replace")
        assert not re.search(r"Crashed|Restarting|Traceback", log), log[-3000:]
        assert worker.health()["crashed_agents"] == []
