import pytest

from allocator.directory import ClientDirectory, Snapshot, build_snapshot
from tests.factories import client, resource


async def test_reload_failure_keeps_the_last_snapshot_and_retries_soon() -> None:
    now = [0.0]
    good = build_snapshot([client()], [resource("email", "d1")])
    answers: list[Snapshot | Exception] = [good, ConnectionError("db down"), good]

    async def load() -> Snapshot:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    directory = ClientDirectory(load, ttl=30.0, clock=lambda: now[0])
    assert await directory.snapshot() == good
    now[0] = 31.0
    assert await directory.snapshot() == good  # reload failed: the last one serves
    now[0] = 35.0
    assert answers == [good]  # not retried before 5 s
    now[0] = 36.1
    assert await directory.snapshot() == good and answers == []


async def test_first_load_failure_raises() -> None:
    async def load() -> Snapshot:
        raise ConnectionError("db down")

    with pytest.raises(ConnectionError):
        await ClientDirectory(load).snapshot()
