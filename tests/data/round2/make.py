"""Writes this folder's round-2 history: three clients using every round-2
setting (weekly limits, warm-ups, pools, both rotations, lead and domain caps,
send windows, holidays, blackout dates, pacing, sticky senders, feedback
thresholds), 4,000 leads over three weeks with zones and email domains, and
send-events of every kind naming the sends a replay without them made.

    python tests/data/round2/make.py

Run once, on the code the recording was made with (issue 15: commit f0d2a0f,
before the speed work); the recorded outputs beside it are that code's
answers, which test_recorded_round2.py holds every later change to.
"""

from __future__ import annotations

import gzip
import json
import random
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
START = datetime(2026, 12, 14, 6, 0, tzinfo=UTC)  # a Monday; Christmas and New Year inside
LEADS = 4000

CLIENTS: list[dict[str, Any]] = [
    {
        "client_id": "acme",
        "timezone": "America/New_York",
        "max_defer_days": 3,
        "rotation": "least_loaded",
        "lead_daily_limit": 2,
        "recipient_domain_daily_limit": 6,
        "send_windows": {"email": {"days": [0, 1, 2, 3, 4], "start": "10:00", "end": "16:00"}},
        "holidays": "US",
        "blackout_dates": ["2026-12-31"],
        "pacing": {"email": {"gap_seconds": 90}, "sms": {"gap_seconds": 300}},
        "bounce_rate_limit": 0.2,
        "complaint_limit": 2,
        "cooldown_hours": 12,
        "suppression_days": 30,
        "sticky_days": 7,
        "sticky": "prefer",
    },
    {
        "client_id": "globex",
        "timezone": "Europe/Berlin",
        "max_defer_days": 2,
        "holidays": "DE",
        "send_windows": {
            "voice": None,
            "linkedin": {"start": "08:00", "end": "18:00"},
            "email": {"start": "09:00", "end": "17:00"},
        },
        "sticky_days": 14,
        "sticky": "require",
    },
    {"client_id": "initech", "timezone": "Asia/Tokyo", "max_defer_days": 0},
]

POOLS: list[dict[str, Any]] = [
    {
        "client_id": "acme",
        "channel": "email",
        "pool_id": "outbound",
        "daily_limit": 100,
        "weekly_limit": 420,
    },
    {
        "client_id": "globex",
        "channel": "linkedin",
        "pool_id": "team",
        "daily_limit": 60,
        "weekly_limit": None,
    },
]


def resources() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for i in range(3):
        rows.append(
            {
                "client_id": "acme",
                "channel": "email",
                "resource_id": f"mx{i}.acme.io",
                "daily_limit": 45,
                "pool_id": "outbound",
                "warmup": {"start": "2026-12-10", "initial": 5, "step": 4, "every_days": 2},
            }
        )
    rows += [
        {
            "client_id": "acme",
            "channel": "linkedin",
            "resource_id": "seat-a",
            "daily_limit": 40,
            "weekly_limit": 150,
        },
        {"client_id": "acme", "channel": "linkedin", "resource_id": "seat-b", "daily_limit": 25},
        {"client_id": "acme", "channel": "sms", "resource_id": "+15550001", "daily_limit": 60},
        {
            "client_id": "acme",
            "channel": "voice",
            "resource_id": "+15550002",
            "daily_limit": 30,
            "weekly_limit": 100,
        },
        {"client_id": "acme", "channel": "direct_mail", "resource_id": "lob", "daily_limit": None},
        {
            "client_id": "globex",
            "channel": "linkedin",
            "resource_id": "g-seat-1",
            "daily_limit": 40,
            "pool_id": "team",
        },
        {
            "client_id": "globex",
            "channel": "linkedin",
            "resource_id": "g-seat-2",
            "daily_limit": 40,
            "pool_id": "team",
            "weekly_limit": 150,
        },
        {"client_id": "globex", "channel": "email", "resource_id": "globex.de", "daily_limit": 90},
        {"client_id": "globex", "channel": "voice", "resource_id": "+4930001", "daily_limit": 30},
        {
            "client_id": "globex",
            "channel": "sms",
            "resource_id": "+4930002",
            "daily_limit": 10,
            "active": False,
        },
        {
            "client_id": "initech",
            "channel": "email",
            "resource_id": "initech.jp",
            "daily_limit": 40,
        },
        {"client_id": "initech", "channel": "linkedin", "resource_id": "i-seat", "daily_limit": 25},
    ]
    return rows


def leads(rng: random.Random) -> list[dict[str, Any]]:
    rows = []
    span = 21 * 24 * 3600
    for i in range(LEADS):
        at = START + timedelta(seconds=span * i // LEADS + rng.randint(0, 200))
        client = rng.choices(["acme", "globex", "initech", "umbrella"], [55, 30, 13, 2])[0]
        row: dict[str, Any] = {
            "event_id": f"r2-{i:05d}",
            "lead_id": f"lead-{rng.randint(0, 2500):05d}",  # leads come back: caps, sticky
            "client_id": client,
            "als_score": rng.choice([rng.randint(0, 100), rng.randint(70, 100)]),
            "scored_at": at.isoformat(),
        }
        if rng.random() < 0.15:
            row["timezone"] = rng.choice(
                ["America/Los_Angeles", "Asia/Tokyo", "Europe/London", "Australia/Sydney"]
            )
        if rng.random() < 0.8:
            row["email_domain"] = rng.choice(["gmail.com", "corp.example", "big.co", "x.io"])
        rows.append(row)
    return rows


def patterns() -> list[dict[str, Any]]:
    def at(days: int) -> str:
        return (START + timedelta(days=days)).isoformat()

    return [
        {
            "client_id": "acme",
            "pattern_type": "how",
            "confidence": 0.9,
            "updated_at": at(3),
            "winning_sequence": ["email", "linkedin", "sms", "voice", "direct_mail"],
        },
        {
            "client_id": "acme",
            "pattern_type": "when",
            "channel": "linkedin",
            "optimal_day": 2,
            "optimal_hour": 10,
            "confidence": 0.8,
            "updated_at": at(5),
        },
        {
            "client_id": "globex",
            "pattern_type": "when",
            "channel": "email",
            "optimal_day": 4,
            "optimal_hour": 7,
            "confidence": 0.75,
            "updated_at": at(2),
        },
        {
            "client_id": "globex",
            "pattern_type": "when",
            "channel": "email",
            "optimal_day": 0,
            "optimal_hour": 15,
            "confidence": 0.9,
            "updated_at": at(12),
        },
        {
            "client_id": "initech",
            "pattern_type": "how",
            "confidence": 0.4,
            "updated_at": at(1),
            "winning_sequence": ["linkedin", "email"],
        },
    ]


# Mostly sends, some failures to refund, a few of each thing that stops a
# lead or cools or pauses a resource (an auth failure pauses it for good).
KINDS = {
    "sent": 300,
    "failed": 40,
    "bounced": 30,
    "complained": 4,
    "throttled": 4,
    "auth_failed": 1,
    "replied": 20,
    "meeting_booked": 8,
    "unsubscribed": 8,
}


def send_events(rng: random.Random, allocations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    events = []
    for n, alloc in enumerate(allocations):
        sent = [c for c in alloc["channels"] if c["status"] == "allocated"]
        if not sent or rng.random() < 0.4:
            continue
        entry = rng.choice(sent)
        kind = rng.choices(list(KINDS), list(KINDS.values()))[0]
        decided = datetime.fromisoformat(alloc["decided_at"])
        at = decided + timedelta(minutes=rng.randint(1, 60 * 30))
        row: dict[str, Any] = {
            "event_id": f"se-{n:05d}",
            "kind": kind,
            "client_id": alloc["client_id"],
            "lead_id": alloc["lead_id"],
            "occurred_at": at.isoformat(),
        }
        if kind not in ("replied", "meeting_booked", "unsubscribed") or rng.random() < 0.5:
            row |= {
                "allocation_id": alloc["allocation_id"],
                "channel": entry["channel"],
                "resource_id": entry["resource_id"],
            }
        if kind == "throttled":
            row["retry_after"] = (at + timedelta(hours=rng.randint(1, 30))).isoformat()
        events.append(row)
        if rng.random() < 0.05:
            events.append(dict(row))  # a redelivery
    events.sort(key=lambda e: e["occurred_at"])
    return events


def write(name: str, rows: list[dict[str, Any]]) -> Path:
    path = HERE / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def replay(work: Path, *extra: str) -> None:
    args = [
        sys.executable,
        "-m",
        "streams.cli",
        "replay",
        "--leads",
        str(HERE / "leads.jsonl"),
        "--patterns",
        str(HERE / "patterns.jsonl"),
        "--clients",
        str(HERE / "clients.jsonl"),
        "--resources",
        str(HERE / "resources.jsonl"),
        "--pools",
        str(HERE / "pools.jsonl"),
        "--quiet",
        *extra,
    ]
    subprocess.run(args, check=True, cwd=HERE.parents[2])


def gzip_to(source: Path, name: str) -> None:
    with gzip.open(HERE / name, "wt", encoding="utf-8") as out:
        out.write(source.read_text(encoding="utf-8"))


def main() -> None:
    rng = random.Random(15)
    write("clients.jsonl", CLIENTS)
    write("pools.jsonl", POOLS)
    write("resources.jsonl", resources())
    write("leads.jsonl", leads(rng))
    write("patterns.jsonl", patterns())
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        replay(work, "--out", str(work / "plain.jsonl"))
        plain = [json.loads(line) for line in (work / "plain.jsonl").read_text().splitlines()]
        write("send-events.jsonl", send_events(rng, plain))
        replay(
            work,
            "--send-events",
            str(HERE / "send-events.jsonl"),
            "--out",
            str(work / "allocations.jsonl"),
            "--cancellations",
            str(work / "cancellations.jsonl"),
            "--health",
            str(work / "health.jsonl"),
        )
        for name in ("allocations", "cancellations", "health"):
            gzip_to(work / f"{name}.jsonl", f"{name}.jsonl.gz")
    for name in ("leads", "send-events"):
        gzip_to(HERE / f"{name}.jsonl", f"{name}.jsonl.gz")
        (HERE / f"{name}.jsonl").unlink()


if __name__ == "__main__":
    main()
