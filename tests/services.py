"""Where the tests find Redis, PostgreSQL and a broker, and which one they used.

Order: an ALLOCATOR_TEST_* / ALLOCATOR_* variable; the local service this
machine runs; testcontainers when a Docker engine answers. Each choice is
printed so that a run says what it talked to.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

# What this run talked to; tests/conftest.py prints it in the terminal summary
# (pytest captures fixture output, so a print alone would not show).
USED: list[str] = []


def say(line: str) -> None:
    USED.append(line)
    print(line)


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def docker_engine() -> bool:
    if not shutil.which("docker"):
        return False
    probe = subprocess.run(["docker", "info"], capture_output=True, timeout=10)
    return probe.returncode == 0


@contextmanager
def redis_url() -> Iterator[str]:
    url = os.environ.get("ALLOCATOR_TEST_REDIS_URL")
    if url:
        say(f"[services] Redis from ALLOCATOR_TEST_REDIS_URL: {url}")
        yield url
    elif port_open("127.0.0.1", 6379):
        say("[services] Redis: the local server at 127.0.0.1:6379")
        yield "redis://127.0.0.1:6379/0"
    elif shutil.which("redis-server"):
        with own_redis_server() as url:
            say(f"[services] Redis: own redis-server at {url}")
            yield url
    elif docker_engine():
        from testcontainers.redis import RedisContainer

        with RedisContainer() as container:
            url = f"redis://{container.get_container_host_ip()}:{container.get_exposed_port(6379)}/0"
            say(f"[services] Redis: testcontainers {url}")
            yield url
    else:
        raise RuntimeError("no Redis: set ALLOCATOR_TEST_REDIS_URL or start redis-server")


@contextmanager
def own_redis_server(port: int | None = None, data_dir: str | None = None) -> Iterator[str]:
    """A redis-server of our own (for fault tests that stop and restart it)."""
    port = port or free_port()
    workdir = data_dir or tempfile.mkdtemp(prefix="allocator-redis-")
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", workdir,
         "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not port_open("127.0.0.1", port):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@contextmanager
def postgres_server_url() -> Iterator[str]:
    """An asyncpg URL of a server where the tests may create databases."""
    url = os.environ.get("ALLOCATOR_TEST_POSTGRES_URL")
    if url:
        say(f"[services] PostgreSQL from ALLOCATOR_TEST_POSTGRES_URL: {url}")
        yield url
    elif port_open("127.0.0.1", 5432):
        say("[services] PostgreSQL: the local server at 127.0.0.1:5432")
        yield "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
    elif docker_engine():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:16", driver="asyncpg") as container:
            url = container.get_connection_url()
            say(f"[services] PostgreSQL: testcontainers {url}")
            yield url
    else:
        raise RuntimeError("no PostgreSQL: set ALLOCATOR_TEST_POSTGRES_URL")
