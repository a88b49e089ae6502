"""Loaders, pattern persistence and the library API on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from allocator.directory import ClientDirectory
from allocator.engine import AllocatorEngine
from allocator.errors import LoadError
from allocator.quota import MemoryQuotaStore
from allocator.store import Database
from allocator.store.database import patterns_for, save_pattern, upsert_leads
from allocator.store.loaders import load_clients, load_resources
from tests.factories import how, lead, when


def jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


CLIENTS = [{"client_id": "acme", "timezone": "America/New_York", "max_defer_days": 2},
           {"client_id": "globex"}]
RESOURCES = [
    {"client_id": "acme", "channel": "linkedin", "resource_id": "seat-1"},
    {"client_id": "acme", "channel": "linkedin", "resource_id": "seat-2", "daily_limit": 5},
    {"client_id": "acme", "channel": "email", "resource_id": "acme.io", "active": False},
    {"client_id": "globex", "channel": "email", "resource_id": "globex.com"},
]


async def test_load_is_an_upsert(database: Database, tmp_path: Path) -> None:
    assert await load_clients(database, jsonl(tmp_path / "c.jsonl", CLIENTS)) == 2
    assert await load_resources(database, jsonl(tmp_path / "r.jsonl", RESOURCES)) == 4
    changed = [{"client_id": "acme", "channel": "linkedin", "resource_id": "seat-1",
                "daily_limit": 9, "active": False}]
    await load_resources(database, jsonl(tmp_path / "r2.jsonl", changed))
    snapshot = await database.load_snapshot()
    acme = snapshot["acme"]
    assert acme.client.timezone == "America/New_York" and acme.client.max_defer_days == 2
    assert [(q.resource_id, q.limit) for q in acme.quotas_for("linkedin")] == [("seat-2", 5)]  # type: ignore[arg-type]
    assert acme.quotas_for("email") == ()  # type: ignore[arg-type]
    assert snapshot["globex"].client.timezone == "UTC"
    assert len(acme.resources) == 3


async def test_bad_line_writes_nothing_and_names_line(database: Database, tmp_path: Path) -> None:
    rows = [*RESOURCES[:2], {"client_id": "acme", "channel": "fax", "resource_id": "x"},
            "{broken", RESOURCES[3]]
    with pytest.raises(LoadError) as caught:
        await load_resources(database, jsonl(tmp_path / "r.jsonl", rows))
    assert [n for n, _ in caught.value.problems] == [3, 4]
    assert "line 3" in str(caught.value) and "fax" in str(caught.value)
    assert await database.load_snapshot() == {}


async def test_pattern_persistence_keeps_latest(database: Database) -> None:
    async with database.session() as db, db.begin():
        await save_pattern(db, how(["sms"], updated_at="2026-02-01T00:00:00Z"))
        await save_pattern(db, how(["voice"], updated_at="2026-01-01T00:00:00Z"))  # older
        await save_pattern(db, when("email", 1, 8, updated_at="2026-01-05T00:00:00+02:00"))
        await save_pattern(db, when("email", 2, 9, updated_at="2026-01-05T00:00:00+01:00"))
    async with database.session() as db:
        held = await patterns_for(db, "acme")
    assert held.how is not None and [c.value for c in held.how.winning_sequence] == ["sms"]
    assert held.when["email"].optimal_day == 2  # type: ignore[index]


async def test_library_api(database: Database, tmp_path: Path) -> None:
    await load_clients(database, jsonl(tmp_path / "c.jsonl", CLIENTS))
    await load_resources(database, jsonl(tmp_path / "r.jsonl", RESOURCES))
    directory = ClientDirectory(database.load_snapshot, ttl=0.001)
    clock = lambda: datetime(2026, 11, 26, 15, 0, tzinfo=UTC)  # noqa: E731  Thu 10:00 New York
    engine = AllocatorEngine(directory, MemoryQuotaStore(), clock=clock)
    async with database.session() as db, db.begin():
        await upsert_leads(db, [lead(70, "2026-11-26T14:00:00Z", lead_id="L1")])
        await save_pattern(db, how(["voice", "linkedin", "email"]))
        await save_pattern(db, when("linkedin", 0, 8))
    async with database.session() as db:
        allocation = await engine.allocate(db, "L1", "acme")
        assert [c.channel.value for c in allocation.channels] == ["voice", "linkedin", "email"]
        linkedin = allocation.channels[1]
        assert (linkedin.status, linkedin.resource_id) == ("allocated", "seat-1")
        assert linkedin.send_at.isoformat() == "2026-11-30T08:00:00-05:00"  # type: ignore[union-attr]
        assert allocation.channels[2].status == "no_resource"  # acme.io is paused
        assert await engine.allocate(db, "L1", "acme") == allocation  # idempotent per score
        with pytest.raises(LookupError):
            await engine.allocate(db, "nope", "acme")

        assert await engine.get_channel_sequence(db, "acme", "cool") == ["linkedin", "email"]
        assert (await engine.get_optimal_send_time(db, "acme", "email")).isoformat() == (
            "2026-11-27T09:00:00-05:00")
        assert (await engine.get_optimal_send_time(db, "acme", "linkedin")).isoformat() == (
            "2026-11-30T08:00:00-05:00")

    # Today's counters (26 Nov in New York): seat-2 has a limit of 5.
    seat = await engine.select_resource("linkedin", "acme")
    assert seat is not None and seat.resource_id == "seat-1"
    for expected in range(1, 6):
        assert await engine.increment_usage("linkedin_seat", "seat-2") == expected
    assert await engine.check_rate_limit("linkedin_seat", "seat-2") is True
    assert await engine.check_rate_limit("linkedin_seat", "seat-1") is False
    await engine.increment_usage("linkedin_seat", "seat-1")
    seat = await engine.select_resource("linkedin", "acme")
    assert seat is not None and seat.resource_id == "seat-1"  # seat-2 is full
    assert await engine.select_resource("email", "acme") is None


async def test_directory_sees_changes_within_ttl(database: Database, tmp_path: Path) -> None:
    now = [0.0]
    directory = ClientDirectory(database.load_snapshot, ttl=5.0, clock=lambda: now[0])
    assert await directory.snapshot() == {}
    await load_clients(database, jsonl(tmp_path / "c.jsonl", CLIENTS))
    now[0] = 4.9
    assert await directory.snapshot() == {}  # cached
    now[0] = 5.0
    assert set(await directory.snapshot()) == {"acme", "globex"}
