"""The database as a command opens it: its URL checked first, its tables made,
and its engine closed whatever happens."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from allocator.store import Database
from allocator.store.urls import check_database_url


@asynccontextmanager
async def open_database(url: str) -> AsyncIterator[Database]:
    """The database at `url` (ALLOCATOR_DATABASE_URL), its URL checked first and
    its schema made."""
    check_database_url(url)
    async with Database(url) as db:
        yield db
