"""faust's drain as the worker runs it (`use_batched_drain`): one race per
fetch, the same deliveries as faust's one race per record.

faust's real consumer (not started; no broker): its fetch (`getmany`) gives
prepared records, its callback is the test's. Each case runs on faust's own
drain and on the batched one, with the same expectations."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any, cast

import faust
import faust.transport.consumer
import pytest
from faust.types import TP
from faust.types.tuples import ConsumerMessage
from mode import Service

from streams.faust_adapt import use_batched_drain

A, B = TP("leads", 0), TP("leads", 1)
FAUSTS_DRAIN = faust.transport.consumer.Consumer._drain_messages


def _message(tp: TP, offset: int) -> ConsumerMessage:
    return ConsumerMessage(tp.topic, tp.partition, offset, 0.0, 0, None, b"k", b"v", None, 1, 1, tp)


@pytest.fixture(autouse=True, params=["faust's drain", "batched drain"])
def drain_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    # (undone after each test: the patch is process-wide)
    monkeypatch.setattr(faust.transport.consumer.Consumer, "_drain_messages", FAUSTS_DRAIN)
    if request.param == "batched drain":
        assert use_batched_drain()
    yield request.param


class Drain:
    """faust's consumer whose fetches are `fetches`, one per getmany; the
    fetcher stops once they are all given."""

    def __init__(self, fetches: list[list[ConsumerMessage]]) -> None:
        self.app = faust.App("test-drain", broker="kafka://127.0.0.1:9", store="memory://")
        # faust's private parts, which its types do not name
        self.consumer: Any = cast(Any, self.app.consumer)
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
            if not self.consumer.flow_active:  # as faust's: no record once the flow stops
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

    def read_offset(self, tp: TP) -> int | None:
        offset: int | None = self.consumer._read_offset[tp]
        return offset


async def test_every_record_of_every_fetch_is_delivered_in_order() -> None:
    fetches = [
        [_message(A, 0), _message(B, 0), _message(A, 1), _message(B, 1)],
        [_message(A, o) for o in range(2, 250)],  # past faust's yield every 100
        [_message(B, 2)],
    ]
    drain = Drain(fetches)
    await drain.run()
    assert drain.delivered == [(m.tp, m.offset) for fetch in fetches for m in fetch]
    assert (drain.read_offset(A), drain.read_offset(B)) == (249, 2)


async def test_a_record_below_the_read_offset_is_dropped() -> None:
    # faust's rule: an offset below the read offset is dropped; the read offset itself is not
    drain = Drain([[_message(A, 0), _message(A, 1)], [_message(A, 1), _message(A, 2)]])
    await drain.run()
    assert drain.delivered == [(A, 0), (A, 1), (A, 1), (A, 2)]
    drain = Drain([[_message(A, 5)], [_message(A, 3), _message(A, 6)]])
    await drain.run()
    assert drain.delivered == [(A, 5), (A, 6)]


async def test_a_gap_in_the_offsets_is_noted_as_faust_notes_it() -> None:
    drain = Drain([[_message(A, 0), _message(A, 1), _message(A, 5), _message(A, 6)]])
    cast(Any, drain.app.topics)._acking_topics.add("leads")  # as when the conductor subscribes it
    drain.consumer._committed_offset[A] = 0
    await drain.run()
    assert sorted((i.begin, i.end) for i in drain.consumer._gap[A]) == [(2, 6)]
    assert drain.delivered == [(A, 0), (A, 1), (A, 5), (A, 6)]


async def test_a_suspended_flow_cancels_the_delivery_where_it_waits() -> None:
    """A rebalance stops the flow while a callback waits (a full channel):
    that delivery is cancelled (its record's read offset set, as faust sets
    it) and the rest of its fetch is not delivered, as faust's race per
    record cancels the waiting callback and its fetch yields no more; the
    next fetch after the flow resumes is delivered."""
    drain = Drain([[_message(A, 0), _message(A, 1), _message(A, 2)], [_message(A, 3)]])
    drain.consumer.resume_flow()
    drain.block = asyncio.Event()
    task = asyncio.ensure_future(drain.run())
    await asyncio.sleep(0.05)
    assert drain.delivered == []  # the first callback waits
    drain.consumer.stop_flow()
    await asyncio.sleep(0.05)
    assert drain.read_offset(A) == 0
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
    assert drain.read_offset(A) == 0  # not the failed record's


async def test_a_suspension_never_cancels_the_commit_every_n_acks() -> None:
    """faust's commit every N acks runs outside its race (batched: once a
    fetch, before it): a rebalance that stops the flow while it waits on
    the broker does not cancel it."""
    drain = Drain([[_message(A, 0)], [_message(A, 1)]])
    gate = asyncio.Event()
    commits: list[str] = []

    async def commit(*args: Any, **kwargs: Any) -> bool:
        commits.append("started")
        await gate.wait()
        commits.append("done")
        return True

    drain.consumer.commit = commit
    drain.consumer.resume_flow()
    drain.consumer._commit_every = 10
    drain.consumer._n_acked = 10  # reached before the first fetch
    task = asyncio.ensure_future(drain.run())
    await asyncio.sleep(0.05)
    assert commits == ["started"]
    drain.consumer.stop_flow()
    await asyncio.sleep(0.05)
    gate.set()
    drain.consumer.resume_flow()
    await task
    assert commits == ["started", "done"]
    assert drain.consumer._n_acked == 0
    assert drain.delivered == [(A, 0), (A, 1)]


async def test_another_faust_keeps_its_own_drain(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(faust.transport.consumer.Consumer, "_drain_messages", FAUSTS_DRAIN)
    monkeypatch.setattr(faust, "__version__", "0.16.0")
    assert not use_batched_drain()
    assert faust.transport.consumer.Consumer._drain_messages is FAUSTS_DRAIN
