"""`allocator clients|resources|pools|leads load`: JSON Lines upserts, all or nothing.

A file is read and checked whole before the database is touched, so a bad
line (LoadError) or an unreadable file (OSError) writes nothing; the rows are
then written in one transaction, so a failing write writes nothing either.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from allocator.errors import ErrorCode, InvalidRecord, LoadError
from allocator.files import load_all, parse_lines
from allocator.models import Client, Pool, Resource, ScoredLead, validate
from allocator.store.database import (
    Database,
    pool_keys,
    upsert_clients,
    upsert_leads,
    upsert_pools,
    upsert_resources,
)

T = TypeVar("T")

# The fields that tell a resource line from a client line. A line of the other
# kind is the wrong file, not a bad record: loaded as a client, a resource line
# passes (it has a client_id, and every other client field has a default) and
# resets that client to UTC and the default deferral.
RESOURCE_FIELDS = ("channel", "resource_id")


class OtherKindLine(InvalidRecord):
    """A line of the other kind of file (a resource in a clients file, or the reverse)."""


class WrongFile(LoadError):
    """Every bad line of the file is of the other kind: a resources file given
    to `clients load`, or the reverse. Said in two lines, not one per line."""

    def __init__(
        self, path: str, problems: list[tuple[int, InvalidRecord]], found: str, meant: str
    ) -> None:
        super().__init__(path, problems)
        first = problems[0][0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        self.args = (
            f"{path}: line {first}{more} {found}: this looks like a {meant} file; "
            "nothing written\n"
            f"  load it with: allocator {meant} load {path}",
        )


def _client(data: dict[str, Any]) -> Client:
    present = [f for f in RESOURCE_FIELDS if data.get(f) is not None]
    if present:
        raise OtherKindLine(
            ErrorCode.INVALID_FIELD,
            present[0],
            data[present[0]],
            f"{' and '.join(present)}: resource fields in a clients file; "
            "this looks like a resources file",
        )
    return validate(Client, data)


def _resource(data: dict[str, Any]) -> Resource:
    if all(data.get(f) is None for f in RESOURCE_FIELDS):
        raise OtherKindLine(
            ErrorCode.MISSING_FIELD,
            RESOURCE_FIELDS[0],
            None,
            "channel and resource_id: both missing; this looks like a clients file",
        )
    return validate(Resource, data)


def _read(
    path: str | Path, parse: Callable[[dict[str, Any]], T], found: str, meant: str
) -> list[T]:
    """Every record of the file; WrongFile if each bad line is of the other kind
    (`parse` raises OtherKindLine for those), else LoadError naming every bad line."""
    try:
        return load_all(path, parse)
    except LoadError as err:
        if all(isinstance(e, OtherKindLine) for _, e in err.problems):
            raise WrongFile(err.path, err.problems, found, meant) from None
        raise


def read_clients(path: str | Path) -> list[Client]:
    """Every client of the file; LoadError naming every bad line."""
    return _read(path, _client, "has channel or resource_id", "resources")


def read_resources(path: str | Path) -> list[Resource]:
    """Every resource of the file; LoadError naming every bad line."""
    return _read(path, _resource, "has no channel or resource_id", "clients")


def read_pools(path: str | Path) -> list[Pool]:
    """Every pool of the file; LoadError naming every bad line."""
    return load_all(path, lambda data: validate(Pool, data))


PoolKey = tuple[str, str, str]  # (client_id, channel, pool_id)


def pool_key_of(pool: Pool) -> PoolKey:
    return (pool.client_id, pool.channel.value, pool.pool_id)


def check_pools(path: str | Path, resources: Sequence[Resource], known: set[PoolKey]) -> None:
    """LoadError naming each line whose resource names a pool its client does not
    have on its channel (CONTRACT.md section 8: a bad line). `resources` are the
    file's, in line order (read_resources)."""
    wanted = {
        id(r): (r.client_id, r.channel.value, r.pool_id) for r in resources if r.pool_id is not None
    }
    if not any(key not in known for key in wanted.values()):
        return
    lines = [number for number, item in parse_lines(path, _resource)]
    problems = [
        (
            number,
            InvalidRecord(
                ErrorCode.INVALID_FIELD,
                "pool_id",
                resource.pool_id,
                f"pool_id: client {resource.client_id!r} has no {resource.channel.value} pool "
                f"{resource.pool_id!r} (load it first: allocator pools load FILE)",
            ),
        )
        for number, resource in zip(lines, resources, strict=True)
        if id(resource) in wanted and wanted[id(resource)] not in known
    ]
    raise LoadError(str(path), problems)


def read_leads(path: str | Path) -> list[ScoredLead]:
    """Every scored lead of the file; LoadError naming every bad line."""
    return load_all(path, lambda data: validate(ScoredLead, data))


async def write_clients(db: Database, clients: Sequence[Client]) -> None:
    async with db.session() as session, session.begin():
        await upsert_clients(session, clients)


async def write_resources(
    db: Database, resources: Sequence[Resource], path: str | Path = "resources"
) -> None:
    """Upsert the resources, in the transaction that checks their pools exist."""
    async with db.session() as session, session.begin():
        if any(r.pool_id is not None for r in resources):
            check_pools(path, resources, await pool_keys(session))
        await upsert_resources(session, resources)


async def write_pools(db: Database, pools: Sequence[Pool]) -> None:
    async with db.session() as session, session.begin():
        await upsert_pools(session, pools)


async def write_leads(db: Database, leads: Sequence[ScoredLead]) -> None:
    async with db.session() as session, session.begin():
        await upsert_leads(session, leads)


async def load_clients(db: Database, path: str | Path) -> int:
    """Upsert every client of the file (the last line of a client_id wins); lines read."""
    rows = read_clients(path)
    await write_clients(db, rows)
    return len(rows)


async def load_resources(db: Database, path: str | Path) -> int:
    """Upsert every resource of the file (the last line of a key wins); lines read."""
    rows = read_resources(path)
    await write_resources(db, rows, path)
    return len(rows)


async def load_pools(db: Database, path: str | Path) -> int:
    """Upsert every pool of the file (the last line of a key wins); lines read."""
    rows = read_pools(path)
    await write_pools(db, rows)
    return len(rows)
