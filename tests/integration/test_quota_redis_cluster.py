"""The Redis quota store on a Redis Cluster (three primaries, a replica each).

The checks of test_quota_redis.py, on a cluster; where a batch goes (one
script call per slot); and failovers: a primary SIGKILLed while leads are
being reserved, its replica promoted, the reservations counted against what
was acknowledged, with and without WAIT.
"""

from __future__ import annotations

import asyncio
import shutil
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pytest
from redis.asyncio.cluster import RedisCluster

from allocator.channels import Channel
from allocator.errors import ServiceUnavailable
from allocator.models import ScoredLead
from allocator.patterns import PatternSet
from allocator.quota import ChannelAsk, Held, LeadRequest, ResourceQuota, redis_store
from allocator.quota.keys import client_tag
from allocator.quota.redis_store import RedisQuotaStore
from streams.local import ClusterNode, OwnRedisCluster, forget_keys
from streams.samples import sample_leads
from tests import services
from tests.integration.conftest import running_pipeline
from tests.integration.expect import check_allocation, check_limits, usage_of
from tests.integration.test_feedback_store import check_feedback_agrees
from tests.integration.test_quota_redis import (
    CLIENTS,
    check_a_repeat_gets_the_first_plan_and_picks,
    check_concurrent_processes_keep_weekly_and_pool_limits,
    check_concurrent_processes_never_exceed_seat_limits,
    check_counters_there_before_keep_their_expiry,
    check_increment_and_usage,
    check_redis_and_memory_stores_agree,
    parity_requests,
    raw_redis,
)
from tests.integration.test_stream import sample_setups

pytestmark = pytest.mark.integration

DAY = date(2026, 11, 27)


@pytest.fixture(scope="session")
def redis_cluster_url() -> Iterator[str]:
    with services.redis_cluster_url() as url:
        yield url


@pytest.fixture
def cluster_prefix(redis_cluster_url: str) -> Iterator[str]:
    """A key prefix of this test's own in the shared cluster; its keys are removed after."""
    prefix = f"test:{uuid.uuid4().hex[:12]}:"
    yield prefix
    forget_keys(redis_cluster_url, prefix)


async def test_concurrent_processes_never_exceed_seat_limits(
    redis_cluster_url: str, cluster_prefix: str
) -> None:
    await check_concurrent_processes_never_exceed_seat_limits(redis_cluster_url, cluster_prefix)


async def test_concurrent_processes_keep_weekly_and_pool_limits(
    redis_cluster_url: str, cluster_prefix: str
) -> None:
    await check_concurrent_processes_keep_weekly_and_pool_limits(redis_cluster_url, cluster_prefix)


async def test_feedback_agrees(redis_cluster_url: str, cluster_prefix: str) -> None:
    await check_feedback_agrees(redis_cluster_url, cluster_prefix)


async def test_redis_and_memory_stores_agree(redis_cluster_url: str, cluster_prefix: str) -> None:
    await check_redis_and_memory_stores_agree(redis_cluster_url, cluster_prefix)


async def test_a_repeat_gets_the_first_plan_and_picks(
    redis_cluster_url: str, cluster_prefix: str
) -> None:
    await check_a_repeat_gets_the_first_plan_and_picks(redis_cluster_url, cluster_prefix)


async def test_counters_there_before_keep_their_expiry(
    redis_cluster_url: str, cluster_prefix: str
) -> None:
    await check_counters_there_before_keep_their_expiry(redis_cluster_url, cluster_prefix)


async def test_increment_and_usage(redis_cluster_url: str, cluster_prefix: str) -> None:
    await check_increment_and_usage(redis_cluster_url, cluster_prefix)


async def _evalsha_calls(cluster: RedisCluster) -> int:
    """EVALSHA commands the primaries have run so far."""
    total = 0
    for node in cluster.get_primaries():
        stats = await cluster.info("commandstats", target_nodes=node)
        total += int(stats.get("cmdstat_evalsha", {}).get("calls", 0))
    return total


async def test_a_batch_is_one_script_call_per_slot_and_every_key_in_its_clients_slot(
    redis_cluster_url: str, cluster_prefix: str
) -> None:
    requests = parity_requests()
    slots = {client_tag(r.client_id)[1:-1] for r in requests}
    raw = raw_redis(redis_cluster_url)
    assert isinstance(raw, RedisCluster)
    store = RedisQuotaStore.from_url(redis_cluster_url, prefix=cluster_prefix)
    try:
        # The server's own hash of each client's (escaped) id: six distinct slots here.
        server_slot = {c: await raw.cluster_keyslot(client_tag(c)[1:-1]) for c in CLIENTS}
        assert len(set(server_slot.values())) == len(slots) == len(CLIENTS)
        before = await _evalsha_calls(raw)
        await store.reserve(requests)  # 600 leads, at most 250 a call, in 6 slots
        per_client = Counter(r.client_id for r in requests)
        expected = sum(-(-n // 250) for n in per_client.values())
        assert await _evalsha_calls(raw) - before == expected
        written = [k async for k in raw.scan_iter(match=f"{cluster_prefix}*")]
        assert written
        for key in written:
            client = next(c for c in CLIENTS if key.startswith(cluster_prefix + client_tag(c)))
            assert await raw.cluster_keyslot(key) == server_slot[client]
    finally:
        await raw.aclose()
        await store.close()


async def test_the_worker_allocates_on_a_cluster(
    broker_bootstrap: str, redis_cluster_url: str, tmp_path: Path
) -> None:
    """A worker with ALLOCATOR_REDIS_URL=redis+cluster://...: every lead
    allocated by the rules, no limit passed, every counter (in its client's
    slot) equal to the sends allocated on it."""
    database = f"sqlite+aiosqlite:///{tmp_path}/allocator.db"
    async with running_pipeline(
        broker_bootstrap, database, redis_cluster_url, tmp_path
    ) as pipeline:
        settings = pipeline.settings
        pipeline.start_worker()
        rows = sample_leads(300, seed=5)
        pipeline.produce_json(settings.topic_scored_leads, rows, "lead_id")
        emitted = pipeline.read_json(settings.topic_allocations, 300, 90)
        by_event = {a["event_id"]: a for a in emitted}
        leads = {r["event_id"]: ScoredLead.model_validate(r) for r in rows}
        assert set(leads) <= set(by_event)
        setups = sample_setups()
        for event, lead in leads.items():
            check_allocation(by_event[event], lead, setups.get(lead.client_id), PatternSet())
        used = usage_of(list(by_event.values()))
        assert used  # the samples allocate
        check_limits(used, setups)
        owner = {
            (r.channel.value, r.resource_id): client
            for client, setup in setups.items()
            for r in setup.resources
        }
        store = RedisQuotaStore.from_url(redis_cluster_url, prefix=pipeline.prefix)
        try:
            for (channel, resource, day), count in used.items():
                counted = await store.usage(
                    Channel(channel),
                    [resource],
                    date.fromisoformat(day),
                    client_id=owner[(channel, resource)],
                )
                assert counted == [count], (channel, resource, day)
        finally:
            await store.close()


# --- failover ---------------------------------------------------------------

FAULT_CLIENTS = tuple(f"client-{i}" for i in range(12))  # spread over the three primaries
RESOURCES = tuple(ResourceQuota(f"domain-{i}", None) for i in range(3))  # unlimited: all counted


@pytest.fixture(scope="module")
def fault_cluster() -> Iterator[OwnRedisCluster]:
    """A cluster of this module's own: the failover tests kill its nodes."""
    if not shutil.which("redis-server"):
        pytest.skip("no redis-server")
    with OwnRedisCluster(node_timeout_ms=1000) as cluster:
        yield cluster


@dataclass
class Workload:
    """Leads reserved in batches of 20 (mixed clients) by 4 tasks until told to stop."""

    store_url: str
    prefix: str
    acked: dict[str, tuple[float, Held]] = field(default_factory=dict)  # hold key -> (when, answer)
    failures: int = 0
    longest_gap: float = 0.0  # the longest a task went without a successful batch
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    _next: int = 0

    def _batch(self) -> list[LeadRequest]:
        batch = []
        for _ in range(20):
            n, self._next = self._next, self._next + 1
            client = FAULT_CLIENTS[n % len(FAULT_CLIENTS)]
            asks = (ChannelAsk(Channel.EMAIL, (DAY,), RESOURCES),)
            batch.append(LeadRequest(f"ev-{n}", "plan", asks, DAY, client))
        return batch

    async def _task(self) -> None:
        store = RedisQuotaStore.from_url(self.store_url, prefix=self.prefix)
        last_success = time.monotonic()
        try:
            while not self.stop.is_set():
                batch = self._batch()
                while True:  # as the stream layer does: the same batch again until it passes
                    try:
                        answers = await store.reserve(batch)
                        break
                    except ServiceUnavailable:
                        self.failures += 1
                        await asyncio.sleep(0.05)
                now = time.monotonic()
                self.longest_gap = max(self.longest_gap, now - last_success)
                last_success = now
                for request, held in zip(batch, answers, strict=True):
                    self.acked[f"{request.client_id}|{request.hold_key}"] = (now, held)
        finally:
            await store.close()

    async def run(self) -> None:
        await asyncio.gather(*(self._task() for _ in range(4)))


@dataclass
class Losses:
    counted: int  # acknowledged reservations the counters no longer have
    holds: list[str]  # acknowledged leads ("client|hold key") whose held answer is gone or changed


async def _losses(url: str, prefix: str, acked: dict[str, tuple[float, Held]]) -> Losses:
    store = RedisQuotaStore.from_url(url, prefix=prefix)
    raw = raw_redis(url)
    try:
        picked: Counter[tuple[str, str]] = Counter()
        for key, (_, held) in acked.items():
            [pick] = held.picks
            assert pick is not None
            picked[(key.split("|")[0], pick.resource_id)] += 1
        counted = 0
        for client in FAULT_CLIENTS:
            ids = [r.resource_id for r in RESOURCES]
            usage = await store.usage(Channel.EMAIL, ids, DAY, client_id=client)
            counted += sum(
                max(0, picked[(client, rid)] - n) for rid, n in zip(ids, usage, strict=True)
            )
        holds = []
        for client in FAULT_CLIENTS:
            mine = [k for k in acked if k.startswith(client + "|")]
            keys = [store.keys.held(client, k.split("|", 1)[1]) for k in mine]
            for value, name in zip(await raw.mget(keys), mine, strict=True):
                if value is None or _answer(value) != acked[name][1]:
                    holds.append(name)
        return Losses(counted, holds)
    finally:
        await raw.aclose()
        await store.close()


def _answer(value: str) -> Held:
    """A held answer as stored (reserve.lua), read as the store reads it."""
    return redis_store._held(value)


@pytest.mark.parametrize("wait", [0, 1], ids=["no-wait", "wait"])
@pytest.mark.parametrize("scenario", ["kill", "cut-then-kill"])
async def test_a_killed_primary_fails_over_without_losing_acknowledged_reservations(
    fault_cluster: OwnRedisCluster, scenario: str, wait: int
) -> None:
    """SIGKILL the primary of client-0's slot while 4 tasks reserve; its replica
    takes over; the tasks retry until their batches pass.

    `kill`: the replica is in sync when the primary dies. `cut-then-kill`: the
    replication link is cut (the replica can no longer reconnect) 0.3 s before
    the kill, as when a replica lags or a network splits: what the primary
    acknowledged meanwhile is on no replica.

    Without WAIT, Redis promises nothing for writes acknowledged shortly before
    a failover: the losses must all have been acknowledged after the replica
    stopped following (cut) or within the second before the kill, never
    earlier. With `wait_replicas=1` nothing acknowledged is lost.
    """
    cluster = fault_cluster
    cluster.wait_healthy()
    prefix = f"test:{uuid.uuid4().hex[:12]}:"
    url = cluster.url + (f"?wait_replicas={wait}&wait_timeout_ms=100" if wait else "")
    work = Workload(url, prefix)
    running = asyncio.create_task(work.run())
    victim: ClusterNode | None = None
    try:
        await asyncio.sleep(1.0)
        victim = cluster.primary_for(client_tag("client-0"))
        cut_at = time.monotonic()
        if scenario == "cut-then-kill":
            with victim.client() as client:
                # The store's connections are authenticated already; the
                # replica's next connection is refused, so it stays behind.
                client.execute_command("ACL", "SETUSER", "default", "resetpass", ">cut")
                client.execute_command("CLIENT", "KILL", "TYPE", "replica")
            await asyncio.sleep(0.3)
        acked_before_kill = len(work.acked)
        killed_at = time.monotonic()
        cluster.kill(victim)
        promoted = await asyncio.to_thread(cluster.wait_for_failover, victim)
        failover_seconds = time.monotonic() - killed_at
        cluster.start(victim)  # it rejoins as the replica of the promoted node
        await asyncio.to_thread(cluster.wait_healthy)
        await asyncio.sleep(0.5)  # a little more traffic on the healed cluster
        work.stop.set()
        await running
    finally:
        work.stop.set()
        if not running.done():
            running.cancel()
        if victim is not None and not victim.alive:
            cluster.start(victim)

    losses = await _losses(cluster.url, prefix, work.acked)
    forget_keys(cluster.url, prefix)
    print(
        f"\n[failover] {scenario}, wait_replicas={wait}: {len(work.acked)} leads acknowledged "
        f"({acked_before_kill} before the kill); promoted 127.0.0.1:{promoted.port} "
        f"{failover_seconds:.1f} s after the kill; {work.failures} failed attempts, longest "
        f"gap {work.longest_gap:.1f} s; lost: {losses.counted} counted, {len(losses.holds)} held"
        + (
            f", acknowledged {min(work.acked[n][0] for n in losses.holds) - killed_at:+.2f} "
            f"to {max(work.acked[n][0] for n in losses.holds) - killed_at:+.2f} s from the kill"
            if losses.holds
            else ""
        )
    )
    # Every batch has leads of all 12 clients, so of every primary: a batch
    # acknowledged after the kill was served by the promoted replica too.
    assert len(work.acked) > acked_before_kill
    assert losses.counted == len(losses.holds)  # a lost hold is exactly a lost count
    if wait:
        assert losses.holds == []
        return
    for name in losses.holds:
        when, _ = work.acked[name]
        # Lost: acknowledged by the killed primary after its replica stopped
        # following, or just before the kill; never earlier.
        assert cut_at - 1.0 <= when <= killed_at + 0.05, name
    if scenario == "cut-then-kill":
        assert losses.holds  # asynchronous replication: acknowledged, and gone


async def test_the_design_s_per_call_api_works_on_a_cluster(
    redis_cluster_url: str, cluster_prefix: str
) -> None:
    from allocator.directory import ClientDirectory, build_snapshot
    from allocator.engine import AllocatorEngine
    from tests.factories import client, resource

    snapshot = build_snapshot(
        [client("acme"), client("globex")],
        [resource("linkedin", "seat-a", limit=2), resource("linkedin", "g-1", client_id="globex")],
    )
    store = RedisQuotaStore.from_url(redis_cluster_url, prefix=cluster_prefix)
    engine = AllocatorEngine(ClientDirectory.fixed(snapshot), store)
    try:
        assert await engine.increment_usage("linkedin_seat", "seat-a") == 1
        assert not await engine.check_rate_limit("linkedin_seat", "seat-a")
        chosen = await engine.select_resource("linkedin", "acme")
        assert chosen is not None and chosen.resource_id == "seat-a"
        assert await engine.increment_usage("linkedin_seat", "seat-a") == 2
        assert await engine.check_rate_limit("linkedin_seat", "seat-a")  # full at 2
        assert await engine.select_resource("linkedin", "acme") is None
        assert await engine.increment_usage("linkedin_seat", "g-1") == 1  # globex's own slot
    finally:
        await store.close()
