"""Pacing live (CONTRACT.md section 9): two workers share one client's
mailboxes; the k-th send of a mailbox on a day comes from the one atomic
reservation, so however the leads split between the workers, no two sends of
a mailbox from one slot are closer than half the gap, and none passes the
window's end."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import datetime
from itertools import pairwise
from zoneinfo import ZoneInfo

from tests.integration.expect import assert_each_once
from tests.integration.pipeline import Pipeline

GAP = 120  # seconds
LEADS = 400


async def test_two_workers_pace_each_mailbox(sqlite_pipeline: Pipeline) -> None:
    pipeline = sqlite_pipeline
    folder = pipeline.workdir
    (folder / "clients.jsonl").write_text(
        json.dumps(
            {
                "client_id": "paced",
                "timezone": "America/New_York",
                "max_defer_days": 5,
                "send_windows": {
                    "email": {"days": [0, 1, 2, 3, 4], "start": "09:00", "end": "12:00"}
                },
                "pacing": {"email": {"gap_seconds": GAP}},
            }
        )
        + "\n"
    )
    (folder / "resources.jsonl").write_text(
        "".join(
            json.dumps(
                {
                    "client_id": "paced",
                    "channel": "email",
                    "resource_id": f"box-{i}",
                    "daily_limit": 200,
                }
            )
            + "\n"
            for i in range(3)
        )
    )
    for table in ("clients", "resources"):
        done = pipeline.cli(table, "load", str(folder / f"{table}.jsonl"))
        assert done.returncode == 0, done.stderr
    pipeline.start_worker()
    pipeline.start_worker()
    rows = [
        {
            "event_id": f"pace-{i}",
            "lead_id": f"lead-{i}",
            "client_id": "paced",
            "als_score": 30,
            "scored_at": "2026-11-30T06:00:00-05:00",
        }
        for i in range(LEADS)
    ]
    pipeline.trickle(rows, 8, 0.5)
    wanted = {r["event_id"] for r in rows}
    every = pipeline.every_copy(wanted, 180)
    assert_each_once(every, wanted)

    ny = ZoneInfo("America/New_York")
    by_box: dict[tuple[str, str], list[datetime]] = defaultdict(list)
    for event in wanted:
        [email] = every[event][0]["channels"]
        assert email["status"] == "allocated", email
        at = datetime.fromisoformat(email["send_at"])
        local = at.astimezone(ny)
        assert 9 * 60 <= local.hour * 60 + local.minute < 12 * 60, local  # inside the window
        assert local.weekday() < 5
        by_box[(email["resource_id"], email["usage_day"])].append(at)
    # 3 hours / 2 minutes = 90 sends per mailbox a day: 270 on Monday, the rest on Tuesday.
    per_day = defaultdict(int)
    for (_, day), sends in by_box.items():
        per_day[day] += len(sends)
        sends.sort()
        closest = min((b - a).total_seconds() for a, b in pairwise(sends))
        assert closest >= GAP / 2, (day, closest)
    assert per_day == {"2026-11-30": 270, "2026-12-01": 130}
    print(f"{LEADS} paced sends over 3 mailboxes and 2 workers; days {dict(per_day)}")
