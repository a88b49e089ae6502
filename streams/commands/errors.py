"""What a command could not do, in one or two lines that name the thing at fault
(the variable, service, file and line) and the fix, with the exit status.

Every exception that leaves a command comes through `explain` (streams/cli.py);
`allocator --debug ...` shows the traceback instead.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pydantic
import sqlalchemy.exc
from sqlalchemy.engine import make_url

from allocator.config import KafkaLoginRefused, Settings, masked
from allocator.errors import LoadError, ServiceUnavailable
from allocator.store.urls import VARIABLE as DATABASE_VARIABLE
from allocator.store.urls import UnsupportedDatabaseUrl, database_url_problem

RUNTIME = 1  # a service failed, or a file's content is wrong
USAGE = 2  # the command line or the configuration (an ALLOCATOR_* value) cannot work

BROKER_VARIABLE = "ALLOCATOR_KAFKA_BOOTSTRAP_SERVERS"
REDIS_VARIABLE = "ALLOCATOR_REDIS_URL"

# Where an exception that does not say which service it belongs to (an OSError,
# a ValueError, an ImportError) was raised: the innermost of these packages in
# its traceback. asyncpg, for one, lets a refused connection out as a bare
# ConnectionRefusedError.
_DATABASE_MODULES = ("sqlalchemy", "asyncpg", "aiosqlite", "sqlite3", "allocator.store")
_BROKER_MODULES = ("aiokafka", "kafka")
_REDIS_MODULES = ("redis", "allocator.quota.redis_store")


class CommandError(Exception):
    """A command's failure as the user reads it: one or two lines and an exit status."""

    def __init__(self, message: str, status: int = RUNTIME) -> None:
        self.message = message
        self.status = status
        super().__init__(message)


@contextmanager
def library_logs_hidden() -> Iterator[None]:
    """No log line of a library on stderr while a command runs.

    aiokafka logs its failed connection before raising it, and without a
    handler Python prints that on stderr (logging.lastResort): a third line
    above ours. What it says, ours says. `--debug` leaves logging alone.
    """
    root = logging.getLogger()
    if root.handlers:  # someone configured logging (a test, an embedding program)
        yield
        return
    silent = logging.NullHandler()
    root.addHandler(silent)
    try:
        yield
    finally:
        root.removeHandler(silent)


def explain(exc: BaseException) -> CommandError:
    """The one- or two-line message and exit status for any exception a command raised."""
    if isinstance(exc, CommandError):
        return exc
    if isinstance(exc, UnsupportedDatabaseUrl | KafkaLoginRefused):
        return CommandError(str(exc), USAGE)  # both name the variables to fix
    if isinstance(exc, pydantic.ValidationError) and exc.title == Settings.__name__:
        return _settings_error(exc)
    if isinstance(exc, LoadError):
        # A file's bad lines, each named (loaders.py); a wrong file in two lines.
        return CommandError(str(exc), RUNTIME)
    service: str | None = None
    if isinstance(exc, ServiceUnavailable):  # the adapter already said whose it is
        service, exc = exc.service, exc.cause
    service = service or _service_of(exc)
    if service == "broker":
        return _broker_error(exc)
    if service == "redis":
        return _redis_error(exc)
    if service == "database":
        return _database_error(exc)
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return CommandError(
        f"unexpected {type(exc).__name__}: {first}\n"
        "  run the command again as `allocator --debug ...` for the traceback",
        RUNTIME,
    )


def _service_of(exc: BaseException) -> str | None:
    if isinstance(exc, sqlalchemy.exc.SQLAlchemyError):
        return "database"
    if type(exc).__module__.startswith(_BROKER_MODULES):
        return "broker"
    if type(exc).__module__.startswith("redis"):
        return "redis"
    innermost: str | None = None
    for module in _traceback_modules(exc):
        if module.startswith(_DATABASE_MODULES):
            innermost = "database"
        elif module.startswith(_BROKER_MODULES):
            innermost = "broker"
        elif module.startswith(_REDIS_MODULES):
            innermost = "redis"
    return innermost


def _traceback_modules(exc: BaseException) -> Iterator[str]:
    """The modules of the frames `exc` went through, outermost first."""
    tb = exc.__traceback__
    while tb is not None:
        yield str(tb.tb_frame.f_globals.get("__name__", ""))
        tb = tb.tb_next


def configured(field: str) -> str:
    """The value of an ALLOCATOR_* setting as the failing command saw it."""
    try:
        return str(getattr(Settings(), field))
    except pydantic.ValidationError:  # another variable is invalid; this one may be fine
        default = Settings.model_fields[field].get_default(call_default_factory=True)
        return os.environ.get(f"ALLOCATOR_{field.upper()}", str(default))


def _first_line(exc: BaseException) -> str:
    """The driver's own reason, without SQLAlchemy's wrapping and background link."""
    reason = getattr(exc, "orig", None) or exc
    # An OSError's strerror is its reason without "[Errno 111]".
    text = reason.strerror if isinstance(reason, OSError) and reason.strerror else str(reason)
    lines = text.strip().splitlines()
    return lines[0] if lines else type(reason).__name__


def _settings_error(exc: pydantic.ValidationError) -> CommandError:
    lines = []
    for problem in exc.errors():
        field = ".".join(str(part) for part in problem["loc"])
        value: Any = problem.get("input")
        lines.append(f"ALLOCATOR_{field.upper()}={value!s}: {problem['msg']}; fix or unset it")
    more = f"\n  and {len(lines) - 1} more ALLOCATOR_* value(s)" if len(lines) > 1 else ""
    return CommandError(lines[0] + more, USAGE)


def _broker_error(exc: BaseException) -> CommandError:
    servers = configured("kafka_bootstrap_servers")
    if type(exc).__name__ in ("KafkaConnectionError", "NodeNotReadyError") or isinstance(
        exc, OSError
    ):
        return CommandError(
            f"no Kafka broker answers at {servers}: start one, or set "
            f"{BROKER_VARIABLE} to your brokers (host:port,...)"
        )
    return CommandError(
        f"broker at {servers}: {type(exc).__name__}: {_first_line(exc)}; check {BROKER_VARIABLE}"
    )


def _redis_error(exc: BaseException) -> CommandError:
    url = masked(configured("redis_url"))
    name = type(exc).__name__
    if name in ("ConnectionError", "TimeoutError") or isinstance(exc, OSError):
        return CommandError(
            f"Redis at {url} does not answer ({_first_line(exc)}): start it, or set "
            f"{REDIS_VARIABLE} to your Redis (redis://host:6379/0)"
        )
    if isinstance(exc, ValueError):  # redis-py's answer to a URL it cannot parse
        return CommandError(f"{REDIS_VARIABLE}={url}: {_first_line(exc)}", USAGE)
    return CommandError(f"Redis at {url}: {name}: {_first_line(exc)}; check {REDIS_VARIABLE}")


def _database_error(exc: BaseException) -> CommandError:
    url = configured("database_url")
    problem = database_url_problem(url)
    if problem is not None:
        # A command that skipped the check (the replay reads the database only
        # when it is not given files) fails in SQLAlchemy's words; say ours.
        return CommandError(str(UnsupportedDatabaseUrl(DATABASE_VARIABLE, url, problem)), USAGE)
    shown = masked(url)
    fix = f"fix {DATABASE_VARIABLE}"
    sqlstate = getattr(getattr(exc, "orig", None), "sqlstate", None)
    reason = _first_line(exc)
    cause = getattr(exc, "orig", None) or exc
    if sqlstate == "3D000":  # invalid_catalog_name: the database does not exist
        name = _database_name(url)
        return CommandError(
            f'database "{name}" does not exist ({shown}): create it (createdb {name}) '
            f"or set {DATABASE_VARIABLE} to one that does"
        )
    if sqlstate in ("28000", "28P01"):  # the role, or its password
        return CommandError(
            f"database {shown}: {reason}; fix the user or password in {DATABASE_VARIABLE}"
        )
    if isinstance(cause, socket.gaierror):
        return CommandError(f"database {shown}: its host is unknown ({reason}); {fix}")
    if isinstance(cause, OSError):
        # Refused, unreachable, timed out; asyncio says "Multiple exceptions" when
        # a name like localhost has two addresses, so the errno alone cannot tell.
        return CommandError(f"database {shown} does not answer ({reason}): start it or {fix}")
    return CommandError(f"database {shown}: {reason}; check {DATABASE_VARIABLE}")


def _database_name(url: str) -> str:
    return make_url(url).database or ""
