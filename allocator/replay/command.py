"""`allocator replay`: from checked options, read the history, replay it (twice
with --compare), and write the allocations, the cancellations and health
records the send-events produced, the report and the terminal summary.

The parts live beside it: options.py (the flags), sources.py (the history),
runner.py (the replay), summary.py (its figures), report.py and console.py (what
is written and shown).
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from allocator.config import Settings
from allocator.errors import InvalidRecord, LoadError
from allocator.files import load_all
from allocator.models import Client, Pool, Resource, parse_pattern_data, validate
from allocator.quota import MemoryQuotaStore, QuotaStore
from allocator.replay import console
from allocator.replay.options import OptionsError, ReplayOptions, add_arguments
from allocator.replay.processes import Forked, ShardJob, workers
from allocator.replay.report import write_report
from allocator.replay.rules import Rules, Setup
from allocator.replay.runner import ReplayRun, replay, send_changes
from allocator.replay.shards import plan_shards
from allocator.replay.sources import (
    Bound,
    History,
    from_file,
    located_from_file,
    parse_lead_data,
    parse_send_event_data,
    topic_history,
)
from allocator.replay.summary import SEND_EVENTS, Comparison, InputSource
from allocator.running import run_to_end

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
    with _no_collections():
        return _execute(options)


@contextmanager
def _no_collections() -> Iterator[None]:
    """Python's cycle collector off for the run. A replay keeps every lead,
    decision and held answer until it ends and makes next to no cyclic
    garbage: with the collector on, a 200,000-lead replay freed about 1,600
    objects in cycles, and its collections cost 30% of the run under the
    default thresholds, still 9% when made rare (issue 15); the peak memory
    is the same either way (1.08 GB). Reference counting frees the rest as
    usual; what it cannot (a cycle, such as an exception kept with its
    traceback) waits for the end of the run, and the replay keeps no such
    thing per lead (an undecidable lead leaves its message). Objects alive
    at the start are frozen out of later collections."""
    enabled = gc.isenabled()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
        gc.unfreeze()


def _execute(options: ReplayOptions) -> int:
    settings = Settings()
    try:
        history = _history(options, settings)
        given, pools_read = _setup(options, settings)
    except (OSError, ValueError) as exc:
        # A source that changed since the options were checked, a topic that does
        # not exist or stalled before its end, a clients/resources/pools file
        # with bad lines (named one by one), or a resource naming a pool its
        # client does not have: each said in one line, exit 2.
        print(f"replay: {exc}", file=sys.stderr)
        return USAGE
    if options.variant is not None:
        try:
            # Checked on this setup before anything runs: a rules file naming a
            # resource or client this history has not, or a change the record
            # cannot hold, costs one line, not a baseline replay.
            options.variant.apply(*given)
        except InvalidRecord as exc:
            print(f"replay: --compare {options.compare}: {exc}", file=sys.stderr)
            return USAGE
    console.show_rejected(history.rejected)
    compare = options.variant is not None
    clients, resources, pools = given
    sources = _sources(options, history, clients, resources, pools if pools_read else None)
    started = time.perf_counter()
    base = _run(history, given, Rules(), options, settings, compare, sources)
    seconds = time.perf_counter() - started
    console.show_rejected(base.rejected)  # send-events naming no send it reserved
    console.show_undecidable(base.undecidable)
    _write_lines(options.out, base.lines)
    if options.cancellations is not None:
        _write_lines(options.cancellations, base.cancellations)
    if options.health is not None:
        _write_lines(options.health, base.health)
    summary = base.summary.result()
    comparison = None
    if options.variant is not None:
        other = _run(history, given, options.variant, options, settings, True, sources)
        console.show_variant_rejected(options.variant.name, other.rejected)
        comparison = Comparison(summary, other.summary.result(), send_changes(base, other))
    if options.report is not None:
        console.show_report(write_report(options.report, summary, comparison))
    if not options.quiet:
        console.show_summary(summary, len(history.leads), seconds, base.processes)
        if comparison is not None:
            console.show_comparison(comparison)
    return 0


def _write_lines(path: Path, lines: Sequence[str]) -> None:
    # One join, without a copy of each line with its newline (150 MB for
    # 200,000 leads) or of the whole text with its last one.
    with path.open("w", encoding="utf-8") as out:
        out.write("\n".join(lines))
        if lines:
            out.write("\n")


def _history(options: ReplayOptions, settings: Settings) -> History:
    if options.reads_topics:
        history = topic_history(
            settings.kafka_bootstrap_servers,
            options.leads_topic,
            options.patterns_topic,
            options.start,
            options.end,
            settings.kafka_client_options(),
            send_events_topic=options.send_events_topic,
        )
    else:
        history = History([], [], [])
    if options.leads is not None:
        history.leads, bad = from_file(options.leads, parse_lead_data)
        history.rejected += bad
    if options.patterns is not None:
        history.patterns, bad_patterns = from_file(options.patterns, parse_pattern_data)
        history.rejected += bad_patterns
    if options.send_events is not None:
        history.send_events, history.origins, bad_sends = located_from_file(
            options.send_events, parse_send_event_data
        )
        history.rejected += bad_sends
    return history


def _sources(
    options: ReplayOptions,
    history: History,
    clients: Sequence[Client],
    resources: Sequence[Resource],
    pools: Sequence[Pool] | None = None,
) -> tuple[InputSource, ...]:
    """Where each input was read and how much of it, for the report's "inputs"
    part; `pools` None: none were read (no resource names one)."""
    skipped = Counter(r.source for r in history.rejected)

    def read(kind: str, path: Path | None, topic: str | None, records: int) -> InputSource:
        if path is not None:
            return InputSource(kind, "file", str(path), records, skipped[str(path)])
        assert topic is not None
        # A patterns topic is read from its start: patterns from before the
        # window still hold during it (sources.topic_history).
        start = None if kind == "patterns" else options.start
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
    if options.reads_send_events:
        found.append(
            read(
                SEND_EVENTS,
                options.send_events,
                options.send_events_topic,
                len(history.send_events),
            )
        )
    found.append(setup("clients", options.clients, len(clients)))
    found.append(setup("resources", options.resources, len(resources)))
    if pools is not None:
        found.append(setup("pools", options.pools, len(pools)))
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


def _setup(options: ReplayOptions, settings: Settings) -> tuple[Setup, bool]:
    """The clients, resources and pools to replay with, and whether pools were
    read: each from its file, else from the database, which is opened only for
    what no file gives (pools only when a resource, or the rules, name one).
    A resource naming a pool its client does not have is refused (ValueError)."""
    clients = None if options.clients is None else _clients(options.clients)
    resources = None if options.resources is None else _resources(options.resources)
    pools = None if options.pools is None else _pools(options.pools)
    wants_pools = pools is None and (
        resources is None
        or any(r.pool_id is not None for r in resources)
        or (options.variant is not None and options.variant.names_pools)
    )
    if clients is None or resources is None or wants_pools:
        stored = _from_database(settings)
        clients = stored.clients if clients is None else clients
        resources = stored.resources if resources is None else resources
        pools = stored.pools if pools is None else pools
    _check_pools(options, resources, pools or [])
    return Setup(clients, resources, pools or []), pools is not None


def _from_database(settings: Settings) -> Setup:
    from allocator.store import Database
    from allocator.store.database import list_pools

    async def load() -> Setup:
        db = Database(settings.database_url)
        try:
            await db.create_schema()
            snapshot = await db.load_snapshot()
            # Every pool, also of a client given by --clients and not in the
            # database (the snapshot holds the database's clients only).
            async with db.session() as session:
                pools = await list_pools(session)
        finally:
            await db.close()
        return Setup(
            [s.client for s in snapshot.values()],
            [r for s in snapshot.values() for r in s.resources],
            pools,
        )

    return run_to_end(load())


def _check_pools(options: ReplayOptions, resources: list[Resource], pools: list[Pool]) -> None:
    """A resource naming a pool its client does not have on its channel is
    refused, as `allocator resources load` refuses it: a resources file's lines
    are named (LoadError); the database's resources by their ids."""
    if all(r.pool_id is None for r in resources):
        return
    known = {(p.client_id, p.channel.value, p.pool_id) for p in pools}
    where = f"--pools {options.pools}" if options.pools is not None else "the database"
    if options.resources is not None:
        from allocator.store.loaders import check_pools

        try:
            check_pools(options.resources, resources, known)
        except LoadError as err:
            raise ValueError(f"{err}\n  (pools read from {where})") from None
        return
    for r in resources:
        if r.pool_id is not None and (r.client_id, r.channel.value, r.pool_id) not in known:
            raise ValueError(
                f"resource {r.resource_id!r} of client {r.client_id!r} (the database's) names "
                f"{r.channel.value} pool {r.pool_id!r}, which {where} does not have"
            )


def _clients(path: Path) -> list[Client]:
    return load_all(path, lambda d: validate(Client, d))


def _resources(path: Path) -> list[Resource]:
    return load_all(path, lambda d: validate(Resource, d))


def _pools(path: Path) -> list[Pool]:
    return load_all(path, lambda d: validate(Pool, d))


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
    given: Setup,
    rules: Rules,
    options: ReplayOptions,
    settings: Settings,
    keep_outcomes: bool,
    sources: tuple[InputSource, ...],
) -> ReplayRun:
    if not options.redis_namespace:  # counters in Redis are one store: not split
        resources = rules.apply(given.clients, given.resources, given.pools).resources
        shards = plan_shards(history, resources, workers(options.workers))
        if len(shards) > 1:
            job = ShardJob(
                history,
                given.clients,
                given.resources,
                rules,
                settings.schedule(),
                keep_outcomes,
                sources,
                tuple(given.pools),
            )
            # Forked before the progress bar starts its thread (processes.Forked).
            with (
                Forked(job, shards) as forked,
                console.progress(rules.name, len(history.leads), options.quiet) as advance,
            ):
                return forked.finish(advance)
    with console.progress(rules.name, len(history.leads), options.quiet) as advance:

        async def go() -> ReplayRun:
            quota = _quota(options, settings, rules)
            try:
                return await replay(
                    history,
                    given.clients,
                    given.resources,
                    rules,
                    settings.schedule(),
                    quota,
                    advance,
                    keep_outcomes,
                    sources=sources,
                    pools=given.pools,
                )
            finally:
                await quota.close()

        return run_to_end(go())
