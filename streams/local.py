"""Running the allocator on this machine: the one place the demo, the tests and
the benchmarks start, watch and stop what a local run needs.

- the embedded Tansu broker, a free loopback port and stopping a process
  (streams/broker.py, which streams/kafka_local.py shares; re-exported here);
- a redis-server of our own;
- worker processes, ready once their /ready answers;
- a database and topics prepared with the sample clients and resources;
- reading a topic from the start without a consumer group;
- removing what a run wrote under its key prefix in a shared Redis.

For local runs only; production points at real services.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from aiokafka import AIOKafkaConsumer, TopicPartition

from allocator.config import Settings
from allocator.quota.redis_store import RedisTarget
from allocator.replay.sources import topic_partitions
from allocator.store import Database
from allocator.store.loaders import load_clients, load_resources
from streams.broker import EmbeddedBroker, free_port, stop_process
from streams.samples import SAMPLES_DIR
from streams.topics import ensure_topics

__all__ = [
    "ALLOCATOR_COMMAND",
    "SHORT_GROUP_TIMINGS",
    "ClusterNode",
    "EmbeddedBroker",
    "OwnRedisCluster",
    "TopicRecord",
    "Worker",
    "forget_keys",
    "free_port",
    "own_redis_server",
    "port_open",
    "prepare",
    "read_topic",
    "start_worker",
    "stop_process",
]

# faust's group timings (rebalance and session 60 s, heartbeat 3 s, commit
# 2.8 s) let a production worker ride out a long pause without losing its
# partitions; on them a worker takes ~30 s to join its group and a killed one
# holds its partitions for a minute (../shared/guides/broker.md). A local run
# (the demo, the tests, the benchmarks) wants a worker to join in ~5 s, a dead
# one replaced within seconds, and offsets committed often so that a restart
# redelivers little. Environment variables, so they reach worker processes.
SHORT_GROUP_TIMINGS = {
    "ALLOCATOR_BROKER_REBALANCE_TIMEOUT": "5",
    "ALLOCATOR_BROKER_SESSION_TIMEOUT": "6",
    "ALLOCATOR_BROKER_HEARTBEAT_INTERVAL": "1",
    "ALLOCATOR_BROKER_COMMIT_INTERVAL": "0.5",
}

# `allocator` as this interpreter runs it (the console script may not be on
# PATH). start_worker runs its `worker`; any faust app's main() takes the same.
ALLOCATOR_COMMAND = (sys.executable, "-m", "streams.cli")


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def own_redis_server(port: int | None = None, data_dir: str | None = None) -> Iterator[str]:
    """A redis-server of our own on loopback, without persistence; yields its URL.

    A fault test passes `port` and `data_dir` to start it again where it was.
    """
    port = port or free_port()
    with contextlib.ExitStack() as stack:
        folder = data_dir or stack.enter_context(tempfile.TemporaryDirectory(prefix="redis-"))
        process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--dir",
                folder,
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 10
            while not port_open("127.0.0.1", port):
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"redis-server did not start on port {port}")
                time.sleep(0.05)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            stop_process(process, grace=10)


@dataclass
class ClusterNode:
    """One redis-server of an OwnRedisCluster: its client and bus ports, its folder, its process."""

    port: int
    bus_port: int
    folder: Path
    process: subprocess.Popen[bytes] | None = None

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, decode_responses=True)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


class OwnRedisCluster:
    """A Redis Cluster of our own on loopback: `primaries` primaries with
    `replicas` replica(s) each, one redis-server process per node with its own
    folder, joined by `redis-cli --cluster create`. A context manager; `url` is
    what ALLOCATOR_REDIS_URL takes.

    `node_timeout_ms` is cluster-node-timeout: how long a primary may be silent
    before the others mark it failed and its replica takes over (15 s by
    default in Redis; 1 s here so that a failover test takes seconds). A fault
    test may `kill` a node (SIGKILL), `wait_for_failover`, and `start` it again
    (it rejoins as a replica of whoever serves its slots now).
    """

    def __init__(self, primaries: int = 3, replicas: int = 1, node_timeout_ms: int = 1000) -> None:
        self.primaries = primaries
        self.replicas = replicas
        self.node_timeout_ms = node_timeout_ms
        self.nodes: list[ClusterNode] = []
        self._served: dict[int, list[int]] = {}  # killed port -> first slots of its ranges
        self._stack = contextlib.ExitStack()

    @property
    def url(self) -> str:
        live = next(n for n in self.nodes if n.alive)
        return f"redis+cluster://127.0.0.1:{live.port}"

    def __enter__(self) -> OwnRedisCluster:
        try:
            folder = Path(
                self._stack.enter_context(tempfile.TemporaryDirectory(prefix="rcluster-"))
            )
            # Twelve distinct ports: a client port and a cluster bus port per node
            # (the bus defaults to port + 10000, which may be taken or past 65535).
            ports: list[int] = []
            while len(ports) < 2 * self.primaries * (1 + self.replicas):
                port = free_port()
                if port not in ports:
                    ports.append(port)
            for i in range(0, len(ports), 2):
                node = ClusterNode(ports[i], ports[i + 1], folder / f"node-{ports[i]}")
                node.folder.mkdir()
                self.nodes.append(node)
            self._stack.callback(self._stop_all)
            for node in self.nodes:
                self.start(node, wait=False)
            for node in self.nodes:
                self._wait_listening(node)
            create = subprocess.run(
                [
                    "redis-cli",
                    "--cluster",
                    "create",
                    *(f"127.0.0.1:{n.port}" for n in self.nodes),
                    "--cluster-replicas",
                    str(self.replicas),
                    "--cluster-yes",
                ],
                capture_output=True,
                text=True,
                timeout=60,
            )
            if create.returncode != 0:
                raise RuntimeError(f"redis-cli --cluster create failed: {create.stdout[-2000:]}")
            self.wait_healthy()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def _stop_all(self) -> None:
        for node in self.nodes:
            if node.process is not None:
                stop_process(node.process, grace=10)

    def start(self, node: ClusterNode, wait: bool = True) -> None:
        """Start (or start again) a node: its nodes.conf in its folder says who it was."""
        node.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(node.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(node.folder),
                "--cluster-enabled",
                "yes",
                "--cluster-port",
                str(node.bus_port),
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                str(self.node_timeout_ms),
                "--save",
                "",
                "--appendonly",
                "no",
                "--logfile",
                "redis.log",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if wait:
            self._wait_listening(node)

    def _wait_listening(self, node: ClusterNode) -> None:
        deadline = time.monotonic() + 10
        while not port_open("127.0.0.1", node.port):
            if time.monotonic() > deadline or not node.alive:
                raise RuntimeError(f"redis-server did not start on port {node.port}")
            time.sleep(0.05)

    def kill(self, node: ClusterNode) -> None:
        """SIGKILL: no goodbye to the cluster, no last write to its replica.

        Remembers the slots a killed primary served, for wait_for_failover."""
        assert node.process is not None
        self._served[node.port] = [s for s, p in self._slot_primaries().items() if p == node.port]
        node.process.send_signal(signal.SIGKILL)
        node.process.wait()

    def node(self, port: int) -> ClusterNode:
        return next(n for n in self.nodes if n.port == port)

    def primary_for(self, key: str) -> ClusterNode:
        """The live node that serves `key`'s slot now."""
        with self._any_live().client() as client:
            slot = int(client.execute_command("CLUSTER", "KEYSLOT", key))
            for start, end, primary, *_ in client.execute_command("CLUSTER", "SLOTS"):
                if start <= slot <= end:
                    return self.node(int(primary[1]))
        raise RuntimeError(f"no node serves slot {slot}")

    def replicas_of(self, primary: ClusterNode) -> list[ClusterNode]:
        with primary.client() as client:
            info = client.info("replication")
        return [
            self.node(int(value["port"]))
            for name, value in info.items()
            if name.startswith("slave") and isinstance(value, dict)
        ]

    def _any_live(self) -> ClusterNode:
        return next(n for n in self.nodes if n.alive)

    def wait_healthy(self, timeout: float = 60) -> None:
        """Until every live node says the cluster is ok, `primaries` live primaries
        serve all slots and each has its replicas attached and in sync."""
        deadline = time.monotonic() + timeout
        while True:
            problem = self._health_problem()
            if problem is None:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"Redis Cluster not healthy after {timeout:.0f} s: {problem}")
            time.sleep(0.1)

    def _health_problem(self) -> str | None:
        try:
            primaries: set[int] = set()
            for node in self.nodes:
                if not node.alive:
                    continue
                with node.client() as client:
                    if client.cluster("info").get("cluster_state") != "ok":
                        return f"127.0.0.1:{node.port} reports the cluster not ok"
                    slots = client.execute_command("CLUSTER", "SLOTS")
                    primaries |= {int(primary[1]) for _, _, primary, *_ in slots}
            if len(primaries) != self.primaries or not all(self.node(p).alive for p in primaries):
                return f"primaries {sorted(primaries)}"
            for port in primaries:
                with self.node(port).client() as client:
                    info = client.info("replication")
                online = [
                    v
                    for k, v in info.items()
                    if k.startswith("slave") and isinstance(v, dict) and v.get("state") == "online"
                ]
                if len(online) < self.replicas:
                    return f"127.0.0.1:{port} has {len(online)} replica(s) online"
        except redis.RedisError as exc:
            return f"{type(exc).__name__}: {exc}"
        return None

    def _slot_primaries(self) -> dict[int, int]:
        """First slot of each range -> port of the primary serving it, as a live node sees it."""
        with self._any_live().client() as client:
            slots = client.execute_command("CLUSTER", "SLOTS")
        return {int(start): int(primary[1]) for start, _, primary, *_ in slots}

    def wait_for_failover(self, killed: ClusterNode, timeout: float = 30) -> ClusterNode:
        """Until a live node serves the slots the killed primary served and the
        live nodes say the cluster is ok; that node (its promoted replica)."""
        own = self._served.get(killed.port)
        if not own:
            raise RuntimeError(f"127.0.0.1:{killed.port} was not a primary when killed")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                serving = self._slot_primaries().get(own[0])
                if serving is not None and serving != killed.port and self._all_ok():
                    return self.node(serving)
            except redis.RedisError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"no failover of 127.0.0.1:{killed.port} within {timeout:.0f} s")

    def _all_ok(self) -> bool:
        for node in self.nodes:
            if node.alive:
                with node.client() as client:
                    if client.cluster("info").get("cluster_state") != "ok":
                        return False
        return True


@dataclass
class Worker:
    """A worker process, the port of its web server and the file of its output."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def get(self, path: str) -> tuple[int, bytes]:
        """(status, body) of a GET on the worker's web server."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()

    def health(self) -> dict[str, Any]:
        return json.loads(self.get("/health")[1])  # type: ignore[no-any-return]

    def metrics(self) -> str:
        return self.get("/metrics")[1].decode()

    def wait_ready(self, timeout: float = 90) -> None:
        """Until /ready answers 200: partitions assigned and no rebalance running."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the worker exited before it was ready:\n{self.log_tail()}")
            with contextlib.suppress(OSError):
                if self.get("/ready")[0] == 200:
                    return
            time.sleep(0.3)
        raise RuntimeError(f"the worker was not ready within {timeout:.0f}s:\n{self.log_tail()}")

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    def kill(self) -> None:
        """SIGKILL: no shutdown, no final commit."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        stop_process(self.process)


def start_worker(
    env: Mapping[str, str],
    log: Path,
    *,
    command: Sequence[str] = ALLOCATOR_COMMAND,
    level: str = "warn",
    wait: bool = True,
) -> Worker:
    """`command worker` with its web server on a free port and its output in
    `log`; ready when it returns, unless `wait` is False."""
    port = free_port()
    with log.open("wb") as out:  # the child has its own copy of the descriptor
        process = subprocess.Popen(
            [*command, "worker", "-l", level, "--web-port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    worker = Worker(process, port, log)
    if wait:
        try:
            worker.wait_ready()
        except BaseException:
            worker.stop()
            raise
    return worker


async def prepare(settings: Settings) -> tuple[int, int]:
    """Schema made, the sample clients and resources loaded, the topics created;
    returns how many clients and resources were loaded."""
    async with Database(settings.database_url) as db:
        clients = await load_clients(db, SAMPLES_DIR / "clients.jsonl")
        resources = await load_resources(db, SAMPLES_DIR / "resources.jsonl")
    await ensure_topics(settings)
    return clients, resources


@dataclass(frozen=True)
class TopicRecord:
    key: bytes | None
    value: bytes
    timestamp: int  # milliseconds: the producer's create time


async def read_topic(
    bootstrap: str,
    topic: str,
    want: int,
    seconds: float,
    *,
    pause: float = 0.0,
    client_options: Mapping[str, Any] | None = None,
) -> list[TopicRecord]:
    """At least `want` records of `topic` (null values skipped) from the start,
    read without a consumer group and committing nothing; fewer if `seconds`
    pass first.

    `pause` sleeps between polls: a reader waiting for what a worker is still
    writing would otherwise take CPU from it (the benchmarks on two cores).
    The replay reads a time window to its end instead (allocator.replay.sources).
    `client_options`: TLS and SASL, as Settings.kafka_client_options() gives them.
    """
    partitions = await topic_partitions(bootstrap, topic, client_options)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, **(client_options or {})
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        records: list[TopicRecord] = []
        deadline = time.monotonic() + seconds
        while len(records) < want and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for messages in batch.values():
                records.extend(
                    TopicRecord(m.key, m.value, m.timestamp)
                    for m in messages
                    if m.value is not None
                )
            if pause and len(records) < want:
                await asyncio.sleep(pause)
        return records
    finally:
        await consumer.stop()


def forget_keys(redis_url: str, prefix: str) -> None:
    """Delete the keys a run wrote under `prefix` in a shared Redis (or Redis Cluster)."""
    target = RedisTarget.parse(redis_url)
    client: redis.Redis | redis.RedisCluster
    if target.cluster:
        client = redis.RedisCluster.from_url(target.url)  # its scan_iter visits every primary
    else:
        client = redis.Redis.from_url(target.url)
    try:
        for key in client.scan_iter(match=f"{prefix}*", count=1000):
            client.delete(key)
    finally:
        client.close()
