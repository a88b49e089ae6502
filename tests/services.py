"""Where the tests find Redis, PostgreSQL and a broker, and which one they used.

Order: an ALLOCATOR_TEST_* / ALLOCATOR_* variable; the local service this
machine runs; testcontainers when a Docker engine answers. Each choice is
printed so that a run says what it talked to.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

from streams.local import OwnRedisCluster, own_redis_server, port_open

# What this run talked to; tests/conftest.py prints it in the terminal summary
# (pytest captures fixture output, so a print alone would not show).
USED: list[str] = []


def say(line: str) -> None:
    USED.append(line)
    print(line)


def docker_engine() -> bool:
    if not shutil.which("docker"):
        return False
    probe = subprocess.run(["docker", "info"], capture_output=True, timeout=10)
    return probe.returncode == 0


def given_or_local(name: str, variable: str, port: int, local_url: str) -> str | None:
    """The URL in `variable`, else `local_url` if a server listens on `port`, else None."""
    url = os.environ.get(variable)
    if url:
        say(f"[services] {name} from {variable}: {url}")
        return url
    if port_open("127.0.0.1", port):
        say(f"[services] {name}: the local server at 127.0.0.1:{port}")
        return local_url
    return None


@contextmanager
def redis_url() -> Iterator[str]:
    url = given_or_local("Redis", "ALLOCATOR_TEST_REDIS_URL", 6379, "redis://127.0.0.1:6379/0")
    if url:
        yield url
    elif shutil.which("redis-server"):
        with own_redis_server() as url:
            say(f"[services] Redis: own redis-server at {url}")
            yield url
    elif docker_engine():
        from testcontainers.redis import RedisContainer

        with RedisContainer() as container:
            url = (
                f"redis://{container.get_container_host_ip()}:{container.get_exposed_port(6379)}/0"
            )
            say(f"[services] Redis: testcontainers {url}")
            yield url
    else:
        raise RuntimeError("no Redis: set ALLOCATOR_TEST_REDIS_URL or start redis-server")


@contextmanager
def redis_cluster_url() -> Iterator[str]:
    """A Redis Cluster: ALLOCATOR_TEST_REDIS_CLUSTER_URL (`redis+cluster://host:port`),
    else three primaries with a replica each, started here on loopback."""
    url = os.environ.get("ALLOCATOR_TEST_REDIS_CLUSTER_URL")
    if url:
        say(f"[services] Redis Cluster from ALLOCATOR_TEST_REDIS_CLUSTER_URL: {url}")
        yield url
    elif shutil.which("redis-server") and shutil.which("redis-cli"):
        with OwnRedisCluster() as cluster:
            say(f"[services] Redis Cluster: own 3 primaries + 3 replicas at {cluster.url}")
            yield cluster.url
    else:
        raise RuntimeError(
            "no Redis Cluster: set ALLOCATOR_TEST_REDIS_CLUSTER_URL or install redis-server"
        )


@contextmanager
def postgres_server_url() -> Iterator[str]:
    """An asyncpg URL of a server where the tests may create databases."""
    url = given_or_local(
        "PostgreSQL",
        "ALLOCATOR_TEST_POSTGRES_URL",
        5432,
        "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres",
    )
    if url:
        yield url
    elif docker_engine():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:16", driver="asyncpg") as container:
            url = container.get_connection_url()
            say(f"[services] PostgreSQL: testcontainers {url}")
            yield url
    else:
        raise RuntimeError("no PostgreSQL: set ALLOCATOR_TEST_POSTGRES_URL")


# --- brokers ----------------------------------------------------------------

# The end-to-end and fault tests run on each of these: the embedded Tansu broker
# (demo, laptops) and Apache Kafka (what users deploy). ALLOCATOR_TEST_BROKERS
# picks some (comma-separated) for a quicker local run; a broker given in
# ALLOCATOR_KAFKA_BOOTSTRAP_SERVERS replaces both.
BROKER_KINDS = ("embedded", "kafka")


def broker_kinds() -> list[str]:
    if os.environ.get("ALLOCATOR_KAFKA_BOOTSTRAP_SERVERS"):
        return ["given"]
    chosen = os.environ.get("ALLOCATOR_TEST_BROKERS")
    if not chosen:
        return list(BROKER_KINDS)
    kinds = [k.strip() for k in chosen.split(",") if k.strip()]
    unknown = set(kinds) - set(BROKER_KINDS)
    if unknown:
        raise RuntimeError(f"ALLOCATOR_TEST_BROKERS: unknown {sorted(unknown)}; use {BROKER_KINDS}")
    return kinds


def require_local_kafka() -> None:
    """Skip (fail on CI, which must never skip them) when this machine cannot run Kafka."""
    import pytest

    from streams.kafka_local import kafka_jars

    try:
        kafka_jars()  # checks java, and mvn when the jars are not cached yet
    except RuntimeError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the Apache Kafka tests: {exc}")
        pytest.skip(f"no local Apache Kafka: {exc}")


@contextmanager
def broker(kind: str) -> Iterator[str]:
    """Bootstrap servers of a broker of that kind, for the whole session."""
    if kind == "given":
        given = os.environ["ALLOCATOR_KAFKA_BOOTSTRAP_SERVERS"]
        say(f"[services] Kafka from ALLOCATOR_KAFKA_BOOTSTRAP_SERVERS: {given}")
        yield given
    elif kind == "embedded":
        from streams.local import EmbeddedBroker

        with EmbeddedBroker() as embedded:
            say(f"[services] Kafka: embedded Tansu at {embedded.bootstrap}")
            yield embedded.bootstrap
    else:
        require_local_kafka()
        from streams.kafka_local import KAFKA_VERSION, KafkaBroker

        with KafkaBroker() as kafka:
            say(f"[services] Kafka: Apache Kafka {KAFKA_VERSION} (KRaft) at {kafka.bootstrap}")
            yield kafka.bootstrap
