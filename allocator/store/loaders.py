"""`allocator clients load` / `allocator resources load`: JSON Lines upserts, all or nothing."""

from __future__ import annotations

from pathlib import Path

from allocator.files import load_all
from allocator.models import Client, Resource, validate
from allocator.store.database import Database, upsert_clients, upsert_resources


async def load_clients(db: Database, path: str | Path) -> int:
    """Upsert every client of the file; LoadError (nothing written) on any bad line."""
    rows = load_all(path, lambda data: validate(Client, data))
    async with db.session() as session, session.begin():
        await upsert_clients(session, rows)
    return len(rows)


async def load_resources(db: Database, path: str | Path) -> int:
    rows = load_all(path, lambda data: validate(Resource, data))
    async with db.session() as session, session.begin():
        await upsert_resources(session, rows)
    return len(rows)
