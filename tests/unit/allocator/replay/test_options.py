"""`allocator replay`'s flags: parsed once into typed options, and every bad value
refused before any work, in one line naming the flag and the fix (exit status 2)."""

from __future__ import annotations

import argparse
import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from allocator.replay.options import OptionsError, ReplayOptions, add_arguments
from allocator.replay.sources import Bound
from streams.cli import main
from tests.replay_data import replay_args, write_history


def parse(*argv: str) -> ReplayOptions:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return ReplayOptions.from_namespace(parser.parse_args(list(argv)))


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    paths = {name: tmp_path / f"{name}.jsonl" for name in ("leads", "patterns", "clients")}
    for path in paths.values():
        path.write_text("")
    paths["rules"] = tmp_path / "rules.json"
    paths["rules"].write_text(json.dumps({"name": "no deferral", "max_defer_days": 0}))
    return paths


def test_file_flags_become_typed_options(tmp_path: Path, files: dict[str, Path]) -> None:
    options = parse(
        "--leads", str(files["leads"]),
        "--patterns", str(files["patterns"]),
        "--clients", str(files["clients"]),
        "--out", str(tmp_path / "out.jsonl"),
        "--report", str(tmp_path / "new" / "report"),
        "--compare", str(files["rules"]),
        "--redis-namespace", "trial",
        "--workers", "3",
        "--quiet",
    )  # fmt: skip
    assert options.leads == files["leads"] and options.patterns == files["patterns"]
    assert options.clients == files["clients"] and options.resources is None
    assert options.out == tmp_path / "out.jsonl"
    assert options.report == tmp_path / "new" / "report"
    assert not (tmp_path / "new").exists()  # checked, not created
    assert options.variant is not None
    assert (options.variant.name, options.variant.max_defer_days) == ("no deferral", 0)
    assert options.redis_namespace == "trial" and options.quiet and options.workers == 3
    assert options.compare == files["rules"] and options.pools is None
    assert not options.reads_topics and options.start is None and options.end is None


def test_topic_flags_and_their_bounds(tmp_path: Path) -> None:
    options = parse(
        "--leads-topic", "scored-leads",
        "--patterns-topic", "conversion-patterns",
        "--from", "2026-11-26T13:00:00Z",
        "--to", "2026-11-26T15:30:00+01:00",
        "--out", str(tmp_path / "out.jsonl"),
    )  # fmt: skip
    assert options.reads_topics and options.leads is None and options.variant is None
    assert (options.leads_topic, options.patterns_topic) == ("scored-leads", "conversion-patterns")
    assert options.start == Bound(at=datetime(2026, 11, 26, 13, tzinfo=UTC))
    assert options.end == Bound(at=datetime(2026, 11, 26, 14, 30, tzinfo=UTC))
    assert not options.quiet


def test_offsets_bound_a_topic_and_an_offset_never_compares_with_a_time(tmp_path: Path) -> None:
    out = str(tmp_path / "out.jsonl")
    options = parse("--leads-topic", "t", "--from", "100", "--to", "200", "--out", out)
    assert (options.start, options.end) == (Bound(offset=100), Bound(offset=200))
    mixed = parse(
        "--leads-topic", "t", "--from", "100", "--to", "2026-11-26T13:00:00Z", "--out", out
    )
    assert mixed.start == Bound(offset=100)


BAD = [
    # (arguments after the leads file and --out, flag, words of the problem, words of the fix)
    (["--out", "{tmp}/missing/out.jsonl"], "--out", "does not exist", "mkdir -p"),
    (["--out", "{tmp}"], "--out", "is a folder", "give a file"),
    (["--report", "{leads}/r"], "--report", "is a file", "give a folder"),
    (["--report", "{leads}"], "--report", "is a file", "give a folder"),
    (["--compare", "{tmp}/none.json"], "--compare", "no such file", "path of a rules file"),
    (["--compare", "{bad_rules}"], "--compare", "type_limits.pigeon", "fix the rules file"),
    (["--compare", "{leads}"], "--compare", "Expecting value", "fix the rules file"),
    (["--patterns", "{tmp}/none.jsonl"], "--patterns", "no such file", "JSON Lines file"),
    (["--clients", "{tmp}"], "--clients", "is a folder", "JSON Lines file"),
    (["--pools", "{tmp}/none.jsonl"], "--pools", "no such file", "JSON Lines file"),
    (["--compare", "{bad_warmup}"], "--compare", "warmup.every_days", "fix the rules file"),
    (["--from", "2026-11-26T13:00:00Z"], "--from", "topic sources only", "--leads-topic"),
    (["--send-events", "{tmp}/none.jsonl"], "--send-events", "no such file", "JSON Lines file"),
    (["--send-events", "{tmp}"], "--send-events", "is a folder", "JSON Lines file"),
    (["--cancellations", "{tmp}/no/c.jsonl"], "--cancellations", "does not exist", "mkdir -p"),
    (["--health", "{tmp}"], "--health", "is a folder", "give a file"),
    (
        ["--cancellations", "{tmp}/out.jsonl"],
        "--cancellations",
        "--out writes it too",
        "of its own",
    ),
    (
        ["--cancellations", "{tmp}/x.jsonl", "--health", "{tmp}/./x.jsonl"],
        "--health",
        "--cancellations writes it too",
        "give --health a file of its own",
    ),
    (["--workers", "0"], "--workers", "not a whole number of 1 or more", "give e.g. 2"),
    (["--workers", "two"], "--workers", "not a whole number of 1 or more", "give e.g. 2"),
]


@pytest.mark.parametrize(("extra", "flag", "problem", "fix"), BAD)
def test_a_bad_value_is_refused_naming_the_flag_and_the_fix(
    tmp_path: Path, files: dict[str, Path], extra: list[str], flag: str, problem: str, fix: str
) -> None:
    bad_rules = tmp_path / "bad.json"
    bad_rules.write_text('{"type_limits": {"pigeon": 3}}')
    bad_warmup = tmp_path / "warmup.json"
    bad_warmup.write_text('{"resources": {"d1": {"warmup": {"every_days": 0}}}}')
    names = {
        "tmp": tmp_path,
        "leads": files["leads"],
        "bad_rules": bad_rules,
        "bad_warmup": bad_warmup,
    }
    extra = [e.format(**names) for e in extra]
    argv = ["--leads", str(files["leads"]), "--out", str(tmp_path / "out.jsonl"), *extra]
    with pytest.raises(OptionsError) as caught:
        parse(*argv)
    message = str(caught.value)
    assert caught.value.flag == flag and message.startswith(f"{flag} ")
    assert problem in message and fix in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("start", "end", "flag", "problem"),
    [
        ("yesterday", None, "--from", "neither an offset nor an RFC 3339 time"),
        ("2026-11-26T13:00:00", None, "--from", "no UTC offset"),
        (None, "2026-11-26", "--to", "no UTC offset"),
        ("2026-11-26T13:00:00Z", "2026-11-26T13:00:00Z", "--to", "not after --from"),
        ("2026-11-26T13:00:00Z", "2026-11-26T08:00:00-05:00", "--to", "not after --from"),
        ("200", "100", "--to", "not after --from"),
    ],
)
def test_bad_topic_bounds_are_refused(
    tmp_path: Path, start: str | None, end: str | None, flag: str, problem: str
) -> None:
    argv = ["--leads-topic", "t", "--out", str(tmp_path / "o.jsonl")]
    argv += ["--from", start] if start else []
    argv += ["--to", end] if end else []
    with pytest.raises(OptionsError) as caught:
        parse(*argv)
    assert caught.value.flag == flag
    assert problem in str(caught.value) and "\n" not in str(caught.value)


def test_a_folder_that_cannot_be_written_is_refused(
    tmp_path: Path, files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Faked: the tests may run as root, who can write anywhere.
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access

    def access(path: Path | str, mode: int) -> bool:
        return Path(path) != locked and real_access(path, mode)

    monkeypatch.setattr(os, "access", access)
    leads = ["--leads", str(files["leads"])]
    with pytest.raises(OptionsError, match=f"--out .*: cannot write in {locked};"):
        parse(*leads, "--out", str(locked / "out.jsonl"))
    out = ["--out", str(tmp_path / "out.jsonl")]
    with pytest.raises(OptionsError, match=f"--report .*: cannot write in {locked};"):
        parse(*leads, *out, "--report", str(locked / "a" / "b"))


def test_the_command_stops_before_any_work_with_one_line_and_status_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = write_history(tmp_path, leads=5, bad=False)
    rules = tmp_path / "bad.json"
    rules.write_text('{"max_defer_days": 31}')
    out, report = tmp_path / "out.jsonl", tmp_path / "report"
    argv = replay_args(paths, out, "--report", str(report), "--compare", str(rules))
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err == (
        f"replay: --compare {rules}: max_defer_days: must be in 0..30, got 31; "
        "fix the rules file (its fields: README, 'Replay and backtesting')\n"
    )
    assert not out.exists() and not report.exists()


def test_pools_are_a_file_flag_like_clients(tmp_path: Path, files: dict[str, Path]) -> None:
    pools = tmp_path / "pools.jsonl"
    pools.write_text("")
    options = parse(
        "--leads", str(files["leads"]), "--pools", str(pools), "--out", str(tmp_path / "o.jsonl")
    )
    assert options.pools == pools and options.clients is None and options.compare is None


def test_send_events_and_what_they_produce_are_file_flags(
    tmp_path: Path, files: dict[str, Path]
) -> None:
    sends = tmp_path / "send-events.jsonl"
    sends.write_text("")
    options = parse(
        "--leads", str(files["leads"]),
        "--send-events", str(sends),
        "--cancellations", str(tmp_path / "cancellations.jsonl"),
        "--health", str(tmp_path / "health.jsonl"),
        "--out", str(tmp_path / "out.jsonl"),
    )  # fmt: skip
    assert options.send_events == sends and options.send_events_topic is None
    assert options.reads_send_events and not options.reads_topics
    assert options.cancellations == tmp_path / "cancellations.jsonl"
    assert options.health == tmp_path / "health.jsonl"
    plain = parse("--leads", str(files["leads"]), "--out", str(tmp_path / "out.jsonl"))
    assert not plain.reads_send_events
    assert plain.cancellations is None and plain.health is None


def test_a_send_events_topic_is_bounded_like_the_leads(
    tmp_path: Path, files: dict[str, Path]
) -> None:
    options = parse(
        "--leads", str(files["leads"]),
        "--send-events-topic", "send-events",
        "--from", "100",
        "--out", str(tmp_path / "out.jsonl"),
    )  # fmt: skip
    assert options.send_events_topic == "send-events" and options.send_events is None
    assert options.reads_topics and options.start == Bound(offset=100)


def test_a_send_events_file_and_topic_are_one_or_the_other(
    tmp_path: Path, files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--leads", str(files["leads"]), "--out", str(tmp_path / "out.jsonl")]
    argv += ["--send-events", str(files["patterns"]), "--send-events-topic", "send-events"]
    with pytest.raises(SystemExit) as caught:
        parse(*argv)
    assert caught.value.code == 2
    assert "not allowed with argument --send-events" in capsys.readouterr().err
