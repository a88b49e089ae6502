"""The `allocator` commands against real services: loading and listing on SQLite
and PostgreSQL, `leads load` for the library API, `dlq show` on a broker, and
the one- or two-line message (exit status, the variable named) of each service
that is missing or wrong. Messages are read from a child process where a
library could add its own lines to stderr (as aiokafka logs a failed connection).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from sqlalchemy.engine import make_url

from allocator.config import Settings
from allocator.directory import ClientDirectory
from allocator.engine import AllocatorEngine
from allocator.errors import InvalidRecord
from allocator.models import ScoredLead, dead_letter
from allocator.quota import MemoryQuotaStore
from allocator.store import Database
from allocator.store.database import find_lead
from streams.cli import main
from streams.local import ALLOCATOR_COMMAND, free_port
from streams.samples import SAMPLES_DIR
from streams.topics import ensure_topics

CLIENTS = SAMPLES_DIR / "clients.jsonl"
RESOURCES = SAMPLES_DIR / "resources.jsonl"
SQLITE_FOR_CHILDREN = "sqlite+aiosqlite:///{tmp}/child.db"


@pytest.fixture(autouse=True)
def no_allocator_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test sets what it means (the broker fixtures read theirs before this runs)."""
    for name in list(os.environ):
        if name.startswith("ALLOCATOR_") and not name.startswith("ALLOCATOR_TEST_"):
            monkeypatch.delenv(name)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, list[str]]:
    """(exit status, stdout, stderr's lines) of `allocator argv...` in this process."""
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err.splitlines()


def child(*argv: str, **variables: str) -> tuple[int, str, list[str]]:
    """(exit status, stdout, stderr's lines) of `allocator argv...` in a process of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALLOCATOR_")}
    done = subprocess.run(
        [*ALLOCATOR_COMMAND, *argv],
        env={**env, **variables},
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.returncode, done.stdout, done.stderr.splitlines()


def listed(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    status, out, err = run(capsys, *argv, "--json")
    assert (status, err) == (0, [])
    return json.loads(out)


# --- loading and listing, on both databases ----------------------------------


def test_clients_and_resources_load_and_list(
    database: Database, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ALLOCATOR_DATABASE_URL", database.url)
    assert listed(capsys, "clients", "list") == []
    assert run(capsys, "clients", "load", str(CLIENTS)) == (
        0,
        f"loaded 3 clients from {CLIENTS}\n",
        [],
    )
    assert run(capsys, "resources", "load", str(RESOURCES))[:2] == (
        0,
        f"loaded 13 resources from {RESOURCES}\n",
    )

    # Round 2's fields at their defaults: what the worker reads for these clients.
    defaults = {
        "rotation": "least_used",
        "lead_daily_limit": None,
        "recipient_domain_daily_limit": None,
        "send_windows": {},
        "holidays": None,
        "blackout_dates": [],
        "pacing": {},
        "bounce_rate_limit": 0.05,
        "complaint_limit": 3,
        "cooldown_hours": 24,
        "suppression_days": 90,
        "sticky_days": 0,
        "sticky": "prefer",
    }
    assert listed(capsys, "clients", "list") == [
        {"client_id": "acme", "timezone": "America/New_York", "max_defer_days": 2, **defaults},
        {"client_id": "globex", "timezone": "Europe/Berlin", "max_defer_days": 3, **defaults},
        {"client_id": "initech", "timezone": "UTC", "max_defer_days": 0, **defaults},
    ]
    everything = listed(capsys, "resources", "list")
    assert len(everything) == 13
    keys = [(r["client_id"], r["channel"], r["resource_id"]) for r in everything]
    assert keys == sorted(keys)
    acme = listed(capsys, "resources", "list", "--client", "acme")
    assert [r["resource_id"] for r in acme if r["channel"] == "linkedin"] == [
        "acme-seat-1",
        "acme-seat-2",
        "acme-seat-3",
        "acme-seat-4",
    ]
    seat_3, seat_4 = acme[5], acme[6]
    assert seat_3 == {
        "client_id": "acme",
        "channel": "linkedin",
        "resource_type": "linkedin_seat",
        "resource_id": "acme-seat-3",
        "daily_limit": 8,
        "effective_daily_limit": 8,
        "active": True,
        "weekly_limit": None,
        "warmup": None,
        "pool_id": None,
    }
    assert (seat_4["daily_limit"], seat_4["effective_daily_limit"], seat_4["active"]) == (
        None,
        17,  # linkedin_seat's default
        False,
    )
    mail = next(r for r in acme if r["channel"] == "direct_mail")
    assert mail["effective_daily_limit"] is None  # mail vendors are unlimited
    assert listed(capsys, "resources", "list", "--client", "nobody") == []

    # The tables say the same for a person.
    status, out, _ = run(capsys, "clients", "list")
    assert status == 0 and out.startswith("3 client(s)\n")
    assert "America/New_York" in out and "initech" in out
    status, out, _ = run(capsys, "resources", "list", "--client", "acme")
    assert status == 0 and out.startswith("9 resource(s) of client 'acme'\n")
    assert "17 (default)" in out and "no (paused)" in out and "unlimited" in out


def test_the_wrong_file_changes_no_client(
    database: Database, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The newcomer's mistake of issue 10: `clients load resources.jsonl` reset
    every client named there to UTC and the default deferral."""
    monkeypatch.setenv("ALLOCATOR_DATABASE_URL", database.url)
    assert run(capsys, "clients", "load", str(CLIENTS))[0] == 0
    before = listed(capsys, "clients", "list")
    status, out, err = run(capsys, "clients", "load", str(RESOURCES))
    assert (status, out, len(err)) == (1, "", 2)
    assert "line 1" in err[0] and "this looks like a resources file" in err[0]
    assert listed(capsys, "clients", "list") == before
    assert run(capsys, "resources", "load", str(CLIENTS))[0] == 1
    assert listed(capsys, "resources", "list") == []


def test_leads_load_feeds_the_library_api(
    database: Database,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("ALLOCATOR_DATABASE_URL", database.url)
    leads = tmp_path / "leads.jsonl"
    leads.write_text(
        '{"lead_id": "L1", "client_id": "acme", "als_score": 70,'
        ' "scored_at": "2026-11-26T14:00:00Z", "timezone": "America/Chicago"}\n'
        '{"lead_id": "L2", "client_id": "globex", "als_score": 90,'
        ' "scored_at": "2026-11-26T15:00:00+01:00"}\n'
        '{"lead_id": "L1", "client_id": "acme", "als_score": 72,'
        ' "scored_at": "2026-11-26T16:00:00Z", "timezone": "America/Chicago"}\n'
    )
    for kind, path in (("clients", CLIENTS), ("resources", RESOURCES), ("leads", leads)):
        assert run(capsys, kind, "load", str(path))[0] == 0

    async def read_back() -> tuple[ScoredLead | None, ScoredLead | None, list[str]]:
        db = Database(database.url)  # this loop's own engine
        try:
            engine = AllocatorEngine(ClientDirectory(db.load_snapshot, ttl=30), MemoryQuotaStore())
            async with db.session() as session:
                first = await find_lead(session, "L1", "acme")
                second = await find_lead(session, "L2", "globex")
                allocation = await engine.allocate(session, "L1", "acme")
        finally:
            await db.close()
        return first, second, [c.channel.value for c in allocation.channels]

    first, second, channels = asyncio.run(read_back())
    assert first is not None and second is not None
    # The last line of a lead_id wins, as for clients and resources.
    assert (first.als_score, first.timezone) == (72, "America/Chicago")
    assert first.scored_at == datetime(2026, 11, 26, 16, 0, tzinfo=UTC)
    assert (second.als_score, second.scored_at) == (90, datetime(2026, 11, 26, 14, 0, tzinfo=UTC))
    assert channels == ["email", "linkedin", "voice"]  # warm (72): no HOW pattern held


# --- a database that is missing or wrong ---------------------------------------


def test_a_database_that_does_not_exist_is_named_with_the_variable(
    postgres_server: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    name = f"allocator_absent_{uuid.uuid4().hex[:8]}"
    url = make_url(postgres_server).set(database=name).render_as_string(hide_password=False)
    monkeypatch.setenv("ALLOCATOR_DATABASE_URL", url)
    for argv in (["clients", "list"], ["clients", "load", str(CLIENTS)]):
        status, out, err = run(capsys, *argv)
        assert (status, out, len(err)) == (1, "", 1)
        assert err[0].startswith(f'database "{name}" does not exist')
        assert f"createdb {name}" in err[0] and "ALLOCATOR_DATABASE_URL" in err[0]

    # The worker says the same before it starts anything.
    status, _, err = child("worker", "-l", "info", ALLOCATOR_DATABASE_URL=url)
    assert (status, len(err)) == (1, 1) and err[0].startswith(f'database "{name}" does not exist')


def test_a_database_that_does_not_answer_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()  # nobody listens
    monkeypatch.setenv(
        "ALLOCATOR_DATABASE_URL", f"postgresql+asyncpg://postgres:secret@127.0.0.1:{port}/x"
    )
    status, _, err = run(capsys, "resources", "list")
    assert (status, len(err)) == (1, 1)
    assert err[0].startswith(f"database postgresql+asyncpg://postgres:***@127.0.0.1:{port}/x")
    assert "does not answer" in err[0] and "ALLOCATOR_DATABASE_URL" in err[0]


@pytest.mark.parametrize(
    ("url", "fix"),
    [
        ("postgresql://postgres@127.0.0.1:5432/postgres", "postgresql+asyncpg://"),
        ("sqlite:///{tmp}/child.db", "sqlite+aiosqlite:///"),
    ],
    ids=["postgresql-without-asyncpg", "sqlite-without-aiosqlite"],
)
@pytest.mark.parametrize(
    "argv", [["worker", "-l", "info"], ["clients", "load", str(CLIENTS)]], ids=" ".join
)
def test_a_synchronous_driver_is_refused_before_any_work(
    tmp_path: Path, url: str, fix: str, argv: list[str]
) -> None:
    status, out, err = child(*argv, ALLOCATOR_DATABASE_URL=url.format(tmp=tmp_path))
    assert (status, out, len(err)) == (2, "", 1)
    assert err[0].startswith("ALLOCATOR_DATABASE_URL=") and fix in err[0]
    assert not (tmp_path / "child.db").exists()


# --- the broker and Redis ------------------------------------------------------


def test_no_broker_names_the_variable_and_the_address(tmp_path: Path) -> None:
    servers = f"127.0.0.1:{free_port()}"
    database = SQLITE_FOR_CHILDREN.format(tmp=tmp_path)
    for argv in (["topics", "create"], ["dlq", "show"], ["worker", "-l", "info"]):
        status, out, err = child(
            *argv, ALLOCATOR_KAFKA_BOOTSTRAP_SERVERS=servers, ALLOCATOR_DATABASE_URL=database
        )
        assert (status, out) == (1, ""), argv
        assert len(err) == 1, err
        assert err[0].startswith(f"no Kafka broker answers at {servers}")
        assert "ALLOCATOR_KAFKA_BOOTSTRAP_SERVERS" in err[0]


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    servers = f"127.0.0.1:{free_port()}"
    status, _, err = child("--debug", "topics", "create", ALLOCATOR_KAFKA_BOOTSTRAP_SERVERS=servers)
    assert status == 1
    assert "Traceback (most recent call last):" in err  # after aiokafka's own log line
    assert "KafkaConnectionError" in err[-1]


def test_a_replay_on_redis_that_does_not_answer_names_the_variable(tmp_path: Path) -> None:
    leads = tmp_path / "leads.jsonl"
    leads.write_text(
        '{"lead_id": "L1", "client_id": "acme", "als_score": 70,'
        ' "scored_at": "2026-11-26T14:00:00Z"}\n'
    )
    url = f"redis://127.0.0.1:{free_port()}/0"
    status, _, err = child(
        "replay",
        "--leads",
        str(leads),
        "--clients",
        str(CLIENTS),
        "--resources",
        str(RESOURCES),
        "--out",
        str(tmp_path / "out.jsonl"),
        "--redis-namespace",
        "cli-test",
        "--quiet",
        ALLOCATOR_REDIS_URL=url,
    )
    assert (status, len(err)) == (1, 1), err
    assert err[0].startswith(f"Redis at {url} does not answer")
    assert "ALLOCATOR_REDIS_URL" in err[0]


# --- dlq show --------------------------------------------------------------------


def _dead_letters(bootstrap: str, topic: str) -> None:
    """Five dead letters as the worker writes them, and one record no worker wrote."""
    asyncio.run(ensure_topics(Settings(kafka_bootstrap_servers=bootstrap), [topic]))
    producer = Producer({"bootstrap.servers": bootstrap})
    failed_at = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    cases = [
        ("missing_field", b'{"client_id": "acme"}', "lead_id: required field is missing"),
        ("invalid_json", b"{not json", "not JSON: Expecting property name"),
        ("invalid_json", b'{"lead_id": [1', "not JSON: Expecting value"),
        ("out_of_range", b'{"als_score": 170}', "als_score: must be in 0..100, got 170"),
        ("invalid_encoding", b"caf\xe9", "not UTF-8"),
    ]
    for offset, (code, raw, message) in enumerate(cases, start=80):
        error = InvalidRecord(code, None, None, message)
        letter = dead_letter("scored-leads", 1, offset, b"lead-%d" % offset, raw, error, failed_at)
        producer.produce(topic, letter.model_dump_json().encode(), key=b"lead")
    producer.produce(topic, b"hello from someone else", key=b"other")
    assert producer.flush(30) == 0


def test_dlq_show_counts_by_code_and_lists_the_records(
    broker_bootstrap: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    topic = f"dlq-cli-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("ALLOCATOR_KAFKA_BOOTSTRAP_SERVERS", broker_bootstrap)
    monkeypatch.setenv("ALLOCATOR_TOPIC_DLQ", topic)
    _dead_letters(broker_bootstrap, topic)

    shown = listed(capsys, "dlq", "show")
    assert (shown["topic"], shown["total"], shown["since"], shown["code"]) == (topic, 6, None, None)
    assert shown["by_code"] == {
        "invalid_json": 2,
        "missing_field": 1,
        "out_of_range": 1,
        "invalid_encoding": 1,
        "(not a dead letter)": 1,
    }
    assert len(shown["records"]) == 6
    letters = {r["offset"]: r for r in shown["records"] if r["error_code"] != "(not a dead letter)"}
    # Where on the DLQ topic a record sits is the broker's choice.
    assert letters[83] | {"dlq_partition": 0, "dlq_offset": 0} == {
        "dlq_partition": 0,
        "dlq_offset": 0,
        "error_code": "out_of_range",
        "source_topic": "scored-leads",
        "partition": 1,
        "offset": 83,
        "key": "lead-83",
        "raw_value": '{"als_score": 170}',
        "raw_length": 18,
        "raw_sha256": hashlib.sha256(b'{"als_score": 170}').hexdigest(),
        "error": "als_score: must be in 0..100, got 170",
        "failed_at": "2026-11-26T12:00:00+00:00",
    }
    assert letters[84]["raw_value"] == "Y2Fm6Q=="  # not UTF-8: base64, as the DLQ keeps it

    only = listed(capsys, "dlq", "show", "--code", "invalid_json")
    assert (only["total"], only["by_code"]) == (2, {"invalid_json": 2})
    assert sorted(r["offset"] for r in only["records"]) == [81, 82]
    assert len(listed(capsys, "dlq", "show", "--limit", "2")["records"]) == 2
    later = listed(capsys, "dlq", "show", "--since", "2099-01-01T00:00:00Z")
    assert (later["total"], later["records"]) == (0, [])
    assert listed(capsys, "dlq", "show", "--since", "1h")["total"] == 6  # produced just now

    status, out, err = run(capsys, "dlq", "show", "--code", "out_of_range")
    assert (status, err) == (0, [])
    assert out.startswith(f"1 dead letter(s) on {topic} with error_code out_of_range\n")
    assert "scored-leads/1@83" in out and "lead-83" in out and '{"als_score": 170}' in out


def test_dlq_show_of_a_topic_that_does_not_exist_names_the_variable(
    broker_bootstrap: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    topic = f"dlq-absent-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("ALLOCATOR_KAFKA_BOOTSTRAP_SERVERS", broker_bootstrap)
    monkeypatch.setenv("ALLOCATOR_TOPIC_DLQ", topic)
    status, out, err = run(capsys, "dlq", "show")
    assert (status, out, len(err)) == (1, "", 1)
    assert err[0].startswith(f"topic '{topic}' (ALLOCATOR_TOPIC_DLQ) does not exist")
