"""`allocator usage`: the live counters, caps, rolling weeks and pools per
resource, read from a real Redis (counters written by the store's own
reserve(), under this test's key prefix) and a SQLite database loaded with
the `load` commands."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from allocator.directory import resource_quota
from allocator.models import Pool, Resource
from allocator.quota.base import ChannelAsk, LeadRequest
from allocator.quota.redis_store import RedisQuotaStore
from streams.cli import main
from streams.local import free_port

DAY = date(2026, 11, 26)
KIRITIMATI = "Pacific/Kiritimati"  # UTC+14: its day is seldom UTC's

CLIENTS: list[dict[str, Any]] = [
    {"client_id": "acme", "timezone": "America/New_York"},
    {"client_id": "beta", "timezone": "UTC"},
    {"client_id": "kiri", "timezone": KIRITIMATI},
]
POOLS: list[dict[str, Any]] = [
    {
        "client_id": "acme",
        "channel": "email",
        "pool_id": "dom-a",
        "daily_limit": 10,
        "weekly_limit": 50,
    },
]
RESOURCES: list[dict[str, Any]] = [
    # cap on DAY: 5 + 3 * ((DAY - start) // 2) = 5 + 3 * (3 // 2) = 8, below 40
    {
        "client_id": "acme",
        "channel": "email",
        "resource_id": "mb-warm",
        "daily_limit": 40,
        "warmup": {"start": "2026-11-23", "initial": 5, "step": 3, "every_days": 2},
    },
    {"client_id": "acme", "channel": "email", "resource_id": "mb-pool-1", "pool_id": "dom-a"},
    {
        "client_id": "acme",
        "channel": "email",
        "resource_id": "mb-pool-2",
        "pool_id": "dom-a",
        "daily_limit": 20,
        "active": False,
    },
    {
        "client_id": "acme",
        "channel": "linkedin",
        "resource_id": "seat-weekly",
        "daily_limit": 8,
        "weekly_limit": 30,
    },
    {"client_id": "acme", "channel": "direct_mail", "resource_id": "vendor-1"},
    {"client_id": "beta", "channel": "voice", "resource_id": "beta-line", "daily_limit": 5},
    {"client_id": "kiri", "channel": "email", "resource_id": "kiri-mb"},
]


def days(back: int) -> date:
    return DAY - timedelta(days=back)


# (resource_id, day, sends): the counters the store's reserve() writes
SENDS: list[tuple[str, date, int]] = [
    ("mb-warm", DAY, 3),
    ("mb-pool-1", DAY, 4),
    ("mb-pool-1", days(2), 3),
    ("mb-pool-2", days(1), 2),  # sent before it was paused
    ("mb-pool-2", days(7), 5),  # a day before the rolling week
    ("seat-weekly", DAY, 2),
    ("seat-weekly", days(3), 4),
    ("seat-weekly", days(6), 5),
    ("seat-weekly", days(7), 6),  # before the week
    ("seat-weekly", DAY + timedelta(days=1), 1),  # after the day
    ("vendor-1", DAY, 1),
    ("beta-line", DAY, 1),
]


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> str:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


async def reserve(
    redis_url: str, prefix: str, sends: list[tuple[str, date, int]], tag: str
) -> None:
    """Count `sends` through RedisQuotaStore.reserve, one lead per send, each
    on the one resource and day it names (and so on its pool)."""
    resources = {r["resource_id"]: Resource.model_validate(r) for r in RESOURCES}
    pools = {(p.channel, p.pool_id): p for p in map(Pool.model_validate, POOLS)}
    store = RedisQuotaStore.from_url(redis_url, prefix=prefix)
    try:
        requests = []
        for resource_id, day, count in sends:
            resource = resources[resource_id]
            quota = resource_quota(resource, pools)
            ask = ChannelAsk(resource.channel, (day,), (quota,))
            requests += [
                LeadRequest(
                    f"{tag}-{resource_id}-{day}-{n}", "plan", (ask,), day, resource.client_id
                )
                for n in range(count)
            ]
        held = await store.reserve(requests)
        assert all(h.picks[0] is not None and h.picks[0].step == 0 for h in held), held
    finally:
        await store.close()


@pytest.fixture
def loaded(
    tmp_path: Path,
    redis_url: str,
    redis_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Iterator[str]:
    """The clients, pools and resources in a SQLite file, SENDS counted in Redis
    under this test's prefix (removed after by the redis_prefix fixture)."""
    for name in list(os.environ):
        if name.startswith("ALLOCATOR_") and not name.startswith("ALLOCATOR_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("ALLOCATOR_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/usage.db")
    monkeypatch.setenv("ALLOCATOR_REDIS_URL", redis_url)
    monkeypatch.setenv("ALLOCATOR_QUOTA_KEY_PREFIX", redis_prefix)
    for table, rows in (("clients", CLIENTS), ("pools", POOLS), ("resources", RESOURCES)):
        assert main([table, "load", write_jsonl(tmp_path / f"{table}.jsonl", rows)]) == 0
    capsys.readouterr()
    asyncio.run(reserve(redis_url, redis_prefix, SENDS, "sends"))
    yield redis_prefix


def usage_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, dict[str, Any]]:
    status = main(["usage", *argv, "--json"])
    out, err = capsys.readouterr()
    assert (status, err) == (0, "")
    return {row["resource_id"]: row for row in json.loads(out)}


def test_counts_caps_weeks_and_pools_of_a_day(
    loaded: str, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = usage_json(capsys, "--client", "acme", "--day", DAY.isoformat())
    assert list(rows) == ["vendor-1", "mb-pool-1", "mb-pool-2", "mb-warm", "seat-weekly"]
    pool = {
        "pool_id": "dom-a",
        "count": 4,
        "daily_limit": 10,
        "week": 4 + 3 + 2,
        "weekly_limit": 50,
    }
    healthy = {"state": "active", "until": None, "reason": None}
    common = {"client_id": "acme", "day": "2026-11-26", "active": True, "health": healthy}
    assert rows["mb-warm"] == {
        **common,
        "channel": "email",
        "resource_id": "mb-warm",
        "count": 3,
        "cap": 8,
        "cap_source": "warmup",
        "week": 3,
        "weekly_limit": None,
        "pool": None,
    }
    assert rows["mb-pool-1"] == {
        **common,
        "channel": "email",
        "resource_id": "mb-pool-1",
        "count": 4,
        "cap": 50,
        "cap_source": "default",
        "week": 4 + 3,
        "weekly_limit": None,
        "pool": pool,
    }
    assert rows["mb-pool-2"] == {
        **common,
        "channel": "email",
        "resource_id": "mb-pool-2",
        "count": 0,
        "cap": 20,
        "cap_source": "daily_limit",
        "week": 2,
        "weekly_limit": None,
        "pool": pool,
        "active": False,
    }
    assert rows["seat-weekly"] == {
        **common,
        "channel": "linkedin",
        "resource_id": "seat-weekly",
        "count": 2,
        "cap": 8,
        "cap_source": "daily_limit",
        "week": 2 + 4 + 5,
        "weekly_limit": 30,
        "pool": None,
    }
    assert rows["vendor-1"] == {
        **common,
        "channel": "direct_mail",
        "resource_id": "vendor-1",
        "count": 1,
        "cap": None,
        "cap_source": "unlimited",
        "week": 1,
        "weekly_limit": None,
        "pool": None,
    }


def test_another_day_and_every_client(loaded: str, capsys: pytest.CaptureFixture[str]) -> None:
    # Three days before: the warm-up's first day (cap 5), the seat's week
    # from days(9) to days(3) holds days(3), days(6) and days(7).
    earlier = usage_json(capsys, "--day", days(3).isoformat())
    assert {row["client_id"] for row in earlier.values()} == {"acme", "beta", "kiri"}
    assert (earlier["mb-warm"]["cap"], earlier["mb-warm"]["cap_source"]) == (5, "warmup")
    assert (earlier["seat-weekly"]["count"], earlier["seat-weekly"]["week"]) == (4, 4 + 5 + 6)
    # Before its start the warm-up allows nothing.
    before = usage_json(capsys, "--client", "acme", "--day", days(4).isoformat())
    assert (before["mb-warm"]["cap"], before["mb-warm"]["cap_source"]) == (0, "warmup")
    on_day = usage_json(capsys, "--day", DAY.isoformat())
    assert on_day["beta-line"]["count"] == 1
    assert (on_day["beta-line"]["cap"], on_day["beta-line"]["week"]) == (5, 1)


def test_without_day_each_client_is_on_its_own_today(
    loaded: str, redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    before = datetime.now(UTC).astimezone(ZoneInfo(KIRITIMATI)).date()
    asyncio.run(reserve(redis_url, loaded, [("kiri-mb", before, 2)], "today"))
    rows = usage_json(capsys, "--client", "kiri")
    after = datetime.now(UTC).astimezone(ZoneInfo(KIRITIMATI)).date()
    row = rows["kiri-mb"]
    assert row["day"] in (before.isoformat(), after.isoformat())
    if before == after:
        assert (row["count"], row["week"], row["cap"]) == (2, 2, 50)


def test_the_table_names_each_resource(loaded: str, capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["usage", "--client", "acme", "--day", DAY.isoformat()])
    out, err = capsys.readouterr()
    assert (status, err) == (0, "")
    assert out.startswith("5 resource(s) of client 'acme', on 2026-11-26")
    for name in ("mb-warm", "mb-pool-1", "mb-pool-2", "seat-weekly", "vendor-1"):
        assert name in out
    for shown in ("8 (warm-up)", "50 (default)", "unlimited", "11 / 30", "4 / 10", "9 / 50"):
        assert shown in out
    assert "no (paused)" in out
    assert "beta-line" not in out


def test_a_client_without_resources(loaded: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert usage_json(capsys, "--client", "nobody") == {}
    assert main(["usage", "--client", "nobody"]) == 0
    assert capsys.readouterr().out.startswith("0 resource(s) of client 'nobody'")


@pytest.mark.parametrize("given", ["2026-02-30", "26-11-2026", "2026-11-26T10:00", "today"])
def test_a_bad_day_is_a_usage_error(
    loaded: str, capsys: pytest.CaptureFixture[str], given: str
) -> None:
    status = main(["usage", "--day", given, "--json"])
    out, err = capsys.readouterr()
    assert status == 2
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"--day {given}: ") and "YYYY-MM-DD" in lines[0]


def test_memory_counters_cannot_be_read(
    loaded: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ALLOCATOR_REDIS_URL", "memory://")
    status = main(["usage", "--day", DAY.isoformat()])
    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith("ALLOCATOR_REDIS_URL=memory://: ")


def test_no_redis_is_said_in_one_line(
    loaded: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    monkeypatch.setenv("ALLOCATOR_REDIS_URL", url)
    status = main(["usage", "--day", DAY.isoformat()])
    lines = capsys.readouterr().err.splitlines()
    assert status == 1
    assert len(lines) == 1
    assert lines[0].startswith(f"Redis at {url} does not answer")
