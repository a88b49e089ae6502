"""Which failures the adapters report as "unavailable, retry" (a service is
down) and which they raise as they are (bugs, data)."""

from __future__ import annotations

import pytest
import redis.exceptions
import sqlalchemy.exc

from allocator.errors import ServiceUnavailable
from allocator.quota.redis_store import redis_outages
from allocator.store.outages import database_outages, is_unavailable


class DriverError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


def db_error(sqlstate: str) -> sqlalchemy.exc.DBAPIError:
    return sqlalchemy.exc.DBAPIError("SELECT 1", {}, DriverError(sqlstate))


def test_database_service_failures_are_unavailable() -> None:
    for state in ("08006", "57P01", "57P03", "53300", "40001", "40P01", "55000"):
        assert is_unavailable(db_error(state)), state
    assert is_unavailable(ConnectionRefusedError())
    assert is_unavailable(sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("locked")))


def test_database_bugs_and_bad_data_are_not() -> None:
    for state in ("22001", "23505", "42P01"):  # too long, unique violation, no such table
        assert not is_unavailable(db_error(state)), state
    assert not is_unavailable(ValueError("bug"))
    assert not is_unavailable(KeyError("bug"))


async def test_the_adapters_translate_only_what_may_pass() -> None:
    with pytest.raises(ServiceUnavailable, match="database unavailable"):
        async with database_outages():
            raise db_error("57P01")
    with pytest.raises(sqlalchemy.exc.DBAPIError):
        async with database_outages():
            raise db_error("42P01")
    with pytest.raises(ServiceUnavailable, match="redis unavailable"):
        async with redis_outages():
            raise redis.exceptions.ConnectionError("refused")
    with pytest.raises(redis.exceptions.ResponseError):  # WRONGTYPE and the like: a bug
        async with redis_outages():
            raise redis.exceptions.ResponseError("WRONGTYPE")


async def test_a_wrong_redis_password_is_not_an_outage() -> None:
    # redis-py makes AuthenticationError a ConnectionError; waiting will not fix it
    with pytest.raises(redis.exceptions.AuthenticationError):
        async with redis_outages():
            raise redis.exceptions.AuthenticationError("invalid password")
