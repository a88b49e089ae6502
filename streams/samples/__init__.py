"""The sample data: clients and resources (the JSON Lines files beside this
module), and generators of patterns, leads and malformed lead records.

The demo, the tests and the benchmarks all draw their records from here, so a
seed names the same leads everywhere.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

# clients.jsonl and resources.jsonl: three clients and their sending resources.
SAMPLES_DIR = Path(__file__).resolve().parent


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
    """`count` leads two minutes apart; umbrella is a client without a row (no resources)."""
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


# Lead records the worker must send to the dead-letter topic: not JSON, a
# string score, a fractional score, a date without a time, not an object.
BAD_RECORDS = [
    b"{not json",
    b'{"lead_id": "x", "client_id": "acme", "als_score": "72", '
    b'"scored_at": "2026-11-26T10:00:00Z"}',
    b'{"lead_id": "y", "client_id": "acme", "als_score": 72.5, '
    b'"scored_at": "2026-11-26T10:00:00Z"}',
    b'{"lead_id": "z", "client_id": "acme", "als_score": 50, "scored_at": "2026-11-26"}',
    b"[1, 2, 3]",
]
