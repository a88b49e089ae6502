"""Running a coroutine to its end from synchronous code (the commands' entry points)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run_to_end(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(main)`, without repr-ing what it returns.

    On Python 3.11, asyncio.run restores the SIGINT handler with
    `signal.getsignal`, which tries the handler (a partial holding the main
    task) as a `signal.Handlers` value; the ValueError it builds and drops
    holds repr(task), which holds repr(result). For a replay's 200,000 records
    that is about a second spent formatting text nobody reads (issue 15), so
    the result leaves the task through a box instead.
    """
    box: list[T] = []

    async def kept() -> None:
        box.append(await main)

    asyncio.run(kept())
    return box[0]
