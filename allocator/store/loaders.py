"""`allocator clients load` / `allocator resources load`: JSON Lines upserts, all or nothing.

A file is read and checked whole before the database is touched, so a bad
line (LoadError) or an unreadable file (OSError) writes nothing; the rows are
then written in one transaction, so a failing write writes nothing either.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from allocator.files import load_all
from allocator.models import Client, Resource, validate
from allocator.store.database import Database, upsert_clients, upsert_resources


def read_clients(path: str | Path) -> list[Client]:
    """Every client of the file; LoadError naming every bad line."""
    return load_all(path, lambda data: validate(Client, data))


def read_resources(path: str | Path) -> list[Resource]:
    """Every resource of the file; LoadError naming every bad line."""
    return load_all(path, lambda data: validate(Resource, data))


async def write_clients(db: Database, clients: Sequence[Client]) -> None:
    async with db.session() as session, session.begin():
        await upsert_clients(session, clients)


async def write_resources(db: Database, resources: Sequence[Resource]) -> None:
    async with db.session() as session, session.begin():
        await upsert_resources(session, resources)


async def load_clients(db: Database, path: str | Path) -> int:
    """Upsert every client of the file (the last line of a client_id wins); lines read."""
    rows = read_clients(path)
    await write_clients(db, rows)
    return len(rows)


async def load_resources(db: Database, path: str | Path) -> int:
    """Upsert every resource of the file (the last line of a key wins); lines read."""
    rows = read_resources(path)
    await write_resources(db, rows)
    return len(rows)
