"""Fixtures of the integration tests: the services they talk to (Redis,
PostgreSQL, a broker; tests/services.py finds them) and running pipelines."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from allocator.store import Database
from streams.local import forget_keys
from streams.samples import SAMPLES_DIR
from streams.topics import ensure_topics
from tests import services
from tests.integration.pipeline import Pipeline

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    with services.redis_url() as url:
        yield url


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of this test's own in the shared Redis; its keys are removed after."""
    prefix = f"test:{uuid.uuid4().hex[:12]}:"
    yield prefix
    forget_keys(redis_url, prefix)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    with services.postgres_server_url() as url:
        yield url


async def _admin(server_url: str) -> asyncpg.Connection:
    url = make_url(server_url)
    return await asyncpg.connect(
        user=url.username,
        password=url.password,
        host=url.host,
        port=url.port,
        database=url.database or "postgres",
    )


@asynccontextmanager
async def fresh_postgres(server_url: str) -> AsyncIterator[str]:
    """A new PostgreSQL database, dropped afterwards."""
    name = f"allocator_test_{uuid.uuid4().hex[:12]}"
    admin = await _admin(server_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        admin = await _admin(server_url)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
async def postgres_url(postgres_server: str) -> AsyncIterator[str]:
    async with fresh_postgres(postgres_server) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """The same tests on both back ends."""
    async with AsyncExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite+aiosqlite:///{tmp_path}/allocator.db"
        else:
            server = request.getfixturevalue("postgres_server")
            url = await stack.enter_async_context(fresh_postgres(server))
        yield await stack.enter_async_context(Database(url))  # closed before the drop


@pytest.fixture(scope="session", params=services.broker_kinds())
def broker_kind(request: pytest.FixtureRequest) -> str:
    """Which broker: every end-to-end and fault test runs on each (tests/services.py)."""
    return str(request.param)


@pytest.fixture(scope="session")
def broker_bootstrap(broker_kind: str) -> Iterator[str]:
    """One broker of each kind for the whole run (pytest orders the tests by kind)."""
    with services.broker(broker_kind) as bootstrap:
        yield bootstrap


@asynccontextmanager
async def running_pipeline(
    bootstrap: str,
    database_url: str,
    redis_url: str,
    workdir: Path,
    extra_env: dict[str, str] | None = None,
) -> AsyncIterator[Pipeline]:
    """Topics created, schema made and sample clients/resources loaded; workers stopped after."""
    pipeline = Pipeline(bootstrap, database_url, redis_url, workdir, extra_env=extra_env or {})
    for table in ("clients", "resources"):
        done = pipeline.cli(table, "load", str(SAMPLES_DIR / f"{table}.jsonl"))
        assert done.returncode == 0, done.stderr
    await ensure_topics(pipeline.settings)
    try:
        yield pipeline
    finally:
        pipeline.stop()
        forget_keys(redis_url, pipeline.prefix)


@pytest.fixture
async def sqlite_pipeline(
    broker_bootstrap: str, redis_url: str, tmp_path: Path
) -> AsyncIterator[Pipeline]:
    """A running_pipeline on a SQLite database of the test's own."""
    url = f"sqlite+aiosqlite:///{tmp_path}/allocator.db"
    async with running_pipeline(broker_bootstrap, url, redis_url, tmp_path) as pipeline:
        yield pipeline


@pytest.fixture
async def postgres_pipeline(
    broker_bootstrap: str, postgres_server: str, redis_url: str, tmp_path: Path
) -> AsyncIterator[Pipeline]:
    """A running_pipeline on a fresh PostgreSQL database, dropped after the test."""
    async with (
        fresh_postgres(postgres_server) as url,
        running_pipeline(broker_bootstrap, url, redis_url, tmp_path) as pipeline,
    ):
        yield pipeline
