"""The database handle and every query the allocator makes, on PostgreSQL or SQLite."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Dialect, Table, inspect, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from allocator.directory import Snapshot, build_snapshot
from allocator.models import (
    Client,
    ConversionPattern,
    HowPattern,
    Pool,
    Resource,
    ScoredLead,
    WhenPattern,
    parse_pattern_data,
)
from allocator.patterns import PatternSet, slot_of
from allocator.store import schema
from allocator.store.outages import database_outages


class Database:
    """Owns the engine; `create_schema` makes missing tables (idempotent).

    `async with Database(url) as db:` makes the schema and closes the engine after.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: AsyncEngine = create_async_engine(url, pool_pre_ping=True)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    async def create_schema(self) -> None:
        async with self.engine.begin() as conn:
            await conn.run_sync(schema.metadata.create_all)
            await conn.run_sync(_add_missing_columns)

    def session(self) -> AsyncSession:
        return self.sessions()

    async def close(self) -> None:
        await self.engine.dispose()

    async def __aenter__(self) -> Database:
        try:
            await self.create_schema()
        except BaseException:
            await self.close()  # an engine left open outlives its loop (aiosqlite)
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # What the stream worker reads and writes: a failure that may pass raises
    # ServiceUnavailable (store/outages.py), which the worker retries.

    async def load_snapshot(self) -> Snapshot:
        async with database_outages(), self.session() as db:
            return await load_snapshot(db)

    async def load_patterns(self) -> dict[str, PatternSet]:
        async with database_outages(), self.session() as db:
            return await all_patterns(db)

    async def save_pattern(self, pattern: ConversionPattern) -> None:
        async with database_outages(), self.session() as db, db.begin():
            await save_pattern(db, pattern)


def _add_missing_columns(conn: Connection) -> None:
    """Bring a round-1 database's tables up to round 2: the new columns are all
    nullable or have a default, so adding them changes no row's meaning."""
    inspector = inspect(conn)
    for name, wanted in schema.ROUND_2_COLUMNS.items():
        have = {column["name"] for column in inspector.get_columns(name)}
        table = schema.metadata.tables[name]
        for column_name in wanted:
            if column_name in have:
                continue
            column = table.c[column_name]
            kind = column.type.compile(dialect=conn.dialect)
            default = column.server_default
            text_default = (
                f" DEFAULT '{default.arg}' NOT NULL"  # type: ignore[attr-defined]
                if default is not None
                else ""
            )
            conn.execute(
                text(f'ALTER TABLE {name} ADD COLUMN "{column_name}" {kind}{text_default}')
            )


def _dialect(db: AsyncSession) -> Dialect:
    assert db.bind is not None, "sessions come from Database.session(), always bound"
    return db.bind.dialect


# PostgreSQL (asyncpg) binds at most 32,767 parameters in one statement and
# SQLite (since 3.32) 32,766: a long file is written in statements of at most
# this many, all in the caller's transaction.
_MAX_PARAMETERS = 32_766


def _upsert(db: AsyncSession, table: Table, rows: list[dict[str, Any]], where: Any = None) -> Any:
    """INSERT .. ON CONFLICT (primary key) DO UPDATE, in the session's dialect."""
    dialect = _dialect(db).name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(table).values(rows)
    keys = [c.name for c in table.primary_key.columns]
    updates = {c.name: statement.excluded[c.name] for c in table.columns if c.name not in keys}
    return statement.on_conflict_do_update(index_elements=keys, set_=updates, where=where)


async def _upsert_all(db: AsyncSession, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Upsert any number of rows; of rows with the same key, the last wins.

    That is what one statement per row would do, and what SQLite does with one
    statement for all; PostgreSQL refuses a statement that updates a row twice,
    so rows of a repeated key are folded into the last before writing.
    """
    keys = [c.name for c in table.primary_key.columns]
    # A dict keeps a key where it first came and the value it was last given.
    latest = list({tuple(row[k] for k in keys): row for row in rows}.values())
    per_statement = max(1, _MAX_PARAMETERS // len(table.columns))
    for start in range(0, len(latest), per_statement):
        await db.execute(_upsert(db, table, latest[start : start + per_statement]))


async def upsert_clients(db: AsyncSession, clients: Sequence[Client]) -> None:
    await _upsert_all(db, schema.clients, [c.model_dump(mode="json") for c in clients])


async def upsert_resources(db: AsyncSession, resources: Sequence[Resource]) -> None:
    rows = [
        {
            "client_id": r.client_id,
            "channel": r.channel.value,
            "resource_id": r.resource_id,
            "daily_limit": r.daily_limit,
            "active": r.active,
            "weekly_limit": r.weekly_limit,
            "warmup": r.warmup.model_dump(mode="json") if r.warmup else None,
            "pool_id": r.pool_id,
        }
        for r in resources
    ]
    await _upsert_all(db, schema.resources, rows)


async def upsert_pools(db: AsyncSession, pools: Sequence[Pool]) -> None:
    await _upsert_all(db, schema.pools, [p.model_dump(mode="json") for p in pools])


async def list_pools(db: AsyncSession, client_id: str | None = None) -> list[Pool]:
    """Every pool (of `client_id` if given), by client, channel and pool_id."""
    return [Pool.model_validate(row) for row in await _of_client(db, schema.pools, client_id)]


async def pool_keys(db: AsyncSession) -> set[tuple[str, str, str]]:
    """(client_id, channel, pool_id) of every pool: what a resource may name."""
    table = schema.pools
    rows = await db.execute(select(table.c.client_id, table.c.channel, table.c.pool_id))
    return {(r.client_id, r.channel, r.pool_id) for r in rows}


async def upsert_leads(db: AsyncSession, leads: Sequence[ScoredLead]) -> None:
    rows = [
        {
            "lead_id": lead.lead_id,
            "client_id": lead.client_id,
            "als_score": lead.als_score,
            "scored_at": lead.scored_at,
            "timezone": lead.timezone,
        }
        for lead in leads
    ]
    await _upsert_all(db, schema.leads, rows)


async def load_snapshot(db: AsyncSession) -> Snapshot:
    clients = [_client(row) for row in await db.execute(select(schema.clients))]
    resources = [
        Resource.model_validate(dict(row._mapping))
        for row in await db.execute(select(schema.resources))
    ]
    return build_snapshot(clients, resources, await list_pools(db))


async def list_clients(db: AsyncSession) -> list[Client]:
    """Every client, by client_id."""
    table = schema.clients
    rows = await db.execute(select(table).order_by(table.c.client_id))
    return [_client(row) for row in rows]


def _client(row: Any) -> Client:
    # Columns a round-1 row left NULL take the model's defaults.
    return Client.model_validate({k: v for k, v in row._mapping.items() if v is not None})


async def list_resources(db: AsyncSession, client_id: str | None = None) -> list[Resource]:
    """Every resource (of `client_id` if given), by client, channel and resource_id."""
    rows = await _of_client(db, schema.resources, client_id)
    return [Resource.model_validate(row) for row in rows]


async def _of_client(db: AsyncSession, table: Table, client_id: str | None) -> list[dict[str, Any]]:
    """A per-client table's rows (of `client_id` if given), in primary key order."""
    query = select(table).order_by(*table.primary_key.columns)
    if client_id is not None:
        query = query.where(table.c.client_id == client_id)
    return [dict(row._mapping) for row in await db.execute(query)]


async def save_pattern(db: AsyncSession, pattern: ConversionPattern) -> None:
    """Keep the latest pattern per (client, type, channel); an older one changes nothing."""
    row: dict[str, Any] = {
        "client_id": pattern.client_id,
        "pattern_type": pattern.pattern_type,
        "pattern_slot": slot_of(pattern),
        "channel": None,
        "optimal_day": None,
        "optimal_hour": None,
        "winning_sequence": None,
        "confidence": pattern.confidence,
        "updated_at": pattern.updated_at,
    }
    if isinstance(pattern, WhenPattern):
        row.update(
            channel=pattern.channel.value,
            optimal_day=pattern.optimal_day,
            optimal_hour=pattern.optimal_hour,
        )
    elif isinstance(pattern, HowPattern):
        row["winning_sequence"] = [c.value for c in pattern.winning_sequence]
    table = schema.conversion_patterns
    # Fixed-width UTC text compares in time order (schema.UtcTimestamp).
    newer = table.c.updated_at <= pattern.updated_at
    await db.execute(_upsert(db, table, [row], where=newer))


async def patterns_for(db: AsyncSession, client_id: str) -> PatternSet:
    table = schema.conversion_patterns
    found = await _patterns(db, select(table).where(table.c.client_id == client_id))
    return found.get(client_id, PatternSet())


async def all_patterns(db: AsyncSession) -> dict[str, PatternSet]:
    """Every client's latest patterns (a worker's pattern book is seeded from these)."""
    return await _patterns(db, select(schema.conversion_patterns))


async def _patterns(db: AsyncSession, query: Any) -> dict[str, PatternSet]:
    found: dict[str, PatternSet] = {}
    for row in await db.execute(query):
        data = {k: v for k, v in row._mapping.items() if v is not None}
        data["updated_at"] = row.updated_at.isoformat()
        pattern = parse_pattern_data(data)
        found[pattern.client_id] = found.get(pattern.client_id, PatternSet()).with_pattern(pattern)
    return found


async def find_lead(db: AsyncSession, lead_id: str, client_id: str) -> ScoredLead | None:
    table = schema.leads
    row = (
        await db.execute(
            select(table).where(table.c.lead_id == lead_id, table.c.client_id == client_id)
        )
    ).first()
    if row is None:
        return None
    data = {k: v for k, v in row._mapping.items() if v is not None}
    data["scored_at"] = row.scored_at.isoformat()
    return ScoredLead.model_validate(data)
