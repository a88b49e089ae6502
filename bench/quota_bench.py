"""Reservations per second: the batched Lua path vs the design's naive
check-then-increment `select_resource`, against the same Redis in one run.

    python bench/quota_bench.py [--leads 20000] [--batch 500] [--redis URL]
                                [--cluster [URL]] [--rounds N]

The batched path runs three cases, interleaved, `--rounds` times each
(medians): day counters only; round 2's counters; and as the worker asks.

Round 2's counters (CONTRACT.md section 8): each resource has a rolling-week
limit and draws from a pool with a day and a week limit, and each lead has
its own daily cap and its recipient domain's (one of 100 domains). Every
limit there is roomy, so nothing is refused and every check runs on every
reservation: 13 day counters per resource for its week, the pool's day and
13 for its week, the lead's and the domain's counters, and four increments
per send. As the worker asks: the same, plus what the worker's requests
carry besides (the lead's id and the slot's instant): the lead's
suppression, each resource's health, and the send written to the lead's
index of sends.

These three cases also print Redis's own time a reservation: the time INFO
commandstats counts in script calls (no reset: the difference before and
after, so nothing else should run scripts on that Redis meanwhile), its
share of the case's wall time (the rest is the client's and the network's
time not overlapped with Redis's: the client encodes a batch's next call
while Redis runs one), and the rate that time allows at most, whatever the
client did. And the client's CPU time a reservation (this process's, over
the same span): added to Redis's, it says how many reservations this
machine's cores could serve at most, however the work were spread over
processes, Redis instances or a cluster (a bound above the truth: Redis's
script time leaves out reading the commands and writing the replies).

`--cluster` also runs the batched path on a Redis Cluster (URL
`redis+cluster://host:port`, or without one a cluster of three primaries and
three replicas started here on loopback): leads of one client (one slot, one
primary), of 12 clients (a batch split into one script call per slot, sent to
the three primaries at once), and of 12 clients with `wait_replicas=1` (each
round trip waits for a replica); the same two client mixes on the one Redis
are the baseline. `--rounds` repeats those figures and prints the medians.

The naive path reads every resource's counter (one GET per resource), picks
the least used, then INCRs it: one round trip per resource per lead plus one,
and not atomic, so concurrent clients overshoot limits. The script counts that
overshoot too.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime

from redis.asyncio import Redis

from allocator.channels import Channel
from allocator.quota import ChannelAsk, LeadRequest, ResourceQuota, choose_resource
from allocator.quota.base import Cap, PoolQuota, counter_key
from allocator.quota.redis_store import RedisQuotaStore
from streams.local import OwnRedisCluster, forget_keys

DAY = date(2026, 11, 27)
SLOT = int(datetime(2026, 11, 27, 14, tzinfo=UTC).timestamp())  # the send's instant
# The CPUs this process may run on (where the OS says; else all of them).
CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
ROOMY = 10**9  # no limit binds: every check runs and every reservation succeeds
# Day counters only: 5 resources with a roomy day cap and nothing else.
ROOMY_DAY = tuple(ResourceQuota(f"domain-{i}.io", ROOMY) for i in range(5))
ROUND2 = tuple(
    ResourceQuota(
        f"domain-{i}.io",
        ROOMY,
        weekly=ROOMY,
        pool=PoolQuota("warm" if i < 3 else "cold", ROOMY, ROOMY),
    )
    for i in range(5)
)


@dataclass(frozen=True)
class Timed:
    rate: float  # reservations/s
    client_us: float  # this process's CPU time a reservation (encoding, the socket, decoding)


async def script_usec(redis: Redis) -> int:
    """Microseconds Redis has spent running scripts (EVAL and EVALSHA) since
    its statistics were last reset."""
    stats = await redis.info("commandstats")
    return sum(int(v["usec"]) for k, v in stats.items() if k in ("cmdstat_evalsha", "cmdstat_eval"))


async def batched(
    url: str,
    prefix: str,
    leads: int,
    batch: int,
    resources: tuple[ResourceQuota, ...],
    clients: int = 1,
    caps: bool = False,
    lead_info: bool = False,
) -> Timed:
    """Reservations/s of `leads` leads, `batch` per reserve(); `caps`: each lead
    with its own daily cap and its recipient domain's, as decision.py asks them;
    `lead_info`: also the lead's id and the slot's instant, as the worker asks:
    the suppression check, each resource's health and the lead's index of sends."""
    store = RedisQuotaStore.from_url(url, prefix=prefix)
    requests = bench_requests(leads, resources, clients, caps, lead_info)
    start, cpu = time.perf_counter(), time.process_time()
    for i in range(0, leads, batch):
        await store.reserve(requests[i : i + batch])
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    await store.close()
    return Timed(leads / elapsed, cpu / leads * 1e6)


def bench_requests(
    leads: int,
    resources: tuple[ResourceQuota, ...],
    clients: int = 1,
    caps: bool = False,
    lead_info: bool = False,
) -> list[LeadRequest]:
    """The leads batched() reserves (its arguments say what they carry)."""
    if clients == 1:
        owned = [resources]
    else:  # each client its own resources, as a cluster wants them (README, "Redis Cluster")
        owned = [tuple(_owned(r, c) for r in resources) for c in range(clients)]
    plain = [(ChannelAsk(Channel.EMAIL, (DAY,), mine),) for mine in owned]

    def asks(i: int) -> tuple[ChannelAsk, ...]:
        if not caps:
            return plain[i % clients]
        lead = Cap(f"lead-{i}", ROOMY)
        domain = Cap(f"recipient-{i % 100}.com", ROOMY)
        at = (SLOT,) if lead_info else ()
        mine = owned[i % clients]
        return (ChannelAsk(Channel.EMAIL, (DAY,), mine, lead=lead, domain=domain, at=at),)

    def request(i: int) -> LeadRequest:
        client = f"client-{i % clients}"
        if not lead_info:
            return LeadRequest(f"ev-{i}", "plan", asks(i), DAY, client)
        return LeadRequest(
            f"ev-{i}", "plan", asks(i), DAY, client, f"lead-{i}", f"alloc-{i}", f"ev-{i}", SLOT
        )

    return [request(i) for i in range(leads)]


def _owned(resource: ResourceQuota, client: int) -> ResourceQuota:
    return ResourceQuota(f"client-{client}/{resource.resource_id}", resource.limit)


async def naive(
    url: str, prefix: str, leads: int, resources: tuple[ResourceQuota, ...], clients: int = 1
) -> tuple[float, int]:
    """The design's select_resource + increment_usage, per lead; returns (rate, overshoot)."""
    redis = Redis.from_url(url, decode_responses=True)
    keys = [counter_key(prefix, Channel.EMAIL, r.resource_id, DAY) for r in resources]

    async def one_client(count: int) -> None:
        for _ in range(count):
            counts = [int(await redis.get(k) or 0) for k in keys]  # one GET per resource
            chosen = choose_resource(counts, resources)
            if chosen is not None:
                await redis.incr(keys[chosen])

    start = time.perf_counter()
    await asyncio.gather(*(one_client(leads // clients) for _ in range(clients)))
    elapsed = time.perf_counter() - start
    final = [int(await redis.get(k) or 0) for k in keys]
    overshoot = sum(max(0, c - (r.limit or c)) for c, r in zip(final, resources, strict=True))
    await redis.aclose()
    forget_keys(url, prefix)
    return leads / elapsed, overshoot


@contextlib.contextmanager
def cluster_url(given: str) -> Iterator[str]:
    if given:
        yield given
    else:
        with OwnRedisCluster() as cluster:
            yield cluster.url


async def cluster_figures(
    redis_url: str, cluster: str, leads: int, batch: int, run: str, rounds: int
) -> None:
    """Batched reservations/s: one Redis vs the cluster, medians of `rounds`, interleaved."""
    cases = {
        "one Redis, 1 client": (redis_url, 1),
        "one Redis, 12 clients": (redis_url, 12),
        "cluster, 1 client": (cluster, 1),
        "cluster, 12 clients": (cluster, 12),
        "cluster, 12 clients, WAIT 1": (f"{cluster}?wait_replicas=1&wait_timeout_ms=100", 12),
    }
    rates: dict[str, list[float]] = {name: [] for name in cases}
    for r in range(rounds):
        for i, (name, (url, clients)) in enumerate(cases.items()):
            prefix = f"bench:{run}:c{r}-{i}:"
            timed = await batched(url, prefix, leads, batch, ROOMY_DAY, clients)
            rates[name].append(timed.rate)
            forget_keys(url, prefix)
    base = statistics.median(rates["one Redis, 12 clients"])
    print(f"{leads} reservations over 5 resources, batches of {batch}, median of {rounds}:")
    for name, values in rates.items():
        rate = statistics.median(values)
        print(f"  {name:<28} {rate:>10,.0f} reservations/s  {rate / base:>5.2f}x")


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--leads", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--cluster", nargs="?", const="", default=None, metavar="URL")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    tight = tuple(ResourceQuota(f"seat-{i}", 17) for i in range(3))
    run = uuid.uuid4().hex[:8]
    redis = Redis.from_url(args.redis)

    cases = {  # name -> (resources, caps, lead_info)
        "day counters only": (ROOMY_DAY, False, False),
        "round 2's counters": (ROUND2, True, False),
        "... and lead id, as the worker": (ROUND2, True, True),
    }
    rates: dict[str, list[float]] = {name: [] for name in cases}
    in_redis: dict[str, list[float]] = {name: [] for name in cases}  # us a lead
    in_client: dict[str, list[float]] = {name: [] for name in cases}  # us a lead
    for r in range(args.rounds):  # interleaved, so that all see the same load
        for i, (name, (resources, caps, lead_info)) in enumerate(cases.items()):
            prefix = f"bench:{run}:{i}-{r}:"
            before = await script_usec(redis)
            timed = await batched(
                args.redis, prefix, args.leads, args.batch, resources, 1, caps, lead_info
            )
            in_redis[name].append((await script_usec(redis) - before) / args.leads)
            rates[name].append(timed.rate)
            in_client[name].append(timed.client_us)
            forget_keys(args.redis, prefix)
    fast, full, worker = (statistics.median(x) for x in rates.values())
    slow, _ = await naive(args.redis, f"bench:{run}:n:", args.leads, ROOMY_DAY)
    _, overshoot = await naive(args.redis, f"bench:{run}:o:", 2000, tight, clients=8)
    await batched(args.redis, f"bench:{run}:t:", 2000, args.batch, tight)
    tight_counts = [
        int(v or 0)
        for v in await redis.mget(
            [counter_key(f"bench:{run}:t:", Channel.EMAIL, r.resource_id, DAY) for r in tight]
        )
    ]
    await redis.aclose()
    forget_keys(args.redis, f"bench:{run}:")

    print(
        f"{args.leads} reservations over 5 resources, batches of {args.batch}, "
        f"batched: median of {args.rounds}"
    )
    print(f"  batched Lua, day counters only   {fast:>10,.0f} reservations/s")
    print(f"  batched Lua, round 2's counters  {full:>10,.0f} reservations/s")
    print(f"  ... and lead id, as the worker   {worker:>10,.0f} reservations/s")
    print(f"  naive check-then-increment       {slow:>10,.0f} reservations/s")
    print(f"  ratio day counters / naive       {fast / slow:>10.1f}x")
    print(f"  ratio round 2 / naive            {full / slow:>10.1f}x")
    print(f"  ratio round 2 / day counters     {full / fast:>10.2f}x")
    print(f"  ratio as the worker / round 2    {worker / full:>10.2f}x")
    print("Redis's own time a reservation (the scripts' time in INFO commandstats), medians:")
    for name in cases:
        own = statistics.median(in_redis[name])
        # (each round's share of its own time, then their median)
        share = statistics.median(
            us * rate / 1e6 for us, rate in zip(in_redis[name], rates[name], strict=True)
        )
        print(
            f"  {name:<32} {own:>5.1f} us: {share:>4.0%} of the time; "
            f"Redis alone would serve {1e6 / own:>9,.0f}/s"
        )
    print(
        f"CPU time a reservation, medians: this client's process, Redis's script and "
        f"each round's sum; {CORES} cores, all busy all the time, would serve at most:"
    )
    for name in cases:
        client, own = statistics.median(in_client[name]), statistics.median(in_redis[name])
        both = statistics.median(
            c + r for c, r in zip(in_client[name], in_redis[name], strict=True)
        )
        print(
            f"  {name:<32} client {client:>5.1f} us, Redis {own:>5.1f} us, "
            f"sum {both:>5.1f} us: {CORES * 1e6 / both:>9,.0f}/s"
        )
    print("2,000 leads, 3 seats of 17, 8 concurrent clients:")
    print(
        f"  naive: {overshoot} reservations past the limits; "
        f"batched: counters {tight_counts} (limit 17)"
    )
    if args.cluster is not None:
        with cluster_url(args.cluster) as cluster:
            await cluster_figures(args.redis, cluster, args.leads, args.batch, run, args.rounds)


if __name__ == "__main__":
    asyncio.run(main())
