"""`allocator replay`: read history, replay it (twice with --compare), write the
allocations, print a summary, and optionally the report."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from allocator.channels import REPORTED_STATUSES
from allocator.config import Settings
from allocator.files import load_all
from allocator.models import Client, Resource, parse_pattern_data, validate
from allocator.quota import MemoryQuotaStore, QuotaStore
from allocator.replay.report import write_report
from allocator.replay.rules import Rules
from allocator.replay.runner import ReplayRun, differences, replay
from allocator.replay.sources import (
    Bound,
    History,
    from_file,
    parse_lead_data,
    topic_history,
)
from allocator.tiers import DISPLAY_ORDER

err = Console(stderr=True)


class TransferSpeedColumn(ProgressColumn):
    """Leads per second."""

    def render(self, task: object) -> Text:
        speed = getattr(task, "speed", None)
        return Text("" if speed is None else f"{speed:,.0f} leads/s")


SHOWN_REJECTS = 20


def add_arguments(parser: argparse.ArgumentParser) -> None:
    leads = parser.add_mutually_exclusive_group(required=True)
    leads.add_argument("--leads", metavar="FILE", help="scored leads, JSON Lines")
    leads.add_argument("--leads-topic", metavar="TOPIC", help="scored leads from a Kafka topic")
    patterns = parser.add_mutually_exclusive_group()
    patterns.add_argument("--patterns", metavar="FILE", help="conversion patterns, JSON Lines")
    patterns.add_argument(
        "--patterns-topic",
        metavar="TOPIC",
        help="conversion patterns from a Kafka topic (read from its start)",
    )
    parser.add_argument(
        "--from",
        dest="start",
        metavar="TIME|OFFSET",
        help="topic sources: first record (RFC 3339 time or offset)",
    )
    parser.add_argument(
        "--to",
        dest="end",
        metavar="TIME|OFFSET",
        help="topic sources: stop before this record time or offset",
    )
    parser.add_argument("--clients", metavar="FILE", help="clients, JSON Lines (default: database)")
    parser.add_argument(
        "--resources", metavar="FILE", help="resources, JSON Lines (default: database)"
    )
    parser.add_argument(
        "--out", metavar="FILE", required=True, help="allocations, JSON Lines, in input order"
    )
    parser.add_argument("--report", metavar="DIR", help="write index.html and summary.json here")
    parser.add_argument(
        "--compare",
        metavar="RULES",
        help="also replay under these rules (JSON; see README) and report the differences",
    )
    parser.add_argument(
        "--redis-namespace",
        metavar="NAME",
        help="keep replay counters in Redis (ALLOCATOR_REDIS_URL) under "
        "replay:NAME: instead of in memory",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar or summary")


def run(args: argparse.Namespace) -> int:
    settings = Settings()
    try:
        history = _history(args, settings)
        clients, resources = _setup(args, settings)
        variant = Rules.from_file(args.compare) if args.compare else None
    except (OSError, ValueError) as exc:
        print(f"replay: {exc}", file=sys.stderr)
        return 2
    _report_rejects(history)
    started = time.perf_counter()
    base = _run(history, clients, resources, Rules(), args, settings, variant is not None)
    seconds = time.perf_counter() - started
    for message in base.undecidable:
        print(f"skipped {message}", file=sys.stderr)
    Path(args.out).write_text("".join(line + "\n" for line in base.lines), encoding="utf-8")
    comparison = None
    if variant is not None:
        other = _run(history, clients, resources, variant, args, settings, True)
        comparison = differences(base, other)
    summary = base.summary.to_json()
    if args.report:
        page = write_report(args.report, summary, comparison)
        print(f"report: {page}", file=sys.stderr)
    if not args.quiet:
        _print_summary(summary, len(history.leads), seconds)
        if comparison:
            _print_comparison(comparison)
    return 0


def _history(args: argparse.Namespace, settings: Settings) -> History:
    start, end = Bound.parse(args.start), Bound.parse(args.end)
    if args.leads_topic or args.patterns_topic:
        leads_t, patterns_t, rejected = topic_history(
            settings.kafka_bootstrap_servers, args.leads_topic, args.patterns_topic, start, end
        )
    else:
        leads_t, patterns_t, rejected = [], [], []
    if args.leads:
        leads, bad = from_file(args.leads, parse_lead_data)
        rejected += bad
    else:
        leads = leads_t
    if args.patterns:
        patterns, bad_p = from_file(args.patterns, parse_pattern_data)
        rejected += bad_p
    else:
        patterns = patterns_t
    return History(leads, patterns, rejected)


def _setup(args: argparse.Namespace, settings: Settings) -> tuple[list[Client], list[Resource]]:
    if args.clients and args.resources:
        return (
            load_all(args.clients, lambda d: validate(Client, d)),
            load_all(args.resources, lambda d: validate(Resource, d)),
        )
    from allocator.store import Database

    async def from_database() -> tuple[list[Client], list[Resource]]:
        db = Database(settings.database_url)
        try:
            await db.create_schema()
            snapshot = await db.load_snapshot()
        finally:
            await db.close()
        return (
            [s.client for s in snapshot.values()],
            [r for s in snapshot.values() for r in s.resources],
        )

    clients, resources = asyncio.run(from_database())
    if args.clients:
        clients = load_all(args.clients, lambda d: validate(Client, d))
    if args.resources:
        resources = load_all(args.resources, lambda d: validate(Resource, d))
    return clients, resources


def _quota(args: argparse.Namespace, settings: Settings, rules: Rules) -> QuotaStore:
    if not args.redis_namespace:
        return MemoryQuotaStore()
    from allocator.quota.redis_store import RedisQuotaStore

    # Each run gets a fresh sub-namespace, so a rerun decides afresh and the
    # live counters (no prefix, or the worker's own) are never touched.
    prefix = f"replay:{args.redis_namespace}:{rules.name}:{uuid.uuid4().hex[:8]}:"
    return RedisQuotaStore.from_url(
        settings.redis_url, prefix=prefix, retention_days=settings.quota_retention_days
    )


def _run(
    history: History,
    clients: list[Client],
    resources: list[Resource],
    rules: Rules,
    args: argparse.Namespace,
    settings: Settings,
    keep_outcomes: bool,
) -> ReplayRun:
    show = not args.quiet and err.is_terminal
    columns = (
        TextColumn(f"replay [{rules.name}]"),
        BarColumn(),
        MofNCompleteColumn(),
        TransferSpeedColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, disable=not show) as bar:
        task = bar.add_task("replay", total=len(history.leads))

        async def go() -> ReplayRun:
            quota = _quota(args, settings, rules)
            try:
                return await replay(
                    history,
                    clients,
                    resources,
                    rules,
                    settings.schedule(),
                    quota,
                    lambda n: bar.advance(task, n),
                    keep_outcomes,
                )
            finally:
                await quota.close()

        return asyncio.run(go())


def _report_rejects(history: History) -> None:
    for rejected in history.rejected[:SHOWN_REJECTS]:
        # One plain line each (no wrapping, no markup): these get grepped.
        print(f"skipped {rejected.describe()}", file=sys.stderr)
    if len(history.rejected) > SHOWN_REJECTS:
        print(
            f"... and {len(history.rejected) - SHOWN_REJECTS} more invalid records", file=sys.stderr
        )


def _print_summary(summary: dict[str, object], leads: int, seconds: float) -> None:
    out = Console(width=None if sys.stdout.isatty() else 110)
    table = Table(
        title=f"replay: {leads} leads in {seconds:.1f}s ({leads / max(seconds, 1e-9):,.0f} leads/s)"
    )
    table.add_column("tier")
    table.add_column("leads", justify="right")
    for status in REPORTED_STATUSES:
        table.add_column(status, justify="right")
    table.caption = (
        "channel entries; allocated: on the day asked for, deferred: allocated on a later day"
    )
    by_tier = summary["by_tier"]
    assert isinstance(by_tier, dict)
    for tier in (t.value for t in DISPLAY_ORDER):
        if tier in by_tier:
            row = by_tier[tier]
            table.add_row(tier, str(row["leads"]), *(str(row[s]) for s in REPORTED_STATUSES))
    out.print(table)
    out.print(f"invalid records: {summary['invalid_records']}")


def _print_comparison(comparison: dict[str, object]) -> None:
    out = Console(width=None if sys.stdout.isatty() else 110)
    statuses = comparison["statuses"]
    assert isinstance(statuses, dict)
    variant = comparison["variant"]
    assert isinstance(variant, dict)
    table = Table(title=f"baseline vs {variant['name']}")
    for column in ("status", "baseline", "variant", "change"):
        table.add_column(column, justify="right")
    for status in REPORTED_STATUSES:
        a, b = statuses["baseline"][status], statuses["variant"][status]
        table.add_row(status, str(a), str(b), f"{b - a:+d}")
    out.print(table)
    for key in (
        "sends_moved_in_time",
        "sends_on_another_resource",
        "sends_newly_served",
        "sends_no_longer_served",
        "usage_balance_spread",
    ):
        out.print(f"{key.replace('_', ' ')}: {comparison[key]}")
