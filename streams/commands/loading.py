"""`allocator clients|resources|pools|leads load FILE`: a JSON Lines file upserted,
all or nothing (allocator/store/loaders.py reads and writes it)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Literal

from allocator.store import Database
from allocator.store.loaders import (
    read_clients,
    read_leads,
    read_pools,
    read_resources,
    write_clients,
    write_leads,
    write_pools,
    write_resources,
)
from streams.commands.errors import RUNTIME, CommandError
from streams.commands.store import open_database

Kind = Literal["clients", "resources", "pools", "leads"]
KINDS: tuple[Kind, ...] = ("clients", "resources", "pools", "leads")

Write = Callable[[Database], Awaitable[None]]


def _read(kind: Kind, path: str) -> tuple[int, Write]:
    """How many rows the file holds and how to write them; LoadError for bad lines."""
    if kind == "clients":
        clients = read_clients(path)
        return len(clients), lambda db: write_clients(db, clients)
    if kind == "resources":
        resources = read_resources(path)
        return len(resources), lambda db: write_resources(db, resources, path)
    if kind == "pools":
        pools = read_pools(path)
        return len(pools), lambda db: write_pools(db, pools)
    leads = read_leads(path)
    return len(leads), lambda db: write_leads(db, leads)


def load(kind: Kind, path: str, database_url: str) -> int:
    """Upsert the file's rows; 0, or an error naming the file, its lines or the database."""
    # The whole file is read and checked before any database is opened, so an
    # OSError here is the file's (missing, a directory), never the database's.
    try:
        count, write = _read(kind, path)
    except OSError as err:
        raise CommandError(f"{path}: {err.strerror or err}", RUNTIME) from err

    async def into_database() -> None:
        async with open_database(database_url) as db:
            await write(db)

    asyncio.run(into_database())
    print(f"loaded {count} {kind} from {path}")
    return 0
