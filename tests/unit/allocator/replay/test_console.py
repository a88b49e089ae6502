"""What `allocator replay` prints: the summary and comparison tables (piped, so at
their fixed width), skipped records on stderr, and the progress bar's speed."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace
from typing import cast

import pytest
from rich.progress import Task

from allocator.errors import InvalidRecord
from allocator.replay import console
from allocator.replay.sources import Rejected
from allocator.replay.summary import Comparison, ReasonChange, SendChanges
from tests.unit.allocator.replay.test_report import (
    before_feedback,
    sample,
    statuses,
    with_reasons,
)


def rows(text: str) -> list[list[str]]:
    """The cells of a rich table's body and header lines."""
    return [
        [cell.strip() for cell in line.strip("│┃").split(line[0])]
        for line in text.splitlines()
        if line[:1] in ("│", "┃")
    ]


def test_the_summary_shows_tiers_best_first_and_the_rate(
    capsys: pytest.CaptureFixture[str],
) -> None:
    console.show_summary(sample(), leads=1200, seconds=2.5)
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].strip() == "replay: 1200 leads in 2.5s (480 leads/s)"
    assert rows(out) == [
        ["tier", "leads", "allocated", "deferred", "exhausted", "no_resource", "suppressed"],
        ["hot", "2", "2", "1", "0", "1", "0"],
        ["cold", "1", "1", "0", "0", "3", "0"],
    ]
    assert lines[-1] == "invalid records: 2"
    assert max(len(line) for line in lines) <= console.PIPED_WIDTH


def test_a_replay_too_fast_to_time_does_not_divide_by_zero(
    capsys: pytest.CaptureFixture[str],
) -> None:
    console.show_summary(sample(), leads=3, seconds=0.0)
    assert "replay: 3 leads in 0.0s (3,000,000,000 leads/s)" in capsys.readouterr().out


def test_a_split_replay_says_in_how_many_processes(capsys: pytest.CaptureFixture[str]) -> None:
    console.show_summary(sample(), leads=30000, seconds=1.0, processes=2)
    assert "replay: 30000 leads in 1.0s in 2 processes (30,000 leads/s)" in capsys.readouterr().out


def test_the_comparison_shows_changes_signed_and_how_sends_moved(
    capsys: pytest.CaptureFixture[str],
) -> None:
    baseline = sample()
    variant = replace(sample(name="double limits", spread=0.4), statuses=statuses(9, 0, 2, 4))
    console.show_comparison(Comparison(baseline, variant, SendChanges(281, 27, 203, 169)))
    out = capsys.readouterr().out
    assert out.splitlines()[0].strip() == "baseline vs double limits"
    assert rows(out) == [
        ["status", "baseline", "variant", "change"],
        ["allocated", "3", "9", "+6"],
        ["deferred", "1", "0", "-1"],
        ["exhausted", "0", "2", "+2"],
        ["no_resource", "4", "4", "+0"],
        ["suppressed", "0", "0", "+0"],
    ]
    assert out.splitlines()[-6:] == [
        "sends moved in time: 281",
        "sends on another resource: 27",
        "sends newly served: 203",
        "sends no longer served: 169",
        "entries with another reason: 0",
        "usage balance (mean gap in sends between a client's resources of equal limit on a "
        "day; 0 is even): baseline 0.5, variant 0.4 (more even under the variant)",
    ]


def test_a_rules_name_with_brackets_is_shown_as_written(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # rich reads [..] as markup: "[/]" would raise, "[red]" would vanish
    variant = sample(name="seats [/] and [red]hours")
    console.show_comparison(Comparison(sample(), variant, SendChanges()))
    assert capsys.readouterr().out.splitlines()[0].strip() == "baseline vs seats [/] and [red]hours"


def test_skipped_records_are_one_line_each_and_the_rest_counted(
    capsys: pytest.CaptureFixture[str],
) -> None:
    error = InvalidRecord("invalid_json", None, None, "value is not JSON")
    rejected = [Rejected("leads.jsonl", f"line {n}", error) for n in range(1, 26)]
    console.show_rejected(rejected)
    err = capsys.readouterr().err.splitlines()
    assert len(err) == console.SHOWN_REJECTS + 1
    assert err[0] == "skipped leads.jsonl line 1: [invalid_json] value is not JSON"
    assert err[19].startswith("skipped leads.jsonl line 20:")
    assert err[-1] == "... and 5 more invalid records"


def test_no_more_line_when_every_skipped_record_is_shown(
    capsys: pytest.CaptureFixture[str],
) -> None:
    error = InvalidRecord(
        "missing_field", "scored_at", None, "scored_at: required field is missing"
    )
    console.show_rejected([Rejected("t", "partition 0 offset 3", error)])
    assert capsys.readouterr().err == (
        "skipped t partition 0 offset 3: [missing_field] scored_at: required field is missing\n"
    )


@pytest.mark.parametrize(("speed", "shown"), [(1234.6, "1,235 leads/s"), (None, "")])
def test_the_progress_column_shows_leads_per_second(speed: float | None, shown: str) -> None:
    task = cast(Task, SimpleNamespace(speed=speed))
    assert console.LeadsPerSecondColumn().render(task).plain == shown


def test_a_quiet_or_piped_progress_bar_draws_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    for quiet in (True, False):  # stderr is captured, so not a terminal either way
        with console.progress("baseline", 10, quiet) as advance:
            advance(4)
            advance(6)
    assert capsys.readouterr() == ("", "")


# --- reasons ------------------------------------------------------------------


def test_the_summary_counts_entries_by_reason_after_the_tiers(
    capsys: pytest.CaptureFixture[str],
) -> None:
    console.show_summary(with_reasons(sample(), none=6, deferred_warmup=2), leads=3, seconds=1)
    out = capsys.readouterr().out
    assert rows(out)[3:] == [
        ["reason", "entries", "share"],
        ["none (first slot)", "6", "75.0%"],
        ["deferred_warmup", "2", "25.0%"],
    ]
    assert "why channel entries moved" in out
    assert out.splitlines()[-1] == "invalid records: 2"


def test_a_summary_without_reasons_shows_no_reason_table(
    capsys: pytest.CaptureFixture[str],
) -> None:
    console.show_summary(sample(), leads=3, seconds=1)
    assert "why channel entries moved" not in capsys.readouterr().out


def test_the_comparison_shows_reasons_side_by_side_and_how_they_changed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    baseline = with_reasons(sample(), none=8)
    variant = with_reasons(sample(name="weekly cap"), none=5, deferred_weekly=2, exhausted=1)
    moves = tuple(
        ReasonChange("linkedin", "none", code, n)
        for code, n in [("deferred_weekly", 2), ("exhausted", 1)]
        + [(f"code-{i}", 1) for i in range(10)]
    )
    changes = SendChanges(moved_in_time=2, another_reason=13, reason_changes=moves)
    console.show_comparison(Comparison(baseline, variant, changes))
    out = capsys.readouterr().out
    table = rows(out)
    start = table.index(["reason", "baseline", "variant", "change"])
    assert table[start : start + 4] == [
        ["reason", "baseline", "variant", "change"],
        ["none (first slot)", "8", "5", "-3"],
        ["deferred_weekly", "0", "2", "+2"],
        ["exhausted", "0", "1", "+1"],
    ]
    start = table.index(["channel", "baseline reason", "variant reason", "entries"])
    assert table[start + 1 : start + 3] == [
        ["linkedin", "none (first slot)", "deferred_weekly", "2"],
        ["linkedin", "none (first slot)", "exhausted", "1"],
    ]
    assert len(table) - start - 1 == console.SHOWN_REASON_CHANGES
    assert "... and 2 more changes of reason" in out.splitlines()
    assert "entries with another reason: 13" in out.splitlines()
    drawn = [line for line in out.splitlines() if line[:1] in "┏┃┡│└"]
    assert max(len(line) for line in drawn) <= console.PIPED_WIDTH


def test_a_summary_made_before_feedback_shows_no_suppressed_entry(
    capsys: pytest.CaptureFixture[str],
) -> None:
    old = before_feedback()
    console.show_summary(old, leads=3, seconds=1.0)
    console.show_comparison(Comparison(old, old, SendChanges()))
    table = rows(capsys.readouterr().out)
    assert ["hot", "2", "2", "1", "0", "1", "0"] in table
    assert ["suppressed", "0", "0", "+0"] in table
    assert not any(row[0] == "send-events applied" for row in table)
