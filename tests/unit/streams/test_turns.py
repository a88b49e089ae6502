"""The lead agent's pipeline (streams/turns.py, used by streams/agents.py): batches run in the
background take their turns (reserving, handing allocations over) in the order
the batches came, whatever their other work takes, and a batch that fails its
turn fails every later batch's turn instead of letting it pass."""

from __future__ import annotations

import asyncio
import random

import pytest

from streams.turns import in_turn


async def _batches(delays: list[float], fail_at: int | None) -> tuple[list[int], list[str]]:
    loop = asyncio.get_running_loop()
    turns: list[int] = []
    before: asyncio.Future[None] | None = None

    async def batch(
        n: int, before: asyncio.Future[None] | None, mine: asyncio.Future[None]
    ) -> None:
        await asyncio.sleep(delays[n])  # planning, completing: any length
        async with in_turn(before, mine):
            await asyncio.sleep(delays[-1 - n] / 10)
            if n == fail_at:
                raise RuntimeError(f"batch {n} failed")
            turns.append(n)

    tasks = []
    for n in range(len(delays)):
        mine = loop.create_future()
        tasks.append(asyncio.ensure_future(batch(n, before, mine)))
        before = mine
    results = await asyncio.gather(*tasks, return_exceptions=True)
    return turns, [str(r) if isinstance(r, BaseException) else "ok" for r in results]


@pytest.mark.parametrize("seed", range(20))
async def test_turns_are_taken_in_the_order_batches_came(seed: int) -> None:
    rng = random.Random(seed)
    delays = [rng.random() / 100 for _ in range(8)]
    turns, outcomes = await _batches(delays, None)
    assert turns == list(range(8))
    assert outcomes == ["ok"] * 8


@pytest.mark.parametrize("fail_at", [0, 3, 7])
async def test_a_failed_turn_fails_every_later_one(fail_at: int) -> None:
    delays = [0.001 * (8 - n) for n in range(8)]  # later batches are ready first
    turns, outcomes = await _batches(delays, fail_at)
    assert turns == list(range(fail_at))
    assert outcomes[:fail_at] == ["ok"] * fail_at
    assert outcomes[fail_at] == f"batch {fail_at} failed"
    assert all(o == "a batch before this one failed its turn" for o in outcomes[fail_at + 1 :])


async def test_a_failure_between_turns_fails_the_next_batch_instead_of_hanging() -> None:
    """Batch 0 reserves, then fails completing (before its sending turn): batch 1
    must fail both its turns at once, not wait for batch 0's sending turn."""
    from streams.turns import forfeit_on_failure

    loop = asyncio.get_running_loop()
    turns = [(loop.create_future(), loop.create_future()) for _ in range(2)]
    took: list[str] = []

    async def batch(n: int) -> None:
        reserved, sent = turns[n]
        before = turns[n - 1] if n else (None, None)
        with forfeit_on_failure(reserved, sent):
            async with in_turn(before[0], reserved):
                took.append(f"reserve {n}")
            if n == 0:
                raise ValueError("completing failed")
            async with in_turn(before[1], sent):
                took.append(f"send {n}")

    results = await asyncio.wait_for(
        asyncio.gather(batch(0), batch(1), return_exceptions=True), timeout=5
    )
    assert [type(r).__name__ for r in results] == ["ValueError", "EarlierTurnFailed"]
    assert took == ["reserve 0", "reserve 1"]


async def test_a_stop_while_waiting_for_a_turn_is_a_stop_not_a_failure() -> None:
    loop = asyncio.get_running_loop()
    first, second = loop.create_future(), loop.create_future()

    async def waiting() -> None:
        async with in_turn(first, second):
            pass

    task = asyncio.ensure_future(waiting())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert second.cancelled()
    assert not first.done()  # the batch before goes on
