"""Which database URLs the allocator can use, said before any engine is made.

SQLAlchemy reports a URL it cannot use only when the first connection is made,
and then in its own words ("No module named 'psycopg'", "The loaded 'pysqlite'
is not async"), far from the variable that holds it. Every command and the
worker's start check ALLOCATOR_DATABASE_URL here first, so the answer names the
variable and the URL that would work.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from allocator.config import masked

VARIABLE = "ALLOCATOR_DATABASE_URL"
# The engine is asynchronous, so each back end has exactly one usable driver.
DRIVERS = {"postgresql": "asyncpg", "sqlite": "aiosqlite"}
EXAMPLES = {
    "postgresql": "postgresql+asyncpg://user:password@host:5432/database",
    "sqlite": "sqlite+aiosqlite:///./allocator.db",
}
_EITHER = f"{EXAMPLES['postgresql']} or {EXAMPLES['sqlite']}"


class UnsupportedDatabaseUrl(ValueError):
    """A database URL the allocator cannot use; one line naming the variable and the fix."""

    def __init__(self, variable: str, url: str, problem: str) -> None:
        self.variable = variable
        self.url = url
        self.problem = problem
        super().__init__(f"{variable}={masked(url)}: {problem}")


def database_url_problem(url: str) -> str | None:
    """What makes `url` unusable by the allocator (one line, with the fix), or None."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:  # ValueError: a port that is not a number
        return f"not a database URL ({exc}); use {_EITHER}"
    backend, _, driver = parsed.drivername.partition("+")
    # "postgres" is what Heroku-style URLs and psql say; SQLAlchemy knows only "postgresql".
    known = "postgresql" if backend == "postgres" else backend
    if known not in DRIVERS:
        return f"{backend} is not supported; use {_EITHER}"
    wanted = f"{known}+{DRIVERS[known]}"
    if parsed.drivername != wanted:
        given = f"the driver {driver!r} is not supported" if driver else "no driver is named"
        if known != backend:
            given = f"{backend}:// is not a SQLAlchemy scheme"
        fixed = parsed.set(drivername=wanted).render_as_string(hide_password=True)
        return f"{given}; use {wanted}://, e.g. {fixed}"
    if parsed.port is not None and not 0 < parsed.port < 65536:
        return f"port {parsed.port} is not a TCP port (1-65535)"
    if known == "postgresql" and "sslmode" in parsed.query:
        # libpq's word; asyncpg refuses it as an unexpected keyword argument.
        mode = parsed.query["sslmode"]
        return f"asyncpg takes ?ssl={mode}, not libpq's ?sslmode={mode}"
    return _sqlite_folder_problem(parsed) if backend == "sqlite" else None


def _sqlite_folder_problem(parsed: URL) -> str | None:
    # SQLite creates a missing file but not its folder, and then says only
    # "unable to open database file"; an in-memory or URI database has no folder.
    name = parsed.database
    if not name or name == ":memory:" or name.startswith("file:"):
        return None
    folder = Path(name).expanduser().parent
    if not folder.is_dir():
        return f"the folder {folder}/ of the SQLite file does not exist; create it or fix the path"
    return None


def check_database_url(url: str, variable: str = VARIABLE) -> None:
    """UnsupportedDatabaseUrl if `url` (the value of `variable`) cannot be used."""
    problem = database_url_problem(url)
    if problem is not None:
        raise UnsupportedDatabaseUrl(variable, url, problem)
