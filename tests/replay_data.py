"""History files for replay tests, written from the sample generators (streams/samples)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from allocator.replay import processes, shards
from allocator.replay.runner import ReplayRun
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


# --- round 2: small setups of one client, written as the loaders read them ----

WEEK_START = "2026-11-23"  # a Monday


def write_lines(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def weekday_leads(
    per_day: int, weeks: int, score: int, client_id: str = "acme", **extra: Any
) -> list[dict[str, Any]]:
    """`per_day` leads of one score on each weekday from WEEK_START, a minute
    apart from 08:00 UTC (before every default send hour), for `weeks` weeks."""
    start = datetime.fromisoformat(f"{WEEK_START}T08:00:00+00:00")
    rows = []
    for day in range(7 * weeks):
        if day % 7 >= 5:
            continue
        for n in range(per_day):
            at = start + timedelta(days=day, minutes=n)
            rows.append(
                {
                    "lead_id": f"{client_id}-{day:02d}-{n:03d}",
                    "client_id": client_id,
                    "als_score": score,
                    "scored_at": at.isoformat(),
                    **extra,
                }
            )
    return rows


def write_setup(
    directory: Path,
    leads: list[dict[str, Any]],
    resources: list[dict[str, Any]],
    pools: list[dict[str, Any]] | None = None,
    clients: list[dict[str, Any]] | None = None,
) -> dict[str, Path]:
    """leads.jsonl, clients.jsonl (acme in UTC by default), resources.jsonl and,
    when given, pools.jsonl in `directory`; no patterns file."""
    paths = {
        "leads": write_lines(directory / "leads.jsonl", leads),
        "clients": write_lines(
            directory / "clients.jsonl", clients or [{"client_id": "acme", "timezone": "UTC"}]
        ),
        "resources": write_lines(directory / "resources.jsonl", resources),
    }
    if pools is not None:
        paths["pools"] = write_lines(directory / "pools.jsonl", pools)
    return paths


def setup_args(paths: dict[str, Path], out: Path, *extra: str) -> list[str]:
    """`allocator replay` over write_setup's files (with --pools when it wrote one)."""
    args = ["replay", "--leads", str(paths["leads"]), "--clients", str(paths["clients"])]
    args += ["--resources", str(paths["resources"])]
    if "pools" in paths:
        args += ["--pools", str(paths["pools"])]
    return [*args, "--out", str(out), "--quiet", *extra]


def warmup_resource(every_days: int = 1) -> dict[str, Any]:
    """An email domain warming up from WEEK_START: 2 sends, then 2 more every
    `every_days` days, up to its daily limit of 28 (day 14 with every_days 1)."""
    return {
        "client_id": "acme",
        "channel": "email",
        "resource_id": "mail.acme.io",
        "daily_limit": 28,
        "warmup": {"start": WEEK_START, "initial": 2, "step": 2, "every_days": every_days},
    }


# --- round 2, feedback: send-events written from the allocations a replay wrote ---


def at(days: int, clock: str) -> str:
    """The instant `days` after WEEK_START (a Monday) at `clock` (HH:MM) UTC."""
    day = datetime.fromisoformat(f"{WEEK_START}T{clock}:00+00:00") + timedelta(days=days)
    return day.isoformat()


def lead_row(
    event_id: str, lead_id: str, scored_at: str, score: int, client_id: str = "acme"
) -> dict[str, Any]:
    """A scored-lead line with its own event_id (so that allocations are named by it)."""
    return {
        "event_id": event_id,
        "lead_id": lead_id,
        "client_id": client_id,
        "als_score": score,
        "scored_at": scored_at,
    }


def allocations(path: Path) -> dict[str, dict[str, Any]]:
    """The allocation records of an --out file, by their scored-lead event_id."""
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return {row["event_id"]: row for row in rows}


def entry(allocation: dict[str, Any], channel: str) -> dict[str, Any]:
    """The allocation's entry for `channel`."""
    found: dict[str, Any] = next(c for c in allocation["channels"] if c["channel"] == channel)
    return found


def send_event(
    event_id: str,
    kind: str,
    occurred_at: str,
    allocation: dict[str, Any] | None = None,
    channel: str | None = None,
    lead_id: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A send-events line, as a dispatcher writes it: of the send `allocation`
    made on `channel` (its allocation_id, channel and resource_id; `extra`
    overrides any), or of a lead (`lead_id`) for a stop."""
    row: dict[str, Any] = {
        "event_id": event_id,
        "kind": kind,
        "client_id": "acme",
        "occurred_at": occurred_at,
    }
    if allocation is not None:
        row["lead_id"] = allocation["lead_id"]
        row["client_id"] = allocation["client_id"]
        if channel is not None:
            row["allocation_id"] = allocation["allocation_id"]
            row["channel"] = channel
            row["resource_id"] = entry(allocation, channel)["resource_id"]
    if lead_id is not None:
        row["lead_id"] = lead_id
    return {**row, **extra}


# --- a replay split by client across processes (replay/processes.py) ---------


def count_split_runs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Makes every in-memory replay split, whatever its size; the list gets
    how many shards each split run merged (so a test sees the split ran)."""
    monkeypatch.setattr(shards, "MIN_LEADS", 0)
    merged: list[int] = []
    merge = processes._merge

    def counted(job: processes.ShardJob, planned: Any, runs: Any) -> ReplayRun:
        merged.append(len(runs))
        return merge(job, planned, runs)

    monkeypatch.setattr(processes, "_merge", counted)
    return merged
