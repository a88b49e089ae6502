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
from allocator.store import Database
from allocator.store.loaders import load_clients, load_resources
from streams.broker import EmbeddedBroker, free_port, stop_process
from streams.samples import SAMPLES_DIR
from streams.topics import ensure_topics

__all__ = [
    "ALLOCATOR_COMMAND",
    "SHORT_GROUP_TIMINGS",
    "EmbeddedBroker",
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
    bootstrap: str, topic: str, want: int, seconds: float, *, pause: float = 0.0
) -> list[TopicRecord]:
    """At least `want` records of `topic` (null values skipped) from the start,
    read without a consumer group and committing nothing; fewer if `seconds`
    pass first.

    `pause` sleeps between polls: a reader waiting for what a worker is still
    writing would otherwise take CPU from it (the benchmarks on two cores).
    The replay reads a time window to its end instead (allocator.replay.sources).
    """
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = sorted(consumer.partitions_for_topic(topic) or set())
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
    """Delete the keys a run wrote under `prefix` in a shared Redis."""
    client = redis.Redis.from_url(redis_url)
    try:
        for key in client.scan_iter(match=f"{prefix}*", count=1000):
            client.delete(key)
    finally:
        client.close()
