"""faust's drain as the worker runs it (`use_batched_drain`): one race per
fetch, the same deliveries as faust's one race per record.

faust's real consumer (not started; no broker): its fetch (`getmany`) gives
prepared records, its callback is the test's."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import faust
import faust.transport.consumer
import pytest
from faust.types import TP
from faust.types.tuples import ConsumerMessage
from mode import Service

from streams.faust_adapt import use_batched_drain

A, B = TP("leads", 0), TP("leads", 1)


def _message(tp: TP, offset: int) -> ConsumerMessage:
    return ConsumerMessage(tp.topic, tp.partition, offset, 0.0, 0, None, b"k", b"v", None, 1, 1, tp)


@pytest.fixture(autouse=True)
def batched_drain(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # (undone after each test: the patch is process-wide)
    monkeypatch.setattr(
        faust.transport.consumer.Consumer,
        "_drain_messages",
        faust.transport.consumer.Consumer._drain_messages,
    )
    use_batched_drain()
    yield


class Drain:
    """faust's consumer whose fetches are `fetches`, one per getmany; the
    fetcher stops once they are all given."""

    def __init__(self, fetches: list[list[ConsumerMessage]]) -> None:
        self.app = faust.App("test-drain", broker="kafka://127.0.0.1:9", store="memory://")
        self.consumer: Any = self.app.consumer
        self.fetcher = Service()
        self.fetches = list(fetches)
        self.delivered: list[tuple[TP, int]] = []
        self.consumer.getmany = self._getmany
        self.consumer.callback = self._deliver
        self.block: asyncio.Event | None = None  # a callback waits on it (a full channel)
        self.fail_at: int | None = None

    async def _getmany(self, timeout: float) -> AsyncIterator[tuple[TP, ConsumerMessage]]:  # noqa: ASYNC109 (faust names it)
        if not self.consumer.flow_active:  # as faust's: a fetch waits for the flow
            await self.consumer.can_resume_flow.wait()
        if not self.fetches:
            self.fetcher._stopped.set()
            return
        for message in self.fetches.pop(0):
            if not self.consumer.flow_active:  # as faust's getmany: no record once the flow stops
                return
            yield message.tp, message

    async def _deliver(self, message: ConsumerMessage) -> None:
        if message.offset == self.fail_at:
            raise RuntimeError("a callback failed")
        if self.block is not None:
            await self.block.wait()
        self.delivered.append((message.tp, message.offset))

    async def run(self) -> None:
        await asyncio.wait_for(self.consumer._drain_messages(self.fetcher), 5)


async def test_every_record_of_every_fetch_is_delivered_in_order() -> None:
    fetches = [
        [_message(A, 0), _message(B, 0), _message(A, 1), _message(B, 1)],
        [_message(A, o) for o in range(2, 250)],  # past faust's yield every 100
        [_message(B, 2)],
    ]
    drain = Drain(fetches)
    await drain.run()
    assert drain.delivered == [(m.tp, m.offset) for fetch in fetches for m in fetch]
    assert drain.consumer._read_offset[A] == 249
    assert drain.consumer._read_offset[B] == 2


async def test_a_record_read_already_is_not_delivered_again() -> None:
    drain = Drain([[_message(A, 0), _message(A, 1)], [_message(A, 1), _message(A, 2)]])
    drain.consumer._read_offset[A] = None
    await drain.run()
    # faust's rule: an offset below the read offset is dropped; the same one is not
    assert drain.delivered == [(A, 0), (A, 1), (A, 1), (A, 2)]
    drain = Drain([[_message(A, 5)], [_message(A, 3), _message(A, 6)]])
    await drain.run()
    assert drain.delivered == [(A, 5), (A, 6)]


async def test_a_suspended_flow_cancels_the_delivery_where_it_waits() -> None:
    """A rebalance stops the flow while a callback waits (a full channel):
    that delivery is cancelled and the rest of its fetch is not delivered,
    as faust's race per record cancels the waiting callback and its fetch
    yields no more; the next fetch after the flow resumes is delivered."""
    drain = Drain([[_message(A, 0), _message(A, 1), _message(A, 2)], [_message(A, 3)]])
    drain.consumer.resume_flow()
    drain.block = asyncio.Event()
    task = asyncio.ensure_future(drain.run())
    await asyncio.sleep(0.05)
    assert drain.delivered == []  # the first callback waits
    drain.consumer.stop_flow()
    await asyncio.sleep(0.05)
    drain.block.set()
    drain.consumer.resume_flow()
    await task
    assert drain.delivered == [(A, 3)]


async def test_a_failed_callback_ends_the_drain_with_its_error() -> None:
    drain = Drain([[_message(A, 0), _message(A, 1), _message(A, 2)]])
    drain.fail_at = 1
    with pytest.raises(RuntimeError, match="a callback failed"):
        await drain.run()
    assert drain.delivered == [(A, 0)]


async def test_the_commit_every_n_acks_runs_between_fetches() -> None:
    drain = Drain([[_message(A, 0)], [_message(A, 1)]])
    commits: list[int] = []

    async def commit(*args: Any, **kwargs: Any) -> bool:
        commits.append(len(drain.delivered))
        return True

    drain.consumer.commit = commit
    drain.consumer._commit_every = 10
    drain.consumer._n_acked = 10  # reached before the first fetch
    await drain.run()
    assert commits == [0]  # once, before the first fetch's delivery; the count starts over
    assert drain.consumer._n_acked == 0
    assert drain.delivered == [(A, 0), (A, 1)]
