"""Which clients (their leads and send-events) a split replay handles in
which process (issue 15; the processes: processes.py).

A decision, and a send-event applied, reads and writes only its own
client's state (its setup and patterns, its leads' and recipient domains'
caps, its pools, its leads' sends and suppressions, the health of its
resources) and the counters of the resources it lists, which are keyed by
channel and resource id, not by client. So clients that list the same
resource id are kept in one shard; any other split decides every lead and
applies every send-event as one process does, against the same counters in
the same order.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from allocator.models import Resource
from allocator.replay.sources import History

# Below this many leads a replay stays in one process: a fork and the answers'
# trip back cost tens of milliseconds, deciding 10,000 leads about 0.3 s.
MIN_LEADS = 10_000


@dataclass(frozen=True)
class Shard:
    clients: frozenset[str]
    leads: list[int]  # indexes in the history's leads, ascending


def plan_shards(history: History, resources: Sequence[Resource], most: int) -> list[Shard]:
    """The history's clients (of its leads and send-events) in at most `most`
    shards of about equal work, clients that list the same resource id in
    one, the shard with the most leads first; one shard if `most` is under 2
    or the history has under MIN_LEADS leads (or none, where a test sets
    MIN_LEADS to 0)."""
    leads = history.leads
    if most < 2 or len(leads) < max(MIN_LEADS, 1):
        return [Shard(frozenset(lead.client_id for lead in leads), list(range(len(leads))))]
    work = Counter(lead.client_id for lead in leads)
    work.update(event.client_id for event in history.send_events)
    groups = _client_groups(work, resources)
    # The largest groups first, each to the shard with the least work so far
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
    shards = [
        Shard(frozenset(c for c, k in shard_of.items() if k == n), indexes)
        for n, indexes in enumerate(members)
    ]
    # The first is decided by the process that read the history, without a
    # fork's copied pages or an answer sent back: the one with most leads
    # (groups of 10, 9 and 9 leads make shards of 10 and 18).
    return sorted(shards, key=lambda shard: -len(shard.leads))


def _client_groups(
    work: Counter[str], resources: Sequence[Resource]
) -> list[tuple[int, list[str]]]:
    """(work, clients) of each set of clients joined by a shared resource id."""
    parent = {client: client for client in work}

    def root(client: str) -> str:
        while parent[client] != client:
            parent[client] = parent[parent[client]]
            client = parent[client]
        return client

    owner: dict[str, str] = {}
    for resource in resources:
        if resource.client_id not in parent:
            continue  # a client without leads or send-events touches nothing
        first = owner.setdefault(resource.resource_id, resource.client_id)
        parent[root(resource.client_id)] = root(first)
    groups: dict[str, list[str]] = {}
    for client in work:
        groups.setdefault(root(client), []).append(client)
    return [(sum(work[c] for c in clients), sorted(clients)) for clients in groups.values()]
