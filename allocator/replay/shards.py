"""A replay split by client across processes (issue 15).

A decision reads and writes only its own client's state: the client's setup
and patterns, its leads' and recipient domains' caps, its pools and the
counters of the resources it lists. Only a resource id that two clients both
list is shared (a resource's counters are keyed by channel and id, not by
client), so clients sharing one are kept in one shard. Each shard replays its
clients' leads and patterns in a forked process with an in-memory quota store
of its own: each client's leads in the same event-time order, against the
same counters, as in one process. The parent puts the allocation records back
in input order, lists the undecidable leads in the order the whole history
met them, and adds the shards' summaries up: what the replay writes is the
same bytes as one process writes (tests/unit/replay/test_shards.py).

Not split (`shards_for` says one): a history with send-events, whose health
records (a resource's cooldown over) are published when any client's
send-event is applied, so in the order of the whole history; quotas kept in
Redis; fewer than MIN_LEADS leads, where forking costs more than it saves.
The largest client bounds the gain: its leads are decided in one process.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import traceback
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from multiprocessing.sharedctypes import Synchronized

from allocator.decision import Schedule
from allocator.errors import InvalidRecord
from allocator.models import Client, Pool, Resource, ScoredLead
from allocator.quota import MemoryQuotaStore
from allocator.replay.rules import Rules
from allocator.replay.runner import Outcome, ReplayRun, replay
from allocator.replay.sources import History
from allocator.replay.summary import InputSource, Summary
from allocator.running import run_to_end

# Below this many leads a replay stays in one process: a fork and the answers'
# trip back cost tens of milliseconds, deciding 10,000 leads about 0.3 s.
MIN_LEADS = 10_000
# How often the parent passes the shards' progress on, in seconds.
PROGRESS_EVERY = 0.2
# The shards share the history read by forking (not on Windows; macOS has it).
_CAN_FORK = "fork" in multiprocessing.get_all_start_methods()


def usable_cpus() -> int:
    """The CPUs this process may run on (a container's share, not the host's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class Shard:
    clients: frozenset[str]
    leads: list[int]  # indexes in the history's leads, ascending


def plan_shards(history: History, resources: Sequence[Resource], most: int) -> list[Shard]:
    """The history's clients in at most `most` shards of about equal leads,
    clients that list the same resource id in one; one shard if the history
    cannot be split (send-events) or is too small to be worth it."""
    leads = history.leads
    if most < 2 or history.send_events or len(leads) < MIN_LEADS or not _CAN_FORK:
        return [Shard(frozenset(lead.client_id for lead in leads), list(range(len(leads))))]
    groups = _client_groups(Counter(lead.client_id for lead in leads), resources)
    # The largest groups first, each to the shard with the fewest leads so far
    # (the first of equals): deterministic, and within one group of the best.
    groups.sort(key=lambda group: (-group[0], min(group[1])))
    sizes = [0] * min(most, len(groups))
    shard_of: dict[str, int] = {}
    for size, clients in groups:
        k = sizes.index(min(sizes))
        sizes[k] += size
        shard_of.update(dict.fromkeys(clients, k))
    members: list[list[int]] = [[] for _ in sizes]
    for index, lead in enumerate(leads):
        members[shard_of[lead.client_id]].append(index)
    return [
        Shard(frozenset(c for c, k in shard_of.items() if k == n), indexes)
        for n, indexes in enumerate(members)
    ]


def _client_groups(
    leads: Counter[str], resources: Sequence[Resource]
) -> list[tuple[int, list[str]]]:
    """(leads, clients) of each set of clients joined by a shared resource id."""
    parent = {client: client for client in leads}

    def root(client: str) -> str:
        while parent[client] != client:
            parent[client] = parent[parent[client]]
            client = parent[client]
        return client

    owner: dict[str, str] = {}
    for resource in resources:
        if resource.client_id not in parent:
            continue  # a client without leads decides nothing
        first = owner.setdefault(resource.resource_id, resource.client_id)
        parent[root(resource.client_id)] = root(first)
    groups: dict[str, list[str]] = {}
    for client in leads:
        groups.setdefault(root(client), []).append(client)
    return [(sum(leads[c] for c in clients), sorted(clients)) for clients in groups.values()]


@dataclass
class _ShardRun:
    """What a shard's process sends back."""

    decided: list[int]  # indexes in the whole history's leads, one per line
    lines: list[str]
    outcomes: list[Outcome]  # per lead of the shard, when kept
    # (index in the whole history's leads, why), in the order the shard met them
    undecided: list[tuple[int, str, str | None, str]]  # code, field, message
    summary: Summary


def replay_in_shards(
    history: History,
    shards: Sequence[Shard],
    clients: list[Client],
    resources: list[Resource],
    rules: Rules,
    schedule: Schedule,
    progress: Callable[[int], None] = lambda n: None,
    keep_outcomes: bool = False,
    sources: Sequence[InputSource] = (),
    pools: Sequence[Pool] = (),
) -> ReplayRun:
    """`replay()` of a history without send-events, quotas in memory: the
    first shard (the largest) in this process, each other in a forked one.
    Called outside any event loop: each process runs its own."""
    context = multiprocessing.get_context("fork")  # the history is shared, not copied
    done = context.Value("q", 0)  # leads the forked shards have decided
    reported = 0

    def count(n: int) -> None:
        nonlocal reported
        progress(n + done.value - reported)
        reported = done.value

    running: dict[Connection, int] = {}
    processes: dict[int, BaseProcess] = {}
    try:
        for k, shard in enumerate(shards[1:], start=1):
            receive, send = context.Pipe(duplex=False)
            process = context.Process(
                target=_run_forked,
                # Under fork, arguments reach the child as they are, unpickled.
                args=(send, done, history, shard, clients, resources, rules, schedule),
                kwargs={"keep_outcomes": keep_outcomes, "sources": sources, "pools": pools},
                name=f"replay-shard-{k}",
                daemon=True,
            )
            process.start()
            send.close()
            processes[k] = process
            running[receive] = k
        # Deciding here spares the largest shard a process's start and its
        # answer's trip back, and the pages a child copies as it touches them.
        first = _run_shard(
            history,
            shards[0],
            clients,
            resources,
            rules,
            schedule,
            count,
            keep_outcomes,
            sources,
            pools,
        )
        runs: dict[int, _ShardRun] = {0: first}
        while running:
            for ready in wait(list(running), timeout=PROGRESS_EVERY):
                assert isinstance(ready, Connection)
                k = running.pop(ready)
                runs[k] = _answer(ready, k, processes[k])
            count(0)
    finally:
        for child in processes.values():
            if child.is_alive():
                child.kill()  # another shard failed: this one's answer is not wanted
            child.join()
    answers = [runs[k] for k in range(len(shards))]
    return _merge(history, shards, answers, rules, keep_outcomes, sources)


def _run_forked(
    send: Connection,
    done: Synchronized[int],
    history: History,
    shard: Shard,
    clients: list[Client],
    resources: list[Resource],
    rules: Rules,
    schedule: Schedule,
    keep_outcomes: bool,
    sources: Sequence[InputSource],
    pools: Sequence[Pool],
) -> None:
    """In a shard's own process: replay its part and send the answer back."""
    # The progress bar's proxies of stdout and stderr take a lock its refresh
    # thread may have held at the fork, in a thread this process has not.
    sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__

    def count(n: int) -> None:
        with done.get_lock():
            done.value += n

    try:
        answer = _run_shard(
            history,
            shard,
            clients,
            resources,
            rules,
            schedule,
            count,
            keep_outcomes,
            sources,
            pools,
        )
        answer.summary.settle()  # the memo stays here
        send.send(("run", answer))
    except BaseException:  # whatever it was, the parent says it
        send.send(("failed", traceback.format_exc()))
    finally:
        send.close()


def _run_shard(
    history: History,
    shard: Shard,
    clients: list[Client],
    resources: list[Resource],
    rules: Rules,
    schedule: Schedule,
    count: Callable[[int], None],
    keep_outcomes: bool,
    sources: Sequence[InputSource],
    pools: Sequence[Pool],
) -> _ShardRun:
    """The replay of the shard's clients' leads and patterns."""
    part = History(
        leads=[history.leads[i] for i in shard.leads],
        patterns=[p for p in history.patterns if p.client_id in shard.clients],
        rejected=[],
    )
    run = run_to_end(
        replay(
            part,
            clients,
            resources,
            rules,
            schedule,
            MemoryQuotaStore(),
            count,
            keep_outcomes,
            sources=sources,
            pools=pools,
        )
    )
    undecided = {i for i, _ in run.undecided}
    return _ShardRun(
        [shard.leads[i] for i in range(len(shard.leads)) if i not in undecided],
        run.lines,
        run.outcomes,
        # What the summary lists: an UndecidableLead holds its cause, which may not pickle.
        [(shard.leads[i], e.code, e.field, e.message) for i, e in run.undecided],
        run.summary,
    )


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


def _merge(
    history: History,
    shards: Sequence[Shard],
    runs: Sequence[_ShardRun],
    rules: Rules,
    keep_outcomes: bool,
    sources: Sequence[InputSource],
) -> ReplayRun:
    """The shards' runs as one process's run of the whole history."""
    leads = history.leads
    lines = [""] * len(leads)
    outcomes: list[Outcome] = [{} for _ in leads] if keep_outcomes else []
    summary = Summary(rules.describe(), tuple(sources))
    summary.read(history)
    undecided: list[tuple[int, InvalidRecord]] = []
    for run in runs:
        for index, line in zip(run.decided, run.lines, strict=True):
            lines[index] = line
        summary.absorb(run.summary)
        undecided.extend(
            (index, InvalidRecord(code, field, None, message))
            for index, code, field, message in run.undecided
        )
    if keep_outcomes:
        for shard, run in zip(shards, runs, strict=True):
            for index, outcome in zip(shard.leads, run.outcomes, strict=True):
                outcomes[index] = outcome
    if undecided:
        # Listed in the order one process meets them: event time, then input order.
        rank = {
            index: n
            for n, (index, event) in enumerate(history.in_event_time())
            if isinstance(event, ScoredLead)
        }
        undecided.sort(key=lambda item: rank[item[0]])
        for index, error in undecided:
            summary.skip_undecidable(leads[index], error)
    return ReplayRun(
        rules,
        [line for line in lines if line],
        summary,
        outcomes,
        [error.message for _, error in undecided],
        undecided=undecided,
    )
