"""Loaders, pattern persistence and the library API on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from allocator.directory import ClientDirectory
from allocator.engine import AllocatorEngine
from allocator.errors import LoadError
from allocator.models import Resource
from allocator.quota import MemoryQuotaStore
from allocator.store import Database, schema
from allocator.store.database import (
    patterns_for,
    save_pattern,
    upsert_leads,
    upsert_resources,
)
from allocator.store.loaders import load_clients, load_resources
from streams.cli import main
from streams.local import free_port
from tests.factories import how, lead, when


def jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


CLIENTS = [
    {"client_id": "acme", "timezone": "America/New_York", "max_defer_days": 2},
    {"client_id": "globex"},
]
RESOURCES = [
    {"client_id": "acme", "channel": "linkedin", "resource_id": "seat-1"},
    {"client_id": "acme", "channel": "linkedin", "resource_id": "seat-2", "daily_limit": 5},
    {"client_id": "acme", "channel": "email", "resource_id": "acme.io", "active": False},
    {"client_id": "globex", "channel": "email", "resource_id": "globex.com"},
]


async def test_load_is_an_upsert(database: Database, tmp_path: Path) -> None:
    assert await load_clients(database, jsonl(tmp_path / "c.jsonl", CLIENTS)) == 2
    assert await load_resources(database, jsonl(tmp_path / "r.jsonl", RESOURCES)) == 4
    changed = [
        {
            "client_id": "acme",
            "channel": "linkedin",
            "resource_id": "seat-1",
            "daily_limit": 9,
            "active": False,
        }
    ]
    await load_resources(database, jsonl(tmp_path / "r2.jsonl", changed))
    snapshot = await database.load_snapshot()
    acme = snapshot["acme"]
    assert acme.client.timezone == "America/New_York" and acme.client.max_defer_days == 2
    assert [(q.resource_id, q.limit) for q in acme.quotas_for("linkedin")] == [("seat-2", 5)]  # type: ignore[arg-type]
    assert acme.quotas_for("email") == ()  # type: ignore[arg-type]
    assert snapshot["globex"].client.timezone == "UTC"
    assert len(acme.resources) == 3


async def test_bad_line_writes_nothing_and_names_line(database: Database, tmp_path: Path) -> None:
    rows = [
        *RESOURCES[:2],
        {"client_id": "acme", "channel": "fax", "resource_id": "x"},
        "{broken",
        RESOURCES[3],
    ]
    with pytest.raises(LoadError) as caught:
        await load_resources(database, jsonl(tmp_path / "r.jsonl", rows))
    assert [n for n, _ in caught.value.problems] == [3, 4]
    assert "line 3" in str(caught.value) and "fax" in str(caught.value)
    assert await database.load_snapshot() == {}


def many_resources(count: int) -> list[dict[str, object]]:
    # More lines than one PostgreSQL statement can bind (32,767 parameters, 5 per row).
    return [
        {"client_id": "acme", "channel": "email", "resource_id": f"d{i}.io", "daily_limit": i % 50}
        for i in range(count)
    ]


async def resource_count(database: Database) -> int:
    async with database.session() as db:
        return int(
            (await db.execute(select(func.count()).select_from(schema.resources))).scalar_one()
        )


async def test_any_number_of_lines_and_the_last_line_of_a_key_wins(
    database: Database, tmp_path: Path
) -> None:
    clients = [*CLIENTS, {"client_id": "acme", "timezone": "Europe/Paris"}]
    assert await load_clients(database, jsonl(tmp_path / "c.jsonl", clients)) == 3
    rows = many_resources(20_000)
    rows.insert(
        3, {"client_id": "acme", "channel": "email", "resource_id": "d7.io", "daily_limit": 1}
    )
    rows.append(
        {
            "client_id": "acme",
            "channel": "email",
            "resource_id": "d7.io",
            "daily_limit": 99,
            "active": False,
        }
    )
    assert await load_resources(database, jsonl(tmp_path / "r.jsonl", rows)) == 20_002
    assert await resource_count(database) == 20_000
    acme = (await database.load_snapshot())["acme"]
    assert acme.client.timezone == "Europe/Paris" and acme.client.max_defer_days == 3
    by_id = {r.resource_id: r for r in acme.resources}
    assert (by_id["d7.io"].daily_limit, by_id["d7.io"].active) == (99, False)
    assert by_id["d19999.io"].daily_limit == 19_999 % 50


async def test_a_long_upsert_is_one_transaction(database: Database) -> None:
    resources = [Resource.model_validate(r) for r in many_resources(20_000)]
    with pytest.raises(RuntimeError):
        async with database.session() as db, db.begin():
            await upsert_resources(db, resources)
            raise RuntimeError("the load fails after its last statement")
    assert await resource_count(database) == 0


def cli_load(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, table: str, path: Path) -> int:
    monkeypatch.setenv("ALLOCATOR_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/cli.db")
    return main([table, "load", str(path)])


def written(tmp_path: Path, table: str) -> int:
    if not (tmp_path / "cli.db").exists():
        return 0
    with sqlite3.connect(tmp_path / "cli.db") as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


@pytest.mark.parametrize(
    "bad",
    [
        b'{"client_id": "x", "timezone": "America"}',  # a directory of the zone database
        b'{"client_id": "caf\xe9"}',  # Latin-1, not UTF-8
        b"[" * 100_000,
    ],  # deeper than the JSON parser goes
    ids=["zone-directory", "not-utf8", "too-deep"],
)
def test_cli_load_names_any_bad_line_and_writes_nothing(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    bad: bytes,
) -> None:
    path = tmp_path / "c.jsonl"
    path.write_bytes(b'{"client_id": "a"}\n' + bad + b'\n{"client_id": "b"}\n')
    assert cli_load(monkeypatch, tmp_path, "clients", path) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"{path}: 1 bad line(s), nothing written"
    assert err[1].startswith("  line 2: ") and len(err) == 2
    assert written(tmp_path, "clients") == 0


def test_cli_load_of_a_missing_file_or_a_directory_is_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_load(monkeypatch, tmp_path, "resources", tmp_path / "absent.jsonl") == 1
    assert capsys.readouterr().err == f"{tmp_path / 'absent.jsonl'}: No such file or directory\n"
    assert cli_load(monkeypatch, tmp_path, "resources", tmp_path) == 1
    assert capsys.readouterr().err == f"{tmp_path}: Is a directory\n"


def test_cli_load_into_an_unreachable_database_is_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # (A SQLite file that cannot be opened says so the same way; it is not run
    # here because aiosqlite's worker thread then outlives the loop and pytest
    # reports that thread's error against a later test.)
    url = f"postgresql+asyncpg://postgres:secret@127.0.0.1:{free_port()}/x"  # nobody listens
    monkeypatch.setenv("ALLOCATOR_DATABASE_URL", url)
    assert main(["clients", "load", str(jsonl(tmp_path / "c.jsonl", CLIENTS))]) == 1
    err = capsys.readouterr().err
    assert err.startswith("database ") and err.count("\n") == 1 and "secret" not in err


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
            "2026-11-27T09:00:00-05:00"
        )
        assert (await engine.get_optimal_send_time(db, "acme", "linkedin")).isoformat() == (
            "2026-11-30T08:00:00-05:00"
        )

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
