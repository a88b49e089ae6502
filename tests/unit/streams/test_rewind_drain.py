"""The fetch loop (`use_batched_drain`) makes the seeks the agents want
(streams/offsets.py `Rewinds`): a partition with a rewind wanted gets no more
records of the fetch under way and keeps its read offset, the seek is made
between fetches, and faust lists no gap of watched offsets to commit over but
a transaction's marker. faust's real consumer, its fetches prepared (the
harness of test_batched_drain.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from typing import Any, cast

import faust
import faust.transport.consumer
import pytest
from faust.types import TP
from faust.types.tuples import ConsumerMessage

from streams.faust_adapt import use_batched_drain
from streams.offsets import Rewinds
from tests.unit.streams.test_batched_drain import FAUSTS_DRAIN, Drain, _message

A, B = TP("leads", 0), TP("leads", 1)
C = TP("fanout", 0)  # an internal topic, not watched


@pytest.fixture(autouse=True)
def batched(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(faust.transport.consumer.Consumer, "_drain_messages", FAUSTS_DRAIN)
    assert use_batched_drain()
    yield


class Rewinding(Drain):
    """The harness with a Rewinds, an assignment, and faust's seek_wait as it
    acts on faust's side (the read offset set to the offset)."""

    def __init__(self, fetches: list[list[ConsumerMessage]], markers: bool = False) -> None:
        super().__init__(fetches)
        self.rewinds = Rewinds(frozenset({"leads"}), markers=markers)
        assert use_batched_drain(self.rewinds)
        self.consumer.assignment = lambda: {A, B}
        self.sought: list[dict[TP, int]] = []
        self.refuse = 0  # seeks that fail first
        self.consumer.seek_wait = self._seek_wait
        cast(Any, self.app.topics)._acking_topics.add("leads")

    async def _seek_wait(self, partitions: Mapping[TP, int]) -> None:
        if self.refuse:
            self.refuse -= 1
            raise TimeoutError("the consumer's thread did not answer")
        self.sought.append(dict(partitions))
        for tp, offset in partitions.items():
            self.consumer._read_offset[tp] = offset


async def test_a_rewind_drops_the_rest_of_its_partition_and_seeks_between_fetches() -> None:
    fetches = [
        [_message(A, 10), _message(B, 0), _message(A, 15), _message(A, 16), _message(B, 1)],
        [_message(A, 11), _message(A, 12), _message(B, 2)],
    ]
    drain = Rewinding(fetches)
    deliver = drain._deliver

    async def agent_finds_the_skip(message: ConsumerMessage) -> None:
        await deliver(message)
        if (message.tp, message.offset) == (A, 15):
            drain.rewinds.want(A, 11)  # what Commits does when it pins offset 15

    drain.consumer.callback = agent_finds_the_skip
    await drain.run()
    # A's 16 was not delivered (the seek reads it again); B went on
    assert drain.delivered == [(A, 10), (B, 0), (A, 15), (B, 1), (A, 11), (A, 12), (B, 2)]
    assert drain.sought == [{A: 11}] and drain.rewinds.made == 1
    assert drain.read_offset(A) == 12
    # faust lists no gap to commit over: 11..14 were never seen
    assert not drain.consumer._gap[A]


async def test_a_partition_no_longer_assigned_is_not_sought() -> None:
    drain = Rewinding([[_message(A, 0)], [_message(B, 0)]])
    drain.rewinds.want(A, 0)
    drain.consumer.assignment = lambda: {B}
    await drain.run()
    assert drain.sought == [] and drain.rewinds.wanted == {}


async def test_with_transactional_inputs_a_marker_is_listed_for_faust() -> None:
    # offset 2 is a transaction's marker; 6 comes after a longer gap
    fetches = [[_message(A, 0), _message(A, 1), _message(A, 3), _message(A, 6)]]
    drain = Rewinding(fetches, markers=True)
    drain.consumer._committed_offset[A] = 0
    await drain.run()
    assert sorted((i.begin, i.end) for i in drain.consumer._gap[A]) == [(2, 4)]
    assert drain.delivered == [(A, 0), (A, 1), (A, 3), (A, 6)]


async def test_a_seek_that_fails_is_asked_again() -> None:
    drain = Rewinding([[_message(A, 10)], [], [_message(A, 11)]])
    drain.rewinds.want(A, 7)
    drain.refuse = 1
    await drain.run()
    assert drain.sought == [{A: 7}] and drain.rewinds.made == 1


async def test_no_seek_while_the_flow_is_suspended() -> None:
    """A rebalance is under way: its seek to the committed offsets replaces
    ours (and `Rewinds.reassigned` drops it)."""
    drain = Rewinding([[_message(A, 10)]])
    drain.rewinds.want(A, 7)
    drain.consumer.stop_flow()
    task = asyncio.ensure_future(drain.run())
    await asyncio.sleep(0.05)
    assert drain.sought == []
    drain.rewinds.reassigned()
    drain.consumer.resume_flow()
    await task
    assert drain.sought == [] and drain.delivered == [(A, 10)]


async def test_unwatched_topics_keep_fausts_gaps() -> None:
    drain = Rewinding([[_message(C, 3), _message(C, 9)]])
    cast(Any, drain.app.topics)._acking_topics.add("fanout")
    await drain.run()
    assert sorted((i.begin, i.end) for i in drain.consumer._gap[C]) == [(4, 10)]
