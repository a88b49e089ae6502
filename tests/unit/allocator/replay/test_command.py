"""`allocator replay` over files: determinism, event time, bad lines, report."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import allocator.batch
from streams.cli import main
from tests.replay_data import BAD_LINES, replay_args, write_history


def run(args: list[str]) -> None:
    assert main(args) == 0


def records(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_same_inputs_give_byte_identical_output(tmp_path: Path) -> None:
    paths = write_history(tmp_path)
    run(replay_args(paths, tmp_path / "a.jsonl"))
    run(replay_args(paths, tmp_path / "b.jsonl"))
    a = (tmp_path / "a.jsonl").read_bytes()
    assert a and a == (tmp_path / "b.jsonl").read_bytes()


def test_output_is_in_input_order_and_decided_at_is_scored_at(tmp_path: Path) -> None:
    paths = write_history(tmp_path, bad=False)
    run(replay_args(paths, tmp_path / "out.jsonl"))
    inputs = [json.loads(line) for line in paths["leads"].read_text().splitlines()]
    outputs = records(tmp_path / "out.jsonl")
    assert [o["event_id"] for o in outputs] == [i["event_id"] for i in inputs]
    for i, o in zip(inputs, outputs, strict=True):
        assert o["decided_at"].replace("Z", "+00:00") == i["scored_at"]


def test_pattern_mid_stream_changes_only_later_leads(tmp_path: Path) -> None:
    # Demo leads are scored every 2 minutes from 13:00Z; the patterns arrive at 15:00Z.
    paths = write_history(tmp_path, bad=False, pattern_time="2026-11-26T15:00:00+00:00")
    run(replay_args(paths, tmp_path / "out.jsonl"))
    inputs = {
        json.loads(x)["event_id"]: json.loads(x) for x in paths["leads"].read_text().splitlines()
    }
    acme_hot_or_cool = [
        o
        for o in records(tmp_path / "out.jsonl")
        if o["client_id"] == "acme" and o["als_tier"] != "unqualified"
    ]
    before = [
        o
        for o in acme_hot_or_cool
        if inputs[str(o["event_id"])]["scored_at"] < "2026-11-26T15:00:00"
    ]
    after = [
        o
        for o in acme_hot_or_cool
        if inputs[str(o["event_id"])]["scored_at"] >= "2026-11-26T15:00:00"
    ]
    assert before and after
    assert all(o["sequence_source"] == "default" for o in before)
    # acme's HOW pattern starts with linkedin, which cold leads may not use.
    assert all(o["sequence_source"] == "pattern" for o in after if o["als_tier"] != "cold")
    at_the_instant = [
        o for o in after if inputs[str(o["event_id"])]["scored_at"] == "2026-11-26T15:00:00+00:00"
    ]
    assert all(o["sequence_source"] == "pattern" for o in at_the_instant if o["als_tier"] != "cold")


def test_invalid_lines_are_reported_and_valid_ones_all_allocated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = write_history(tmp_path)
    run(replay_args(paths, tmp_path / "out.jsonl", "--report", str(tmp_path / "r")))
    errors = capsys.readouterr().err
    # line numbers count the bad lines themselves: bad line k sits after k earlier bad ones
    expected = [index + 1 + n for n, index in enumerate(sorted(BAD_LINES))]
    for line in expected:
        assert f"line {line}:" in errors
    assert "als_score" in errors and "72.5" in errors and "scored_at" in errors
    valid = len(paths["leads"].read_text().splitlines()) - len(BAD_LINES)
    assert len(records(tmp_path / "out.jsonl")) == valid
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["invalid_records"] == len(BAD_LINES)
    assert summary["invalid_by_code"] == {"invalid_field": 1, "invalid_json": 1, "missing_field": 1}


def test_undecidable_lead_is_reported_not_fatal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Input bounds keep every valid lead decidable today (a scored_at past the
    # last weekday Python can represent is out of range), so a rule that fails
    # is simulated: the replay must report such a lead and decide the others.
    planned = allocator.batch._planned

    def failing(lead: Any, *args: Any) -> Any:
        if lead.lead_id == "far":
            raise OverflowError("date value out of range")
        return planned(lead, *args)

    monkeypatch.setattr(allocator.batch, "_planned", failing)
    paths = write_history(tmp_path, leads=20, bad=False)
    with paths["leads"].open("a") as f:
        f.write(
            '{"lead_id": "far", "client_id": "acme", "als_score": 50, '
            '"scored_at": "2026-11-26T23:00:00Z"}\n'
        )
    run(replay_args(paths, tmp_path / "out.jsonl", "--report", str(tmp_path / "r")))
    assert "lead 'far' cannot be decided" in capsys.readouterr().err
    assert len(records(tmp_path / "out.jsonl")) == 20
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["invalid_by_code"] == {"undecidable": 1}


def test_summary_matches_output_and_report_renders(tmp_path: Path) -> None:
    paths = write_history(tmp_path)
    run(replay_args(paths, tmp_path / "out.jsonl", "--report", str(tmp_path / "r")))
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    out = records(tmp_path / "out.jsonl")
    assert summary["leads"] == len(out)
    statuses: Counter[str] = Counter()
    tiers: Counter[str] = Counter()
    for allocation in out:
        tiers[str(allocation["als_tier"])] += 1
        for entry in allocation["channels"]:  # type: ignore[attr-defined]
            statuses[entry["status"]] += 1
    s = summary["statuses"]
    assert s["allocated"] + s["deferred"] == statuses["allocated"]
    assert s["exhausted"] == statuses["exhausted"] and s["no_resource"] == statuses["no_resource"]
    assert {t: v["leads"] for t, v in summary["by_tier"].items()} == dict(tiers)
    used = sum(r["sends"] for r in summary["resources"])
    assert used == statuses["allocated"]
    for r in summary["resources"]:
        if r["daily_limit"] is not None:
            assert r["peak_per_day"] <= r["daily_limit"]

    page = (tmp_path / "r" / "index.html").read_text()
    assert len(re.findall(r'class="plotly-graph-div"', page)) == 4
    assert "Plotly.newPlot" in page and "plotly.js" in page  # the library is embedded
    for title in ("per day", "utilisation", "deferred and exhausted", "weekday"):
        assert title in page


def test_compare_reports_differences(tmp_path: Path) -> None:
    paths = write_history(tmp_path, bad=False)
    rules = tmp_path / "variant.json"
    rules.write_text(
        json.dumps(
            {
                "name": "double limits",
                "type_limits": {"email_domain": 100, "linkedin_seat": 34},
                "max_defer_days": 0,
                "extra_resources": [
                    {"client_id": "initech", "channel": "linkedin", "resource_id": "initech-seat"}
                ],
            }
        )
    )
    run(
        replay_args(
            paths, tmp_path / "out.jsonl", "--report", str(tmp_path / "r"), "--compare", str(rules)
        )
    )
    comparison = json.loads((tmp_path / "r" / "compare.json").read_text())
    base, variant = comparison["statuses"]["baseline"], comparison["statuses"]["variant"]
    assert variant["deferred"] == 0 < base["deferred"]
    assert variant["no_resource"] < base["no_resource"]  # initech gained a seat
    assert comparison["sends_moved_in_time"] > 0
    assert comparison["sends_newly_served"] > 0
    needed = {(r["client_id"], r["channel"]): r for r in comparison["capacity_needed"]["variant"]}
    assert needed[("acme", "email")]["daily_capacity"] == 200
    assert "Baseline vs double limits" in (tmp_path / "r" / "index.html").read_text()
    # the written output is the baseline's
    assert (tmp_path / "out.jsonl").read_text().count("\n") == 800


def test_bad_rules_file_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = write_history(tmp_path, leads=10, bad=False)
    rules = tmp_path / "bad.json"
    rules.write_text('{"type_limits": {"pigeon": 3}}')
    assert main(replay_args(paths, tmp_path / "o.jsonl", "--compare", str(rules))) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"replay: --compare {rules}: ") and err.count("\n") == 1
    assert "pigeon" in err


def test_rules_keep_the_loaders_bound_on_max_defer_days(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = write_history(tmp_path, leads=10, bad=False)
    rules = tmp_path / "far.json"
    rules.write_text('{"max_defer_days": 31}')
    assert main(replay_args(paths, tmp_path / "o.jsonl", "--compare", str(rules))) == 2
    assert "max_defer_days" in capsys.readouterr().err


def test_a_line_that_is_not_utf8_is_skipped_and_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = write_history(tmp_path, leads=30, bad=False)
    lines = paths["leads"].read_bytes().splitlines(keepends=True)
    lines.insert(4, b'{"lead_id": "caf\xe9", "client_id": "acme"}\n')  # Latin-1, not UTF-8
    paths["leads"].write_bytes(b"".join(lines))
    run(replay_args(paths, tmp_path / "out.jsonl", "--report", str(tmp_path / "r")))
    errors = capsys.readouterr().err
    assert f"{paths['leads']} line 5: [invalid_encoding]" in errors
    assert len(records(tmp_path / "out.jsonl")) == 30
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["invalid_by_code"] == {"invalid_encoding": 1}


def test_baseline_uses_the_configured_send_hours(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALLOCATOR_SEND_HOUR_EMAIL", "7")
    monkeypatch.setenv("ALLOCATOR_SEND_HOUR_LINKEDIN", "16")
    paths = write_history(tmp_path, leads=60, bad=False)
    run(replay_args(paths, tmp_path / "out.jsonl"))
    hours: dict[str, set[str]] = {"email": set(), "linkedin": set()}
    for allocation in records(tmp_path / "out.jsonl"):
        for entry in allocation["channels"]:  # type: ignore[attr-defined]
            if (
                entry["channel"] in hours
                and entry["timing_source"] == "default"
                and (entry["send_at"])
            ):
                hours[entry["channel"]].add(entry["send_at"][11:19])  # local wall time
    assert hours == {"email": {"07:00:00"}, "linkedin": {"16:00:00"}}


def test_rules_naming_a_resource_the_history_has_not_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = write_history(tmp_path, leads=10, bad=False)
    rules = tmp_path / "typo.json"
    rules.write_text('{"resource_limits": {"acme-seat-33": 5}}')
    assert main(replay_args(paths, tmp_path / "o.jsonl", "--compare", str(rules))) != 0
    err = capsys.readouterr().err
    assert "acme-seat-33" in err and "resource_limits" in err
    assert len(err.strip().splitlines()) <= 2
