"""Which failures the worker retries (a service is down) and which it does not (bugs, data)."""

import redis.exceptions
import sqlalchemy.exc

from streams.agents import is_transient


class DriverError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


def db_error(sqlstate: str) -> sqlalchemy.exc.DBAPIError:
    return sqlalchemy.exc.DBAPIError("SELECT 1", {}, DriverError(sqlstate))


def test_service_failures_are_transient() -> None:
    for state in ("08006", "57P01", "57P03", "53300", "40001", "40P01", "55000"):
        assert is_transient(db_error(state)), state
    assert is_transient(redis.exceptions.ConnectionError())
    assert is_transient(ConnectionRefusedError())
    assert is_transient(sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("locked")))


def test_bugs_and_bad_data_are_not() -> None:
    for state in ("22001", "23505", "42P01"):  # too long, unique violation, no such table
        assert not is_transient(db_error(state)), state
    assert not is_transient(ValueError("bug"))
    assert not is_transient(KeyError("bug"))
