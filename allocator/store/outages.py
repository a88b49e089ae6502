"""Which database failures mean "the database is unavailable, try again".

Everything else (a missing table, a unique violation, a value too long) is a
bug or bad data and is raised as it is.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import sqlalchemy.exc

from allocator.errors import ServiceUnavailable

# Connection-level failures, whatever the driver.
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.DisconnectionError,
    ConnectionError,
    TimeoutError,
    OSError,
)
# PostgreSQL SQLSTATE classes that mean "try again": connection exception,
# insufficient resources, operator intervention (shutdown, cannot connect now),
# system error, transaction rollback (serialization, deadlock), and 55000, which
# is what a database that does not accept connections answers.
_TRANSIENT_SQLSTATES = ("08", "53", "57P", "58", "40", "55000")


def is_unavailable(exc: BaseException) -> bool:
    if isinstance(exc, _UNAVAILABLE):
        return True
    if isinstance(exc, sqlalchemy.exc.DBAPIError):
        # asyncpg's errors reach SQLAlchemy as plain DBAPIError; the code tells.
        sqlstate = getattr(exc.orig, "sqlstate", None)
        return exc.connection_invalidated or (
            isinstance(sqlstate, str) and sqlstate.startswith(_TRANSIENT_SQLSTATES)
        )
    return False


@asynccontextmanager
async def database_outages() -> AsyncIterator[None]:
    """Raise ServiceUnavailable for a database failure that may pass."""
    try:
        yield
    except Exception as exc:
        if is_unavailable(exc):
            raise ServiceUnavailable("database", exc) from exc
        raise
