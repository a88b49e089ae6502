"""Records pinned on arrival (`PinnedTopic`) are committable only once `Commits`
releases them, whatever faust's own stream does with them.

faust's real Stream, channel and consumer bookkeeping, without a broker: the
records are put into the agent's channel as faust's conductor would. Each case
also runs on faust's own Topic with the old pin (taken at batch time), to show
the offsets faust made committable there by itself."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import faust
import faust.streams
import pytest
from faust.types import TP
from faust.types.tuples import ConsumerMessage

from streams.app import _run_batches
from streams.commits import Commits, PinnedTopic

LEADS = TP("leads", 0)
RAW: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}


def _message(offset: int, generation: int = 0) -> ConsumerMessage:
    return ConsumerMessage(
        "leads", 0, offset, 0.0, 0, None, b"k", b"v", None, 1, 1, LEADS, generation_id=generation
    )


class Agent:
    """An app with one agent topic; `deliver` does what faust's conductor does."""

    def __init__(self, pinned: bool) -> None:
        self.app = faust.App("test-pinned", broker="kafka://127.0.0.1:9", store="memory://")
        self.pinned = pinned
        topic = PinnedTopic(self.app, topics=["leads"], **RAW) if pinned else None
        topic = topic or self.app.topic("leads", **RAW)
        self.app.topics._acking_topics.add("leads")  # as when the conductor subscribes it
        self.channel = topic.clone(is_iterator=True)
        self.stream = self.app.stream(self.channel)
        self.app.flow_control.resume()

    async def deliver(self, message: ConsumerMessage) -> None:
        message.incref(1)  # one subscribing channel
        self.channel.queue.put_nowait(await self.channel.decode(message, propagate=True))

    def take(self, events: list[Any]) -> None:
        """What the agent does as it takes a batch: the old pin, if not pinned on arrival."""
        if not self.pinned:
            for event in events:
                event.message.incref()

    @property
    def committable(self) -> list[int]:
        return list(self.app.consumer._acked.get(LEADS, []))


@pytest.fixture(params=["cython", "python"])
def iterator(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """faust has two stream iterators: its Cython one (used when built) and
    the pure-Python one; they differ in how they skip a record."""
    if request.param == "python":
        monkeypatch.setattr(faust.streams, "_CStreamIterator", None)
    yield request.param


async def _fail_first_batch(agent: Agent) -> None:
    with pytest.raises(RuntimeError):
        async for events in agent.stream.take_events(500, within=0.05):
            agent.take(events)
            raise RuntimeError("the batch could not finish")


@pytest.mark.parametrize(
    ("pinned", "iterator"),
    [(True, "cython"), (True, "python"), (False, "cython")],
    ids=["pinned on arrival", "pinned on arrival, python iterator", "faust's topic"],
    indirect=["iterator"],
)
async def test_records_a_stopped_agent_never_took_stay_uncommittable(
    pinned: bool, iterator: str
) -> None:
    agent = Agent(pinned)
    await agent.deliver(_message(0))
    await _fail_first_batch(agent)
    # The agent is stopped; more of its partition arrives. faust's stream
    # still drains its channel, with acks back on once take_events ended.
    for offset in range(1, 41):
        await agent.deliver(_message(offset))
    await asyncio.sleep(0.3)
    if pinned:
        assert agent.committable == []
    else:
        # (Cython iterator.) faust commits the longest run of acked offsets,
        # and at a committed offset of 0 it does not even check the gap at the
        # head: the failed batch and the 40 records after it were committed.
        assert len(agent.committable) >= 38


async def test_a_rebalance_does_not_wait_for_a_stopped_agents_records(iterator: str) -> None:
    agent = Agent(pinned=True)
    commits = Commits("allocate_leads", agent.stream)
    await agent.deliver(_message(0))

    async def broken(events: Any) -> list[Any]:
        raise RuntimeError("the batch could not finish")

    with pytest.raises(RuntimeError):
        async for events in agent.stream.take_events(500, within=0.05):
            await commits.run(events, broken)
    for offset in range(1, 41):
        await agent.deliver(_message(offset))
    await asyncio.sleep(0.3)
    unacked = agent.app.consumer._unacked_messages
    # Its stream took some after the failure and holds on to them: faust would wait.
    assert unacked
    # What the app makes faust do before each of its waits for unacked records.
    Commits.never_wait_for_stopped(agent.app.consumer, [commits])
    agent.app.consumer.commit = _no_broker
    await asyncio.wait_for(agent.app.consumer.wait_empty(), 5)
    assert not unacked
    assert agent.committable == []  # forgotten, not acked


async def _no_broker(*args: Any, **kwargs: Any) -> bool:
    return False  # faust's wait commits as it goes; there is no broker here


@pytest.mark.parametrize("stopping", [False, True], ids=["cancelled", "worker stop"])
async def test_an_agent_ended_other_than_by_a_stop_stays_stopped(
    stopping: bool, iterator: str
) -> None:
    agent = Agent(pinned=True)
    commits = Commits("allocate_leads", agent.stream)
    taken: list[int] = []

    async def slow(events: Any) -> list[Any]:
        taken.extend(e.message.offset for e in events)
        await asyncio.sleep(60)
        return []

    await agent.deliver(_message(0))
    actor = asyncio.ensure_future(_run_batches(agent.stream, commits, 500, 0.05, slow))
    for _ in range(100):
        if taken:
            break
        await asyncio.sleep(0.05)
    assert taken == [0]
    if stopping:
        agent.app._stopped.set()  # what mode's stop does first, before stopping the agents
    actor.cancel()
    with pytest.raises(asyncio.CancelledError):
        await actor
    if stopping:
        assert commits.failure is None  # a stop ends the agent cleanly
    else:
        # faust would restart the actor with the same stream: it must stay
        # stopped (_run_batches starts with that), not take records again.
        assert commits.why is not None and "CancelledError" in commits.why


@pytest.mark.parametrize(
    ("pinned", "iterator"),
    [(True, "python"), (False, "python")],
    ids=["pinned on arrival", "faust's topic"],
    indirect=["iterator"],
)
async def test_a_record_skipped_after_a_rebalance_is_never_committable(
    pinned: bool, iterator: str
) -> None:
    agent = Agent(pinned)
    agent.app.consumer_generation_id = 2
    agent.app.consumer._committed_offset[LEADS] = 5
    stale, fresh = _message(5, generation=1), _message(6, generation=2)
    await agent.deliver(stale)  # fetched before the rebalance
    await agent.deliver(fresh)
    async for event in agent.stream.events():
        assert event.message is fresh  # the stale copy is skipped
        break
    # (faust's Cython iterator, the one it uses when built, does not ack a
    # skipped record; its pure-Python one does.)
    if pinned:
        assert 5 not in agent.committable
    else:
        assert agent.committable == [5]  # faust's behaviour today, the reason for the pin


async def test_released_records_become_committable_in_order(iterator: str) -> None:
    agent = Agent(pinned=True)
    for offset in range(4):
        await agent.deliver(_message(offset))
    commits = Commits("allocate_leads", agent.stream)
    loop = asyncio.get_running_loop()
    batches = agent.stream.take_events(2, within=0.05)
    deliveries = []
    for _ in range(2):
        events = await batches.__anext__()
        deliveries.append(loop.create_future())
        await commits.release_after(commits.pin(events), [deliveries[-1]])
    await batches.aclose()  # faust acks the last batch taken: not the final ack
    assert agent.committable == []
    deliveries[1].set_result(None)  # the broker acknowledges the second batch first
    await asyncio.sleep(0.05)
    assert agent.committable == []
    deliveries[0].set_result(None)
    await commits.drain()
    assert agent.committable == [0, 1, 2, 3]
    # Released and acked by faust's take_events: nothing holds them any more.
    assert not agent.app.consumer._unacked_messages


async def test_a_raw_record_decodes_as_faust_decodes_it_with_one_pin() -> None:
    app = faust.App("test-pinned-raw", broker="kafka://127.0.0.1:9", store="memory://")
    ours = PinnedTopic(app, topics=["leads"], **RAW).clone(is_iterator=True)
    faust_own = app.topic("leads", **RAW).clone(is_iterator=True)
    for key, value in ((b"k", b"v"), (None, b'{"a": 1}'), (b"k", None)):
        message = ConsumerMessage(
            "leads", 0, 7, 0.0, 0, [("h", b"1")], key, value, None, 1, 1, LEADS
        )
        before = message.refcount
        event = await ours.decode(message, propagate=True)
        assert message.refcount == before + 1  # the pin
        expected = await faust_own.decode(message, propagate=True)
        assert (event.key, event.value, event.headers, event.message) == (
            expected.key,
            expected.value,
            expected.headers,
            message,
        )
        assert type(event) is type(expected)
    # a topic with a codec of its own keeps faust's decode, pinned
    json_topic = PinnedTopic(app, topics=["leads"], value_serializer="json").clone(is_iterator=True)
    message = ConsumerMessage("leads", 0, 8, 0.0, 0, None, None, b'{"a": 1}', None, 1, 1, LEADS)
    event = await json_topic.decode(message, propagate=True)
    assert event.value == {"a": 1}
    assert message.refcount == 1
