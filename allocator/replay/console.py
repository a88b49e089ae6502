"""What `allocator replay` shows on the terminal: skipped records, the progress
bar, and the summary and comparison tables, drawn from typed summaries."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from allocator.channels import REPORTED_STATUSES
from allocator.replay.sources import Rejected
from allocator.replay.summary import FEEDBACK_LABELS, NO_REASON, Comparison, ReplaySummary

SHOWN_REJECTS = 20
# Changes of reason listed under a comparison; compare.json has them all.
SHOWN_REASON_CHANGES = 10
# Tables keep one shape when piped (logs, CI, tests): rich would otherwise fall
# back to 80 columns, and wrap the summary's title.
PIPED_WIDTH = 110


class LeadsPerSecondColumn(ProgressColumn):
    """The replay's speed in leads per second (rich's own speed column shows bytes)."""

    def render(self, task: Task) -> Text:
        speed = task.speed
        return Text("" if speed is None else f"{speed:,.0f} leads/s")


def _stdout() -> Console:
    return Console(width=None if sys.stdout.isatty() else PIPED_WIDTH)


def _stderr(line: str) -> None:
    # Plain lines (no wrapping, no markup): these get grepped.
    print(line, file=sys.stderr)


def show_rejected(rejected: Sequence[Rejected]) -> None:
    """The first SHOWN_REJECTS invalid records, one line each, then how many more."""
    for one in rejected[:SHOWN_REJECTS]:
        _stderr(f"skipped {one.describe()}")
    if len(rejected) > SHOWN_REJECTS:
        _stderr(f"... and {len(rejected) - SHOWN_REJECTS} more invalid records")


def show_variant_rejected(name: str, rejected: Sequence[Rejected]) -> None:
    """Send-events naming no send the variant reserved, counted in one line: the
    variant may have chosen another resource, or no send, where the baseline sent."""
    if rejected:
        _stderr(
            f"under {name}: {len(rejected)} send-events name no send it reserved "
            "(skipped; counted in the comparison)"
        )


def show_undecidable(messages: Sequence[str]) -> None:
    for message in messages:
        _stderr(f"skipped {message}")


def show_report(page: Path) -> None:
    _stderr(f"report: {page}")


@contextmanager
def progress(rules_name: str, total: int, quiet: bool) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr while the body replays `total` leads; yields the
    function that advances it. Drawn only on a terminal, and never when quiet."""
    err = Console(stderr=True)
    columns = (
        # A rules file names itself: brackets in it are text, not rich markup.
        TextColumn(f"replay [{rules_name}]", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        LeadsPerSecondColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, disable=quiet or not err.is_terminal) as bar:
        task = bar.add_task("replay", total=total)
        yield lambda n: bar.advance(task, n)


def show_summary(summary: ReplaySummary, leads: int, seconds: float, processes: int = 1) -> None:
    """The baseline's statuses by tier; `leads` were decided in `seconds` by
    `processes` (a replay split by client: processes.py)."""
    rate = leads / max(seconds, 1e-9)
    split = f" in {processes} processes" if processes > 1 else ""
    table = Table(title=f"replay: {leads} leads in {seconds:.1f}s{split} ({rate:,.0f} leads/s)")
    table.add_column("tier")
    table.add_column("leads", justify="right")
    for status in REPORTED_STATUSES:
        table.add_column(status, justify="right")
    table.caption = (
        "channel entries; allocated: on the day asked for, deferred: allocated on a later day"
    )
    for tier in summary.tiers_best_first():
        table.add_row(
            tier.tier, str(tier.leads), *(str(tier.statuses.get(s, 0)) for s in REPORTED_STATUSES)
        )
    out = _stdout()
    out.print(table)
    reasons = _reasons_table(summary)
    if reasons is not None:
        out.print(reasons)
    if summary.read_send_events:
        _show_feedback(summary)
    out.print(f"invalid records: {summary.invalid_records}")


def _show_feedback(summary: ReplaySummary) -> None:
    """What the send-events did: a table of counts, then cancellations by
    channel and reason and health changes by state and cause, in one line each."""
    table = Table(title="feedback from the dispatchers (send-events)")
    table.add_column("what")
    table.add_column("count", justify="right")
    for key, count in summary.feedback_counts().items():
        table.add_row(FEEDBACK_LABELS.get(key, key), str(count))
    out = _stdout()
    out.print(table)
    feedback = summary.feedback
    if feedback.cancellations_by:
        cancelled = ", ".join(
            f"{c.channel} {c.reason} {c.count}" for c in feedback.cancellations_by
        )
        out.print(f"cancelled by channel and reason: {cancelled}", soft_wrap=True)
    if feedback.health_by:
        changes = ", ".join(f"{h.state} ({h.cause}) {h.count}" for h in feedback.health_by)
        out.print(f"health changes by state (cause): {changes}", soft_wrap=True)


def _reason(code: str) -> str:
    return "none (first slot)" if code == NO_REASON else code


def _reasons_table(summary: ReplaySummary) -> Table | None:
    """Channel entries by reason code, with their share; None without reasons."""
    total = sum(summary.reasons.values())
    if not total:
        return None
    table = Table(title="why channel entries moved")
    table.add_column("reason")
    table.add_column("entries", justify="right")
    table.add_column("share", justify="right")
    for code, count in summary.reasons.items():
        if count:
            table.add_row(_reason(code), str(count), f"{100 * count / total:.1f}%")
    return table


def show_comparison(comparison: Comparison) -> None:
    """Statuses and reasons side by side, how reasons changed, then how the sends changed."""
    table = Table(title=f"baseline vs {escape(comparison.variant.rules_name)}")
    for column in ("status", "baseline", "variant", "change"):
        table.add_column(column, justify="right")
    for status in REPORTED_STATUSES:
        a = comparison.baseline.status_count(status)
        b = comparison.variant.status_count(status)
        table.add_row(status, str(a), str(b), f"{b - a:+d}")
    out = _stdout()
    out.print(table)
    reasons = comparison.reasons()
    if reasons:
        by_reason = Table(title="reasons: baseline vs variant")
        for column in ("reason", "baseline", "variant", "change"):
            by_reason.add_column(column, justify="right")
        for code in reasons:
            a, b = comparison.baseline.reason_count(code), comparison.variant.reason_count(code)
            by_reason.add_row(_reason(code), str(a), str(b), f"{b - a:+d}")
        out.print(by_reason)
    moves = comparison.changes.reason_changes
    if moves:
        how = Table(title="how reasons changed (most frequent first)")
        for column in ("channel", "baseline reason", "variant reason", "entries"):
            how.add_column(column, justify="right" if column == "entries" else "left")
        for move in moves[:SHOWN_REASON_CHANGES]:
            how.add_row(
                move.channel, _reason(move.baseline), _reason(move.variant), str(move.count)
            )
        out.print(how)
        if len(moves) > SHOWN_REASON_CHANGES:
            out.print(f"... and {len(moves) - SHOWN_REASON_CHANGES} more changes of reason")
    if comparison.has_feedback():
        feedback = Table(title="feedback: baseline vs variant")
        for column in ("what", "baseline", "variant", "change"):
            feedback.add_column(column, justify="left" if column == "what" else "right")
        for key, a, b in comparison.feedback_changes():
            feedback.add_row(FEEDBACK_LABELS.get(key, key), str(a), str(b), f"{b - a:+d}")
        out.print(feedback)
    for key, count in comparison.changes.to_json().items():
        out.print(f"{key.replace('_', ' ')}: {count}")
    # In words: scripts read compare.json, which keeps the numbers as they were.
    base, variant = (
        comparison.baseline.usage_balance_spread,
        comparison.variant.usage_balance_spread,
    )
    verdict = "as even" if base == variant else ("more even" if variant < base else "less even")
    out.print(
        f"usage balance (mean gap in sends between a client's resources of equal limit "
        f"on a day; 0 is even): baseline {base:g}, variant {variant:g} ({verdict} "
        "under the variant)",
        soft_wrap=True,  # one line, for grep
    )
