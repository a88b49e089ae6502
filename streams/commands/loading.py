"""`allocator clients|resources|pools|leads load FILE`: a JSON Lines file upserted,
all or nothing (allocator/store/loaders.py reads and writes it)."""

from __future__ import annotations

import sys
import time
from collections.abc import Awaitable, Callable
from typing import Literal

from allocator.channels import Channel
from allocator.config import Settings
from allocator.errors import ServiceUnavailable
from allocator.models import Resource
from allocator.quota import open_quota_store
from allocator.running import run_to_end
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


async def resume_paused(resources: list[Resource], settings: Settings) -> int:
    """Lift `paused` (auth_failed, CONTRACT.md section 10) from resources loaded
    again with active: true; how many were paused. Redis not there: none lifted,
    said on stderr, the load still done."""
    if settings.redis_url.startswith("memory://"):
        return 0
    by_client: dict[str, list[tuple[Channel, str]]] = {}
    for r in resources:
        if r.active:
            by_client.setdefault(r.client_id, []).append((r.channel, r.resource_id))
    store = open_quota_store(settings.redis_url, settings.quota_key_prefix)
    lifted = 0
    try:
        for client_id, named in by_client.items():
            lifted += await store.resume(client_id, named, int(time.time()))
    except ServiceUnavailable as exc:
        print(f"note: paused resources not resumed, Redis unavailable ({exc})", file=sys.stderr)
    finally:
        await store.close()
    return lifted


def load(kind: Kind, path: str, database_url: str, settings: Settings | None = None) -> int:
    """Upsert the file's rows; 0, or an error naming the file, its lines or the database.
    Resources loaded with active: true are resumed if a dispatcher's auth_failed paused them."""
    # The whole file is read and checked before any database is opened, so an
    # OSError here is the file's (missing, a directory), never the database's.
    try:
        count, write = _read(kind, path)
    except OSError as err:
        raise CommandError(f"{path}: {err.strerror or err}", RUNTIME) from err

    async def into_database() -> int:
        async with open_database(database_url) as db:
            await write(db)
        if kind == "resources" and settings is not None:
            return await resume_paused(read_resources(path), settings)
        return 0

    resumed = run_to_end(into_database())
    print(f"loaded {count} {kind} from {path}")
    if resumed:
        print(f"resumed {resumed} paused resource(s)")
    return 0
