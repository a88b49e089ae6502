"""History files for replay tests, written from the sample generators (streams/samples)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from streams.samples import SAMPLES_DIR, sample_leads, sample_patterns

BAD_LINES = {
    50: '{"lead_id": "bad-1", "client_id": "acme", "als_score": 72.5, '
    '"scored_at": "2026-11-26T10:00:00Z"}',
    120: "not json at all",
    300: '{"lead_id": "bad-3", "client_id": "acme", "als_score": 40}',
}


def write_history(
    directory: Path, leads: int = 800, pattern_time: str | None = None, bad: bool = True
) -> dict[str, Path]:
    rows = sample_leads(leads, seed=17)
    lines: list[str] = []
    for i, row in enumerate(rows):
        if bad and i in BAD_LINES:
            lines.append(BAD_LINES[i])
        lines.append(json.dumps(row))
    paths = {
        "leads": directory / "leads.jsonl",
        "patterns": directory / "patterns.jsonl",
        "clients": SAMPLES_DIR / "clients.jsonl",
        "resources": SAMPLES_DIR / "resources.jsonl",
    }
    paths["leads"].write_text("\n".join(lines) + "\n")
    patterns: list[dict[str, Any]] = sample_patterns()
    if pattern_time:
        for p in patterns:
            p["updated_at"] = pattern_time
    paths["patterns"].write_text("".join(json.dumps(p) + "\n" for p in patterns))
    return paths


def replay_args(paths: dict[str, Path], out: Path, *extra: str) -> list[str]:
    return [
        "replay",
        "--leads",
        str(paths["leads"]),
        "--patterns",
        str(paths["patterns"]),
        "--clients",
        str(paths["clients"]),
        "--resources",
        str(paths["resources"]),
        "--out",
        str(out),
        "--quiet",
        *extra,
    ]
