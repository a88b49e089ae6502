"""A split replay's processes (issue 15; which clients go where: shards.py).

The process that read the history forks one process per shard but the
first; the history reaches them through the fork, not pickled (a page is
copied when a process writes to it, as walking the history does to some:
277 MB of the parent's 863 on 200,000 leads). Each walks the
whole history in event time with an in-memory quota store of its own,
deciding its clients' leads and applying their send-events (runner.replay's
`only`), while the parent does the same for the first shard. Every shard
batches the send-events as the whole history does, so each looks for lapsed
health at the same instants, for its own clients. The parent then puts the
allocation records back in input order; lists the health found lapsed (by
client, as lapsed_health does), each send-event's records, and the records
skipped (undecidable leads, send-events naming no reserved send) in the
order one process produces them; and adds the shards' summaries up. What
the replay writes is the same bytes as one process writes
(tests/unit/allocator/replay/test_shards.py, on the recorded round-2 history
with its send-events among others).

Only on Linux: macOS's system libraries are not safe in a forked child of a
process with threads (which is why Python stopped forking by default there),
and Windows has no fork.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from ctypes import Array
from dataclasses import dataclass
from functools import cached_property, partial
from itertools import chain
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from types import TracebackType
from typing import Any

from allocator.decision import Schedule
from allocator.errors import InvalidRecord
from allocator.feedback import Applied
from allocator.models import Client, HealthChange, Pool, Resource, ScoredLead, SendEvent
from allocator.quota import MemoryQuotaStore
from allocator.replay.rules import Rules
from allocator.replay.runner import Application, Outcome, ReplayRun, health_changes, replay
from allocator.replay.shards import Shard
from allocator.replay.sources import Event, History
from allocator.replay.summary import InputSource, Summary
from allocator.running import run_to_end

# The default number of processes: one per usable CPU, at most this many
# (each forked process copies the pages of the history it writes to).
MOST_BY_DEFAULT = 8
# How often the parent passes the shards' progress on, in seconds.
PROGRESS_EVERY = 0.2
FORKS = sys.platform.startswith("linux")


def workers(asked: int | None) -> int:
    """How many processes a replay may decide in: as asked, else one per usable
    CPU up to MOST_BY_DEFAULT; one where forking is not safe."""
    if not FORKS:
        return 1
    if asked is not None:
        return asked
    return min(len(os.sched_getaffinity(0)), MOST_BY_DEFAULT)


@dataclass(frozen=True)
class ShardJob:
    """What every shard replays with: the whole history and setup, and the rules."""

    history: History
    clients: list[Client]
    resources: list[Resource]
    rules: Rules
    schedule: Schedule
    keep_outcomes: bool = False
    sources: tuple[InputSource, ...] = ()
    pools: tuple[Pool, ...] = ()

    @cached_property
    def in_event_time(self) -> list[tuple[int, Event]]:
        """The history's events in event time, merged once for every shard."""
        return self.history.in_event_time()


# A send-event naming no reserved send, as a shard sends it back: its
# InvalidRecord's code, field and message (InvalidRecord does not pickle).
Refused = tuple[str, str | None, str]


@dataclass
class _ShardRun:
    """What a shard's replay gives back."""

    lines: list[str]  # of the shard's leads not undecided, in input order
    outcomes: list[Outcome]  # per lead of the shard, when kept
    # (index in the whole history's leads, code, field, message), in the order
    # the shard met them: what the summary lists (an UndecidableLead holds its
    # cause, which may not pickle)
    undecided: list[tuple[int, str, str | None, str]]
    # per application of send-events (runner.Application): the health found
    # lapsed, the batch, and the results of the shard's send-events
    applications: list[tuple[list[HealthChange], list[int], dict[int, Applied | Refused]]]
    summary: Summary


class Forked:
    """The shards but the first, each replaying in a forked process from the
    moment this is built; `finish()` decides the first here and gives the
    whole run. Used as a context manager, it kills what still runs on leaving
    (another shard failed). Built before any other thread starts (a progress
    bar's): a forked process has only the thread that forked, and a lock
    another held at the fork stays held in it."""

    def __init__(self, job: ShardJob, shards: Sequence[Shard]) -> None:
        self.job = job
        self.shards = shards
        job.in_event_time  # merged here, before the fork, for all  # noqa: B018
        context = multiprocessing.get_context("fork")
        # Leads each forked shard has decided: each writes only its own slot, so
        # no lock (one a child held when killed would stop the parent for good).
        self._done = context.RawArray("q", len(shards))
        self._waiting: dict[Connection, int] = {}
        self._processes: dict[int, BaseProcess] = {}
        self._runs: dict[int, _ShardRun] = {}
        try:
            for k, shard in enumerate(shards[1:], start=1):
                receive, send = context.Pipe(duplex=False)
                process = context.Process(
                    target=_run_forked,
                    # Under fork, arguments reach the child as they are, unpickled.
                    args=(send, self._done, k, job, shard),
                    name=f"replay-shard-{k}",
                    daemon=True,
                )
                process.start()
                send.close()  # the child's alone: its end closing tells its exit
                self._processes[k] = process
                self._waiting[receive] = k
        except BaseException:
            self.__exit__(None, None, None)  # the shards forked so far
            raise

    def __enter__(self) -> Forked:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        where: TracebackType | None,
    ) -> None:
        for process in self._processes.values():
            if process.is_alive():
                process.kill()
            process.join()

    def finish(self, progress: Callable[[int], None] = lambda n: None) -> ReplayRun:
        """Decide the first shard here, collect the others' answers, merge."""
        reported = 0

        def count(n: int) -> None:
            nonlocal reported
            self._collect(0)  # a shard that failed or died fails the run now
            now = sum(self._done)
            progress(n + now - reported)
            reported = now

        self._runs[0] = _run_shard(self.job, self.shards[0], count)
        while self._waiting:
            self._collect(PROGRESS_EVERY)
            count(0)
        return _merge(self.job, self.shards, [self._runs[k] for k in range(len(self.shards))])

    def _collect(self, timeout: float) -> None:
        """The answers sent so far (a shard's end of its pipe closes when it exits,
        so one that died is found here too)."""
        for ready in wait(list(self._waiting), timeout):
            assert isinstance(ready, Connection)
            k = self._waiting.pop(ready)
            self._runs[k] = _answer(ready, k, self._processes[k])


def _run_forked(send: Connection, done: Array[Any], k: int, job: ShardJob, shard: Shard) -> None:
    """In a shard's own process: replay its part and send the answer back."""
    # Not a progress bar's proxies of stdout and stderr, should one run.
    sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__

    def count(n: int) -> None:
        done[k] += n

    try:
        answer = _run_shard(job, shard, count)
        answer.summary.settle()  # its memo of shapes is dropped: the parent needs the counts
        send.send(("run", answer))
    except BaseException:  # whatever it was, the parent says it
        send.send(("failed", traceback.format_exc()))
    finally:
        send.close()


def _run_shard(job: ShardJob, shard: Shard, count: Callable[[int], None]) -> _ShardRun:
    """The replay of the shard's clients' leads and send-events, walking the
    whole history (runner.replay's `only`)."""
    history = job.history
    # Its rejected records are the whole run's: read by _merge, not here.
    whole = History(history.leads, history.patterns, [], history.send_events, history.origins)
    run = run_to_end(
        replay(
            whole,
            job.clients,
            job.resources,
            job.rules,
            job.schedule,
            MemoryQuotaStore(),
            count,
            job.keep_outcomes,
            sources=job.sources,
            pools=job.pools,
            only=shard.clients,
            in_event_time=job.in_event_time,
        )
    )
    return _ShardRun(
        run.lines,
        [run.outcomes[i] for i in shard.leads] if job.keep_outcomes else [],
        [(i, e.code, e.field, e.message) for i, e in run.undecided],
        [
            (a.lapsed, a.sends, {i: _refused(r) for i, r in a.applied.items()})
            for a in run.applications
        ],
        run.summary,
    )


def _refused(result: Applied | InvalidRecord) -> Applied | Refused:
    if isinstance(result, InvalidRecord):
        return (result.code, result.field, result.message)
    return result


def _answer(ready: Connection, k: int, process: BaseProcess) -> _ShardRun:
    try:
        kind, payload = ready.recv()
    except EOFError:
        process.join()
        raise RuntimeError(
            f"replay shard {k} ended without an answer (exit code {process.exitcode})"
        ) from None
    if kind != "run":
        # Its last line says what it was; --debug shows the whole of it.
        failed = RuntimeError(f"replay shard {k} failed: {payload.strip().splitlines()[-1]}")
        failed.add_note(f"replay shard {k}'s traceback:\n{payload}")
        raise failed
    assert isinstance(payload, _ShardRun)
    return payload


def _merge(job: ShardJob, shards: Sequence[Shard], runs: Sequence[_ShardRun]) -> ReplayRun:
    """The shards' runs as one process's run of the whole history."""
    history = job.history
    leads = history.leads
    lines = [""] * len(leads)
    outcomes: list[Outcome] = [{} for _ in leads] if job.keep_outcomes else []
    summary = Summary(job.rules.describe(), job.sources)
    summary.read(history)
    undecided: list[tuple[int, InvalidRecord]] = []
    for shard, run in zip(shards, runs, strict=True):
        skipped = {index for index, *_ in run.undecided}
        decided = (index for index in shard.leads if index not in skipped)
        for index, line in zip(decided, run.lines, strict=True):
            lines[index] = line
        for index, outcome in zip(shard.leads, run.outcomes, strict=job.keep_outcomes):
            outcomes[index] = outcome
        refusals = sum(
            not isinstance(result, Applied)
            for _, _, applied in run.applications
            for result in applied.values()
        )
        summary.absorb(run.summary, skipped=len(skipped) + refusals)
        undecided.extend(
            (index, InvalidRecord(code, field, None, message))
            for index, code, field, message in run.undecided
        )
    owner = {client: k for k, shard in enumerate(shards) for client in shard.clients}
    applications = [
        _merged(history, parts, owner)
        for parts in zip(*(run.applications for run in runs), strict=True)
    ]
    for change in health_changes(applications):
        summary.list_health(change)
    refused = [
        (index, result)
        for application in applications
        for index, result in application.applied.items()
        if isinstance(result, InvalidRecord)
    ]
    if undecided or refused:
        _skip_in_order(job, summary, undecided, refused)
    return ReplayRun.of(
        job.rules, lines, summary, outcomes, undecided, history, applications, len(runs)
    )


def _skip_in_order(
    job: ShardJob,
    summary: Summary,
    undecided: list[tuple[int, InvalidRecord]],
    refused: list[tuple[int, InvalidRecord]],
) -> None:
    """The skipped records as one process meets them, which is the order of
    event time; `undecided` sorted so too."""
    history = job.history
    rank = {(type(event), index): n for n, (index, event) in enumerate(job.in_event_time)}
    skips: list[tuple[int, Callable[[], None]]] = [
        (rank[(ScoredLead, i)], partial(summary.skip_undecidable, history.leads[i], error))
        for i, error in undecided
    ]
    skips += [
        (rank[(SendEvent, i)], partial(summary.skip_send_event, history.origin(i), error))
        for i, error in refused
    ]
    for _, skip in sorted(skips, key=lambda item: item[0]):
        skip()
    undecided.sort(key=lambda item: rank[(ScoredLead, item[0])])


def _merged(
    history: History,
    parts: Sequence[tuple[list[HealthChange], list[int], dict[int, Applied | Refused]]],
    owner: dict[str, int],
) -> Application:
    """The shards' parts of one application of send-events as one process's:
    the health found lapsed, by client as lapsed_health lists it (each
    client's from its one shard, in its order), and each send-event's result
    from its client's shard."""
    sends = parts[0][1]
    if any(batch != sends for _, batch, _ in parts):
        raise RuntimeError("the replay's shards batched send-events apart")
    lapsed = sorted(chain.from_iterable(p[0] for p in parts), key=lambda h: h.client_id)
    applied: dict[int, Applied | InvalidRecord] = {}
    for index in sends:
        event = history.send_events[index]
        result = parts[owner[event.client_id]][2][index]
        if isinstance(result, Applied):
            applied[index] = result
            continue
        code, field, message = result
        # (with the value the applier named, as one process keeps it)
        value = getattr(event, field, None) if field is not None else None
        applied[index] = InvalidRecord(code, field, value, message)
    return Application(lapsed, sends, applied)
