"""The commit protocol over fake events: offsets are released in order per
partition, whatever order the batches finish in, and never past a batch that
did not finish."""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from intervaltree import IntervalTree

from streams.commits import BatchFailed, Commits, OffsetLedger
from streams.offsets import Rewinds


@given(st.data())
@settings(max_examples=300)
def test_ledger_releases_in_order_per_partition(data: st.DataObject) -> None:
    ledger: OffsetLedger[tuple[int, int]] = OffsetLedger()
    next_offset = {p: 0 for p in range(3)}
    tickets: list[tuple[int, list[tuple[int, int]]]] = []
    for _ in range(data.draw(st.integers(1, 12))):
        batch = []
        for _ in range(data.draw(st.integers(1, 6))):
            partition = data.draw(st.integers(0, 2))
            batch.append((partition, next_offset[partition]))
            next_offset[partition] += 1
        tickets.append((ledger.add([(p, (p, o)) for p, o in batch]), batch))
    order = data.draw(st.permutations(tickets))
    never = data.draw(st.sampled_from([None, *range(len(tickets))]))  # a batch that fails
    finished: set[tuple[int, int]] = set()
    released: list[tuple[int, int]] = []
    for ticket, batch in order:
        if ticket == never:
            continue
        finished.update(batch)
        released.extend(ledger.finish(ticket))
    for partition in range(3):
        offsets = [o for p, o in released if p == partition]
        # in order, from the first offset, with no gap
        assert offsets == list(range(len(offsets)))
        # everything finished before the first unfinished offset is released
        blocked = min(
            (o for p, o in _all(tickets) if p == partition and (p, o) not in finished),
            default=next_offset[partition],
        )
        assert offsets == list(range(blocked))
    assert ledger.waiting == sum(len(b) for _, b in tickets) - len(released)


def _all(tickets: list[tuple[int, list[tuple[int, int]]]]) -> list[tuple[int, int]]:
    return [event for _, batch in tickets for event in batch]


@dataclass(eq=False)  # hashable as faust's messages are (faust keeps sets of them)
class FakeMessage:
    tp: int
    offset: int
    topic: str = "leads"
    generation_id: int = 0
    refcount: int = 2  # faust's reference and the arrival pin (streams.commits.PinnedTopic)


@dataclass
class FakeEvent:
    message: FakeMessage


@dataclass
class FakeStream:
    acked: list[tuple[int, int]] = field(default_factory=list)

    async def ack(self, event: FakeEvent) -> None:
        self.acked.append((event.message.tp, event.message.offset))


def batches(partitions: int, size: int, count: int) -> list[list[FakeEvent]]:
    offsets = [0] * partitions
    out = []
    rng = random.Random(5)
    for _ in range(count):
        batch = []
        for _ in range(size):
            p = rng.randrange(partitions)
            batch.append(FakeEvent(FakeMessage(p, offsets[p])))
            offsets[p] += 1
        out.append(batch)
    return out


async def test_deliveries_acknowledged_out_of_order_release_in_order() -> None:
    stream = FakeStream()
    commits = Commits("agent", stream, limit=8)
    loop = asyncio.get_running_loop()
    pending: list[asyncio.Future[Any]] = []
    for batch in batches(2, 5, 6):
        ticket = commits.pin(batch)
        delivery: asyncio.Future[Any] = loop.create_future()
        pending.append(delivery)
        await commits.release_after(ticket, [delivery])
    for delivery in reversed(pending):  # the broker acknowledges the last batch first
        delivery.set_result(None)
        await asyncio.sleep(0)
    await commits.drain()
    for partition in (0, 1):
        offsets = [o for p, o in stream.acked if p == partition]
        assert offsets == sorted(offsets) == list(range(len(offsets)))
    assert len(stream.acked) == 30 and commits.waiting == 0


async def test_a_failed_delivery_stops_the_agent_and_nothing_after_it_is_released() -> None:
    stream = FakeStream()
    commits = Commits("agent", stream, limit=8)
    loop = asyncio.get_running_loop()
    first, second, third = batches(1, 3, 3)
    ok: asyncio.Future[Any] = loop.create_future()
    bad: asyncio.Future[Any] = loop.create_future()
    later: asyncio.Future[Any] = loop.create_future()
    await commits.release_after(commits.pin(first), [ok])
    await commits.release_after(commits.pin(second), [bad])
    await commits.release_after(commits.pin(third), [later])
    later.set_result(None)
    bad.set_exception(RuntimeError("broker refused the record"))
    ok.set_result(None)
    await commits.drain()
    assert stream.acked == [(0, 0), (0, 1), (0, 2)]  # the first batch only
    assert isinstance(commits.failure, RuntimeError)
    with pytest.raises(BatchFailed):
        commits.pin(batches(1, 1, 1)[0])


async def test_a_batch_whose_work_fails_is_never_released() -> None:
    stream = FakeStream()
    commits = Commits("agent", stream)
    first, second = batches(1, 2, 2)

    async def ok(events: Any) -> list[Any]:
        return []

    async def broken(events: Any) -> list[Any]:
        raise RuntimeError("a bug, not bad data")

    await commits.run(first, ok)
    with pytest.raises(RuntimeError):
        await commits.run(second, broken)
    await commits.drain()
    assert stream.acked == [(0, 0), (0, 1)]  # the first batch only
    assert commits.why == "RuntimeError: a bug, not bad data"
    with pytest.raises(BatchFailed):
        await commits.run(batches(1, 1, 1)[0], ok)


def test_offsets_never_consumed_are_counted_and_redeliveries_are_not(
    caplog: pytest.LogCaptureFixture,
) -> None:
    commits = Commits("agent", FakeStream())
    event = lambda p, o: FakeEvent(FakeMessage(p, o))  # noqa: E731
    commits.pin([event(0, 0), event(0, 1), event(1, 7)])
    commits.pin([event(0, 0), event(0, 2)])  # a redelivery, then the next one
    assert commits.skipped_offsets == 0
    commits.pin([event(0, 5)])  # 3 and 4 never came
    assert commits.skipped_offsets == 2
    assert "offsets 3..4 of 0 were never consumed" in caplog.text
    commits.reassigned()  # after a rebalance, from the committed offset (none here)
    commits.pin([event(0, 1)])
    assert commits.skipped_offsets == 2


def test_offsets_are_not_watched_under_transactions() -> None:
    commits = Commits("agent", FakeStream(), watch_offsets=False)
    commits.pin([FakeEvent(FakeMessage(0, 0)), FakeEvent(FakeMessage(0, 2))])  # a marker at 1
    assert commits.skipped_offsets == 0


def test_a_record_acked_before_its_batch_is_pinned_stops_the_agent() -> None:
    commits = Commits("agent", FakeStream())
    unpinned = FakeEvent(FakeMessage(0, 1, refcount=1))
    with pytest.raises(RuntimeError, match="acked before its batch was decided"):
        commits.pin([FakeEvent(FakeMessage(0, 0)), unpinned])
    assert commits.why is not None and "acked before its batch" in commits.why
    assert commits.waiting == 0  # nothing of that batch can be released


@dataclass
class FakeConsumer:
    """The parts of faust's consumer the offset watch reads and edits."""

    _committed_offset: dict[int, int] = field(default_factory=dict)
    _read_offset: dict[int, int] = field(default_factory=dict)
    _gap: defaultdict[int, IntervalTree] = field(default_factory=lambda: defaultdict(IntervalTree))
    _unacked_messages: set[Any] = field(default_factory=set)


@dataclass
class FakeApp:
    consumer: FakeConsumer


@dataclass
class ConsumedStream(FakeStream):
    app: FakeApp = field(default_factory=lambda: FakeApp(FakeConsumer()))


async def _decide(events: Any) -> list[Any]:
    return []


async def test_skipped_offsets_are_rewound_and_never_committed_over() -> None:
    stream = ConsumedStream()
    consumer = stream.app.consumer
    consumer._committed_offset[0] = 158
    # faust's own fetch loop, seeing 552 right after 158, lists 159..552 as a gap
    consumer._gap[0] = IntervalTree.from_tuples([(159, 553)])
    rewinds = Rewinds()
    skipped: list[int] = []
    commits = Commits("allocate_leads", stream, rewinds=rewinds, on_skipped=skipped.append)
    event = lambda o: FakeEvent(FakeMessage(0, o))  # noqa: E731

    first = [event(552), event(553)]
    consumer._unacked_messages.update(e.message for e in first)
    await commits.run(first, _decide)  # the first records after assignment
    assert rewinds.take() == {0: 158}  # the fetch loop seeks there
    assert not consumer._gap[0].overlaps_range(158, 552)  # no longer committable unseen
    assert skipped == [394] and commits.skipped_offsets == 394
    await commits.run([event(554)], _decide)  # queued before the seek: no second seek
    assert rewinds.take() == {}
    await commits.run([event(o) for o in range(158, 556)], _decide)  # they came again
    await commits.run([event(556)], _decide)
    assert rewinds.take() == {} and skipped == [394]
    await commits.drain()
    # The copies read past the gap were decided but never acked (faust could
    # commit over a gap of one at its head); those read again were.
    assert [o for _, o in stream.acked] == list(range(158, 557))
    assert not consumer._unacked_messages  # and no rebalance waits for them


async def test_a_gap_that_holds_no_records_is_accepted_after_two_rewinds(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("INFO", "streams.commits")
    stream = ConsumedStream()
    rewinds = Rewinds()
    commits = Commits("allocate_leads", stream, rewinds=rewinds)
    event = lambda o: FakeEvent(FakeMessage(0, o))  # noqa: E731

    await commits.run([event(0), event(1)], _decide)
    asked = []
    for _ in range(3):  # offsets 2..4 hold nothing: each rewind brings 5 first
        await commits.run([event(5)], _decide)
        asked.append(rewinds.take())
    assert asked == [{0: 2}, {0: 2}, {}]
    await commits.run([event(6)], _decide)
    assert rewinds.take() == {}
    assert "offsets 2..4 of 0 hold no records" in caplog.text
    # listed for faust (no entry there before), which may now commit over them
    assert [(iv.begin, iv.end) for iv in stream.app.consumer._gap[0]] == [(2, 5)]
    await commits.drain()
    assert [o for _, o in stream.acked] == [0, 1, 5, 6]


async def test_records_taken_before_a_rebalance_are_not_watched() -> None:
    stream = ConsumedStream()
    stream.app.consumer._committed_offset[0] = 10
    stream.app.consumer_generation_id = 2  # type: ignore[attr-defined]
    rewinds = Rewinds()
    commits = Commits("allocate_leads", stream, rewinds=rewinds)
    old = FakeEvent(FakeMessage(0, 40, generation_id=1))
    await commits.run([old], _decide)
    assert rewinds.take() == {} and commits.skipped_offsets == 0
    await commits.run([FakeEvent(FakeMessage(0, 10, generation_id=2))], _decide)
    assert rewinds.take() == {}


async def test_a_gap_whose_first_record_past_was_deleted_is_asked_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Offsets 1..4 skipped, 5 first past them; 5 deleted before the rewind,
    so the rewind brings 7 first. Asked again after a while, 7 is taken as
    the first past, and two rewinds later the gap 1..6 is accepted."""
    stream = ConsumedStream()
    rewinds = Rewinds()
    commits = Commits("allocate_leads", stream, rewinds=rewinds)
    event = lambda o: FakeEvent(FakeMessage(0, o))  # noqa: E731

    await commits.run([event(0)], _decide)
    await commits.run([event(5)], _decide)
    assert rewinds.take() == {0: 1}
    await commits.run([event(7)], _decide)  # the rewind's first: 5 is gone
    assert rewinds.take() == {}  # not yet: it could be a record queued before the seek
    monkeypatch.setattr("streams.commits.ASK_AGAIN_SECONDS", -1.0)
    await commits.run([event(7)], _decide)  # still nothing below it, a while later
    assert rewinds.take() == {0: 1}
    for _ in range(3):
        await commits.run([event(7)], _decide)  # each rewind brings 7 first
    await commits.run([event(8)], _decide)
    await commits.drain()
    assert [o for _, o in stream.acked] == [0, 7, 8]
    assert [(iv.begin, iv.end) for iv in stream.app.consumer._gap[0]] == [(1, 7)]
