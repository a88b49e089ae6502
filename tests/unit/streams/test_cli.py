"""The `allocator` command without services: its help, its usage and
configuration errors (one or two lines naming the flag or variable, exit 2),
the clients/resources/leads files it refuses, and the error mapping.

What needs a database, a broker or Redis is in tests/integration/test_cli.py.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path

import pytest
import redis.exceptions
from aiokafka.errors import KafkaConnectionError
from rich.console import Console

from allocator.config import masked
from allocator.errors import InvalidRecord, LoadError, ServiceUnavailable
from allocator.models import dead_letter
from allocator.store.loaders import WrongFile, read_clients, read_leads, read_resources
from allocator.store.urls import check_database_url, database_url_problem
from streams.cli import main
from streams.commands import dlq
from streams.commands.errors import RUNTIME, USAGE, CommandError, explain
from streams.commands.output import cell
from streams.commands.worker import HELP
from streams.samples import SAMPLES_DIR

COMMANDS = (
    "worker",
    "demo",
    "topics",
    "clients",
    "resources",
    "pools",
    "leads",
    "dlq",
    "broker",
    "samples",
    "send",
    "read",
    "usage",
    "replay",
)
CLIENTS = SAMPLES_DIR / "clients.jsonl"
RESOURCES = SAMPLES_DIR / "resources.jsonl"


@pytest.fixture(autouse=True)
def no_allocator_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test sets what it means; nothing of the caller's shell leaks in."""
    for name in list(os.environ):
        if name.startswith("ALLOCATOR_"):
            monkeypatch.delenv(name)


@pytest.fixture
def sqlite_url(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """ALLOCATOR_DATABASE_URL at a SQLite file of the test's own; the file's path."""
    path = tmp_path / "cli.db"
    monkeypatch.setenv("ALLOCATOR_DATABASE_URL", f"sqlite+aiosqlite:///{path}")
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, list[str]]:
    """(exit status, stdout, stderr's lines) of `allocator argv...` in this process."""
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err.splitlines()


# --- help and version -------------------------------------------------------


def test_help_lists_each_command_once_with_its_description(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status, out, _ = run(capsys, "--help")
    assert status == 0
    section = out.split("\ncommands:\n")[1].split("\n\n")[0].splitlines()
    names = [line.split()[0] for line in section if line.startswith("    ") and line.split()]
    assert names == list(COMMANDS)
    for line in section:
        assert len(line.split()) > 1, f"a command without a description: {line!r}"
    for command in COMMANDS:
        assert out.count(f"\n    {command} ") == 1


@pytest.mark.parametrize(
    "argv",
    [
        ["demo"],
        ["topics"],
        ["topics", "create"],
        ["clients"],
        ["clients", "load"],
        ["clients", "list"],
        ["resources", "list"],
        ["leads", "load"],
        ["dlq"],
        ["dlq", "show"],
        ["replay"],
    ],
    ids=" ".join,
)
def test_every_command_has_a_description(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    status, out, _ = run(capsys, *argv, "--help")
    assert status == 0
    description = out.split("\n\n")[1]
    assert description.strip() and not description.startswith(("options:", "positional"))


def test_version_is_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "--version")
    assert (status, out) == (0, f"allocator {version('allocator')}\n")


@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_worker_help_is_ours_and_needs_no_service(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, flag: str
) -> None:
    # Nothing answers here: the help must not try to reach a broker or a database.
    monkeypatch.setenv("ALLOCATOR_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    monkeypatch.setenv("ALLOCATOR_DATABASE_URL", "postgresql+asyncpg://x@127.0.0.1:1/x")
    status, out, err = run(capsys, "worker", flag)
    assert (status, out, err) == (0, HELP, [])
    for option in ("-l, --loglevel", "--web-port", "faust"):
        assert option in out


# --- usage and configuration errors: exit 2, at most two lines ---------------


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["clients"], "ACTION"),
        (["topics", "delete"], "delete"),
        (["nope"], "nope"),
        (["dlq", "show", "--since", "yesterday"], "--since yesterday"),
        (["dlq", "show", "--since", "2026-11-26T13:00:00"], "no UTC offset"),
        (["dlq", "show", "--code", "bogus"], "--code bogus"),
        (["dlq", "show", "--limit", "-1"], "--limit -1"),
        (["dlq", "show", "--limit", "ten"], "--limit"),
        (["clients", "list", "--client", "acme"], "--client"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else "",
)
def test_usage_errors_are_two_lines_at_most(
    capsys: pytest.CaptureFixture[str], argv: list[str], named: str
) -> None:
    status, out, err = run(capsys, *argv)
    assert status == USAGE
    assert out == "" and 1 <= len(err) <= 2 and named in err[0]


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("postgresql://postgres:secret@127.0.0.1/db", "postgresql+asyncpg://"),
        ("postgresql+psycopg2://postgres:secret@127.0.0.1/db", "postgresql+asyncpg://"),
        ("postgres://postgres:secret@127.0.0.1/db", "postgresql+asyncpg://"),
        ("sqlite:///./allocator.db", "sqlite+aiosqlite:///./allocator.db"),
        ("mysql+aiomysql://u:secret@h/db", "postgresql+asyncpg://"),
        ("not a url", "sqlite+aiosqlite://"),
        ("postgresql+asyncpg://u:secret@h:99999/db", "port 99999"),
        ("sqlite+aiosqlite:///./no/such/folder/a.db", "no/such/folder/"),
    ],
)
@pytest.mark.parametrize("command", [["clients", "list"], ["resources", "load", str(RESOURCES)]])
def test_an_unusable_database_url_is_one_line_naming_the_variable_and_the_fix(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    url: str,
    named: str,
    command: list[str],
) -> None:
    monkeypatch.setenv("ALLOCATOR_DATABASE_URL", url)
    status, out, err = run(capsys, *command)
    assert (status, out, len(err)) == (USAGE, "", 1)
    assert err[0].startswith("ALLOCATOR_DATABASE_URL=") and named in err[0]
    assert "secret" not in err[0]


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+asyncpg://user:pw@db.example:5432/allocator",
        "sqlite+aiosqlite:///./allocator.db",
        "sqlite+aiosqlite:///:memory:",
        "sqlite+aiosqlite://",
    ],
)
def test_usable_database_urls_pass_the_check(url: str) -> None:
    assert database_url_problem(url) is None
    check_database_url(url)


def test_a_database_url_is_shown_without_its_password() -> None:
    assert masked("postgresql+asyncpg://u:hunter2@h/db") == "postgresql+asyncpg://u:***@h/db"
    assert masked("not a url") == "not a url"
    assert masked("redis://:p@[::1]:6379/0") == "redis://:***@[::1]:6379/0"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("ALLOCATOR_TOPIC_PARTITIONS", "x"),
        ("ALLOCATOR_BATCH_SIZE", "0"),
        ("ALLOCATOR_PROCESSING_GUARANTEE", "twice"),
    ],
)
def test_a_bad_setting_is_one_line_naming_the_variable(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    status, _, err = run(capsys, "topics", "create")
    assert (status, len(err)) == (USAGE, 1)
    assert err[0].startswith(f"{variable}={value}: ")


def test_debug_shows_the_traceback_instead(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALLOCATOR_DATABASE_URL", "sqlite:///x.db")
    with pytest.raises(ValueError, match="ALLOCATOR_DATABASE_URL"):
        main(["--debug", "clients", "list"])
    with pytest.raises(ValueError, match="ALLOCATOR_DATABASE_URL"):
        main(["clients", "list", "--debug"])


# --- files: the wrong kind, bad lines, missing files --------------------------


def test_a_resources_file_given_to_clients_load_is_refused_naming_its_line(
    capsys: pytest.CaptureFixture[str], sqlite_url: Path
) -> None:
    status, out, err = run(capsys, "clients", "load", str(RESOURCES))
    assert (status, out, len(err)) == (RUNTIME, "", 2)
    assert err[0].startswith(f"{RESOURCES}: line 1 (and 12 more) has channel or resource_id")
    assert "this looks like a resources file; nothing written" in err[0]
    assert err[1] == f"  load it with: allocator resources load {RESOURCES}"
    assert not sqlite_url.exists()  # refused before the database was opened


def test_a_clients_file_given_to_resources_load_is_refused_naming_its_line(
    capsys: pytest.CaptureFixture[str], sqlite_url: Path
) -> None:
    status, _, err = run(capsys, "resources", "load", str(CLIENTS))
    assert (status, len(err)) == (RUNTIME, 2)
    assert err[0].startswith(f"{CLIENTS}: line 1 (and 2 more) has no channel or resource_id")
    assert "this looks like a clients file" in err[0]
    assert err[1] == f"  load it with: allocator clients load {CLIENTS}"
    assert not sqlite_url.exists()


def test_one_resource_line_among_clients_is_named_with_the_other_bad_lines(
    tmp_path: Path,
) -> None:
    path = tmp_path / "clients.jsonl"
    path.write_text(
        '{"client_id": "a"}\n'
        '{"client_id": "a", "channel": "email", "resource_id": "a.io"}\n'
        '{"client_id": "b", "timezone": "Nowhere/Else"}\n'
    )
    with pytest.raises(LoadError) as caught:
        read_clients(path)
    assert not isinstance(caught.value, WrongFile)
    assert [n for n, _ in caught.value.problems] == [2, 3]
    assert "this looks like a resources file" in caught.value.problems[0][1].message
    assert caught.value.problems[0][1].field == "channel"


def test_the_sample_files_are_read_as_their_own_kind() -> None:
    assert len(read_clients(CLIENTS)) == 3
    assert len(read_resources(RESOURCES)) == 13
    with pytest.raises(WrongFile):
        read_clients(RESOURCES)
    with pytest.raises(WrongFile):
        read_resources(CLIENTS)


def test_a_resource_with_only_one_of_its_keys_is_a_bad_resource_not_a_wrong_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "resources.jsonl"
    path.write_text('{"client_id": "a", "channel": "email"}\n')
    with pytest.raises(LoadError) as caught:
        read_resources(path)
    assert not isinstance(caught.value, WrongFile)
    assert caught.value.problems[0][1].message == "resource_id: required field is missing"


def test_leads_files_are_checked_line_by_line(tmp_path: Path) -> None:
    path = tmp_path / "leads.jsonl"
    path.write_text(
        '{"lead_id": "L1", "client_id": "acme", "als_score": 70,'
        ' "scored_at": "2026-11-26T14:00:00Z"}\n'
        '{"lead_id": "L2", "client_id": "acme", "als_score": 170,'
        ' "scored_at": "2026-11-26T14:00:00Z"}\n'
    )
    with pytest.raises(LoadError) as caught:
        read_leads(path)
    assert [(n, e.field) for n, e in caught.value.problems] == [(2, "als_score")]


def test_leads_load_of_a_bad_file_writes_nothing(
    capsys: pytest.CaptureFixture[str], sqlite_url: Path, tmp_path: Path
) -> None:
    path = tmp_path / "leads.jsonl"
    path.write_text('{"lead_id": "L1", "client_id": "acme", "als_score": 70}\n')
    status, _, err = run(capsys, "leads", "load", str(path))
    assert (status, len(err)) == (RUNTIME, 2)
    assert err == [f"{path}: 1 bad line(s), nothing written", "  line 1: " + err[1][10:]]
    assert "scored_at" in err[1]
    assert not sqlite_url.exists()


def test_leads_load_of_a_missing_file_is_one_line(
    capsys: pytest.CaptureFixture[str], sqlite_url: Path, tmp_path: Path
) -> None:
    status, _, err = run(capsys, "leads", "load", str(tmp_path / "absent.jsonl"))
    assert (status, err) == (RUNTIME, [f"{tmp_path / 'absent.jsonl'}: No such file or directory"])


def test_loaded_rows_reach_the_database(
    capsys: pytest.CaptureFixture[str], sqlite_url: Path
) -> None:
    assert run(capsys, "clients", "load", str(CLIENTS))[:2] == (
        0,
        f"loaded 3 clients from {CLIENTS}\n",
    )
    with sqlite3.connect(sqlite_url) as conn:
        assert conn.execute("SELECT count(*) FROM clients").fetchone()[0] == 3


# --- the error mapping -------------------------------------------------------


def test_an_unreachable_broker_names_the_variable_and_the_address(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ALLOCATOR_KAFKA_BOOTSTRAP_SERVERS", "kafka-1:9092,kafka-2:9092")
    error = explain(KafkaConnectionError("Unable to bootstrap from [('kafka-1', 9092, ...)]"))
    assert error.status == RUNTIME and "\n" not in error.message
    assert "kafka-1:9092,kafka-2:9092" in error.message
    assert "ALLOCATOR_KAFKA_BOOTSTRAP_SERVERS" in error.message


@pytest.mark.parametrize(
    "failure",
    [
        redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:6390."),
        ServiceUnavailable("redis", redis.exceptions.TimeoutError("Timeout reading")),
    ],
)
def test_an_unreachable_redis_names_the_variable_and_the_url(
    monkeypatch: pytest.MonkeyPatch, failure: Exception
) -> None:
    monkeypatch.setenv("ALLOCATOR_REDIS_URL", "redis://:hunter2@cache:6390/0")
    error = explain(failure)
    assert error.status == RUNTIME and "\n" not in error.message
    assert error.message.startswith("Redis at redis://:***@cache:6390/0 does not answer")
    assert "ALLOCATOR_REDIS_URL" in error.message and "hunter2" not in error.message


def test_a_database_outage_names_the_database_and_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ALLOCATOR_DATABASE_URL", "postgresql+asyncpg://u:pw@db:5432/allocator")
    refused = ConnectionRefusedError(111, "Connect call failed ('10.0.0.7', 5432)")
    error = explain(ServiceUnavailable("database", refused))
    assert error.message == (
        "database postgresql+asyncpg://u:***@db:5432/allocator does not answer "
        "(Connect call failed ('10.0.0.7', 5432)): start it or fix ALLOCATOR_DATABASE_URL"
    )
    unknown = ServiceUnavailable("database", socket.gaierror(-2, "Name or service not known"))
    assert "its host is unknown" in explain(unknown).message


def test_an_unforeseen_failure_is_two_lines_pointing_at_debug() -> None:
    error = explain(ZeroDivisionError("division by zero\nmore detail"))
    assert error.status == RUNTIME
    assert error.message.splitlines() == [
        "unexpected ZeroDivisionError: division by zero",
        "  run the command again as `allocator --debug ...` for the traceback",
    ]


def test_a_command_error_is_its_own_explanation() -> None:
    mine = CommandError("--since x: no", USAGE)
    assert explain(mine) is mine


# --- dlq show: its options and what it makes of a record ----------------------

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", NOW - timedelta(seconds=90)),
        ("30m", NOW - timedelta(minutes=30)),
        ("2h", NOW - timedelta(hours=2)),
        ("7d", NOW - timedelta(days=7)),
        ("1w", NOW - timedelta(weeks=1)),
        ("2026-11-26T13:00:00Z", datetime(2026, 11, 26, 13, 0, tzinfo=UTC)),
        ("2026-11-26T08:00:00-05:00", datetime(2026, 11, 26, 13, 0, tzinfo=UTC)),
    ],
)
def test_since_is_a_duration_back_from_now_or_a_time(text: str, expected: datetime) -> None:
    assert dlq.parse_since(text, NOW) == expected


@pytest.mark.parametrize("text", ["yesterday", "2h30m", "-2h", "2026-11-26T13:00:00", ""])
def test_a_since_that_is_neither_is_a_usage_error(text: str) -> None:
    with pytest.raises(CommandError) as caught:
        dlq.parse_since(text, NOW)
    assert caught.value.status == USAGE and caught.value.message.startswith(f"--since {text}")


def test_a_dlq_record_is_read_back_whole_and_a_foreign_one_is_kept() -> None:
    letter = dead_letter(
        "scored-leads",
        2,
        81,
        b"lead-9",
        b"{not json",
        InvalidRecord("invalid_json", None, None, "not JSON: Expecting property name"),
        NOW,
    )
    read = dlq.entry(0, 5, 1_000, letter.model_dump_json().encode())
    assert read.letter == letter and read.code == "invalid_json" and read.when == NOW
    data = dlq.as_json(read)
    assert (data["dlq_partition"], data["dlq_offset"], data["source_topic"]) == (
        0,
        5,
        "scored-leads",
    )
    assert (data["partition"], data["offset"], data["key"]) == (2, 81, "lead-9")
    assert json.loads(json.dumps(data))["raw_value"] == "{not json"

    foreign = dlq.entry(1, 0, 1_764_158_400_000, b"hello")
    assert foreign.letter is None and foreign.code == dlq.NOT_A_DEAD_LETTER
    assert foreign.when == datetime(2025, 11, 26, 12, 0, tzinfo=UTC)
    assert dlq.as_json(foreign)["raw_value"] == "hello"


def test_a_cell_shows_markup_and_control_characters_as_they_are() -> None:
    console = Console(width=200, record=True)
    console.print(cell('{"x": "[bold]y[/bold]"}'))
    console.print(cell("a\nb\x00"))
    console.print(cell(None))
    assert console.export_text().splitlines() == [
        '{"x": "[bold]y[/bold]"}',
        "a\\nb\\u0000",
        "-",
    ]


def test_libpq_sslmode_is_named_with_asyncpg_s_word() -> None:
    from allocator.store.urls import database_url_problem

    problem = database_url_problem("postgresql+asyncpg://u@db/x?sslmode=require")
    assert problem == "asyncpg takes ?ssl=require, not libpq's ?sslmode=require"


def test_a_refused_kafka_login_is_one_line() -> None:
    from allocator.config import KafkaLoginRefused
    from streams.commands.errors import explain

    error = explain(KafkaLoginRefused("Kafka refused the login of 'alice': check ..."))
    assert error.message.count("\n") == 0 and "alice" in error.message
