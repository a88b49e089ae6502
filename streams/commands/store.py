"""The database as a command opens it: its URL checked first, its tables made,
and its engine closed whatever happens."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from allocator.store import Database
from allocator.store.urls import check_database_url


@asynccontextmanager
async def open_database(url: str) -> AsyncIterator[Database]:
    """The database at `url` (ALLOCATOR_DATABASE_URL), its schema made.

    Not `async with Database(url)`: that does not close the engine when making
    the schema fails, and an aiosqlite connection left open may then print
    "Event loop is closed" from its thread, a traceback after the one-line error.
    """
    check_database_url(url)
    db = Database(url)
    try:
        await db.create_schema()
        yield db
    finally:
        await db.close()
