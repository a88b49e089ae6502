"""`allocator replay`: from checked options, read the history, replay it (twice
with --compare), and write the allocations, the report and the terminal summary.

The parts live beside it: options.py (the flags), sources.py (the history),
runner.py (the replay), summary.py (its figures), report.py and console.py (what
is written and shown).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

from allocator.config import Settings
from allocator.files import load_all
from allocator.models import Client, Resource, parse_pattern_data, validate
from allocator.quota import MemoryQuotaStore, QuotaStore
from allocator.replay import console
from allocator.replay.options import OptionsError, ReplayOptions, add_arguments
from allocator.replay.report import write_report
from allocator.replay.rules import Rules
from allocator.replay.runner import ReplayRun, replay, send_changes
from allocator.replay.sources import Bound, History, from_file, parse_lead_data, topic_history
from allocator.replay.summary import Comparison, InputSource

__all__ = ["add_arguments", "execute", "run"]

# Exit status of a replay that could not start: the usage error's, as argparse's own.
USAGE = 2


def run(args: argparse.Namespace) -> int:
    """The command on argparse's answer: its options checked first, then `execute`."""
    try:
        options = ReplayOptions.from_namespace(args)
    except OptionsError as exc:
        print(f"replay: {exc}", file=sys.stderr)
        return USAGE
    return execute(options)


def execute(options: ReplayOptions) -> int:
    settings = Settings()
    try:
        history = _history(options, settings)
        clients, resources = _setup(options, settings)
    except (OSError, ValueError) as exc:
        # A source that changed since the options were checked, a topic that does
        # not exist, or a clients/resources file with bad lines (named one by one).
        print(f"replay: {exc}", file=sys.stderr)
        return USAGE
    console.show_rejected(history.rejected)
    compare = options.variant is not None
    sources = _sources(options, history, clients, resources)
    started = time.perf_counter()
    base = _run(history, clients, resources, Rules(), options, settings, compare, sources)
    seconds = time.perf_counter() - started
    console.show_undecidable(base.undecidable)
    options.out.write_text("".join(line + "\n" for line in base.lines), encoding="utf-8")
    summary = base.summary.result()
    comparison = None
    if options.variant is not None:
        other = _run(history, clients, resources, options.variant, options, settings, True, sources)
        comparison = Comparison(summary, other.summary.result(), send_changes(base, other))
    if options.report is not None:
        console.show_report(write_report(options.report, summary, comparison))
    if not options.quiet:
        console.show_summary(summary, len(history.leads), seconds)
        if comparison is not None:
            console.show_comparison(comparison)
    return 0


def _history(options: ReplayOptions, settings: Settings) -> History:
    if options.reads_topics:
        leads, patterns, rejected = topic_history(
            settings.kafka_bootstrap_servers,
            options.leads_topic,
            options.patterns_topic,
            options.start,
            options.end,
            settings.kafka_client_options(),
        )
    else:
        leads, patterns, rejected = [], [], []
    if options.leads is not None:
        leads, bad = from_file(options.leads, parse_lead_data)
        rejected += bad
    if options.patterns is not None:
        patterns, bad_patterns = from_file(options.patterns, parse_pattern_data)
        rejected += bad_patterns
    return History(leads, patterns, rejected)


def _sources(
    options: ReplayOptions, history: History, clients: list[Client], resources: list[Resource]
) -> tuple[InputSource, ...]:
    """Where each input was read and how much of it, for the report's "inputs" part."""
    skipped = Counter(r.source for r in history.rejected)

    def read(kind: str, path: Path | None, topic: str | None, records: int) -> InputSource:
        if path is not None:
            return InputSource(kind, "file", str(path), records, skipped[str(path)])
        assert topic is not None
        # A patterns topic is read from its start: patterns from before the
        # window still hold during it (sources.topic_history).
        start = options.start if kind == "leads" else None
        return InputSource(
            kind, "topic", topic, records, skipped[topic], _window(start, options.end)
        )

    def setup(kind: str, path: Path | None, records: int) -> InputSource:
        if path is not None:
            return InputSource(kind, "file", str(path), records)
        # The setting's name, never its value: a database URL may hold a password.
        return InputSource(kind, "database", "ALLOCATOR_DATABASE_URL", records)

    found = [read("leads", options.leads, options.leads_topic, len(history.leads))]
    if options.patterns is not None or options.patterns_topic is not None:
        found.append(
            read("patterns", options.patterns, options.patterns_topic, len(history.patterns))
        )
    found.append(setup("clients", options.clients, len(clients)))
    found.append(setup("resources", options.resources, len(resources)))
    return tuple(found)


def _window(start: Bound | None, end: Bound | None) -> str:
    def bound(b: Bound) -> str:
        if b.offset is not None:
            return f"offset {b.offset}"
        assert b.at is not None  # a Bound is an offset or a time
        return f"record time {b.at.isoformat()}"

    first = f"from {bound(start)}" if start else "from the start"
    last = f"up to (not including) {bound(end)}" if end else "to the end"
    return f"{first} {last}"


def _setup(options: ReplayOptions, settings: Settings) -> tuple[list[Client], list[Resource]]:
    if options.clients is not None and options.resources is not None:
        return _clients(options.clients), _resources(options.resources)
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
    if options.clients is not None:
        clients = _clients(options.clients)
    if options.resources is not None:
        resources = _resources(options.resources)
    return clients, resources


def _clients(path: Path) -> list[Client]:
    return load_all(path, lambda d: validate(Client, d))


def _resources(path: Path) -> list[Resource]:
    return load_all(path, lambda d: validate(Resource, d))


def _quota(options: ReplayOptions, settings: Settings, rules: Rules) -> QuotaStore:
    if not options.redis_namespace:
        return MemoryQuotaStore()
    from allocator.quota.redis_store import RedisQuotaStore

    # Each run gets a fresh sub-namespace, so a rerun decides afresh and the
    # live counters (no prefix, or the worker's own) are never touched.
    prefix = f"replay:{options.redis_namespace}:{rules.name}:{uuid.uuid4().hex[:8]}:"
    return RedisQuotaStore.from_url(
        settings.redis_url, prefix=prefix, retention_days=settings.quota_retention_days
    )


def _run(
    history: History,
    clients: list[Client],
    resources: list[Resource],
    rules: Rules,
    options: ReplayOptions,
    settings: Settings,
    keep_outcomes: bool,
    sources: tuple[InputSource, ...],
) -> ReplayRun:
    with console.progress(rules.name, len(history.leads), options.quiet) as advance:

        async def go() -> ReplayRun:
            quota = _quota(options, settings, rules)
            try:
                return await replay(
                    history,
                    clients,
                    resources,
                    rules,
                    settings.schedule(),
                    quota,
                    advance,
                    keep_outcomes,
                    sources=sources,
                )
            finally:
                await quota.close()

        return asyncio.run(go())
