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
