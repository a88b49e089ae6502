"""Turns: work done in the background, batch after batch, in the order the
batches came. Each batch gets a future for each ordered step; the block of a
step runs once the batch before has done that step, and a batch that fails
its step fails that step of every batch after it (so nothing gets ahead of a
batch that never finished)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator


class EarlierTurnFailed(Exception):
    """A batch before this one failed its turn, so this one may not take it."""


@contextlib.asynccontextmanager
async def in_turn(
    before: asyncio.Future[None] | None, mine: asyncio.Future[None]
) -> AsyncIterator[None]:
    """Run the block once `before` is done, then mark `mine` done."""
    if before is not None:
        try:
            await asyncio.shield(before)
        except asyncio.CancelledError:
            _settle(mine, asyncio.CancelledError())  # a stop, not a failure: passed on as one
            raise
        except BaseException:
            _settle(mine, EarlierTurnFailed())
            raise EarlierTurnFailed("a batch before this one failed its turn") from None
    try:
        yield
    except BaseException as exc:
        _settle(mine, exc)
        raise
    _settle(mine, None)


@contextlib.contextmanager
def forfeit_on_failure(*turns: asyncio.Future[None]) -> Iterator[None]:
    """Around all of a batch's work: if it fails, also between its turns, the
    turns it has not taken fail too, so the batches after it fail rather than
    wait for them for good."""
    try:
        yield
    except BaseException as exc:
        for turn in turns:
            _settle(turn, exc if isinstance(exc, asyncio.CancelledError) else EarlierTurnFailed())
        raise


def _settle(turn: asyncio.Future[None], failure: BaseException | None) -> None:
    if turn.done():
        return
    if failure is None:
        turn.set_result(None)
    elif isinstance(failure, asyncio.CancelledError):
        turn.cancel()
    else:
        turn.set_exception(failure)
        # Reported by the batch that failed; the next batch reads it, if any.
        turn.exception()
