"""Feedback from the dispatchers (CONTRACT.md section 10) over the in-memory
store: refunds, health, stops and suppression, sticky sender, each once."""

from __future__ import annotations

from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from allocator.batch import BatchDecider, event_time
from allocator.channels import Channel
from allocator.directory import ClientDirectory, build_snapshot
from allocator.errors import InvalidRecord
from allocator.feedback import Applied, FeedbackApplier, lapsed_health
from allocator.models import Allocation, Client, Resource, SendEvent
from allocator.patterns import NO_PATTERNS
from allocator.quota import MemoryQuotaStore
from allocator.quota.feedback import COUNTED
from tests.factories import lead

THURSDAY = "2026-11-26T12:00:00+00:00"


class World:
    def __init__(self, resources: list[dict[str, Any]], **client: Any) -> None:
        clients = [Client.model_validate({"client_id": "acme", **client})]
        rows = [Resource.model_validate({"client_id": "acme", **r}) for r in resources]
        directory = ClientDirectory.fixed(build_snapshot(clients, rows))
        self.store = MemoryQuotaStore()
        self.decider = BatchDecider(directory, self.store, decided_at=event_time)
        self.applier = FeedbackApplier(directory, self.store)
        self.n = 0

    async def decide(self, *leads: Any) -> list[Allocation]:
        return await self.decider.decide(list(leads), lambda _: NO_PATTERNS)

    async def tell(
        self,
        kind: str,
        a: Allocation | None = None,
        channel: str = "email",
        at: str = "2026-11-26T13:00:00+00:00",
        lead_id: str = "lead-1",
        event_id: str | None = None,
        **extra: Any,
    ) -> Applied | InvalidRecord:
        self.n += 1
        data: dict[str, Any] = {
            "event_id": event_id or f"fb-{self.n}",
            "kind": kind,
            "client_id": "acme",
            "lead_id": a.lead_id if a else lead_id,
            "occurred_at": at,
            **extra,
        }
        if a is not None and kind not in ("replied", "meeting_booked", "unsubscribed"):
            entry = next(e for e in a.channels if e.channel == channel)
            data |= {
                "allocation_id": a.allocation_id,
                "channel": channel,
                "resource_id": extra.get("resource_id", entry.resource_id),
            }
        [result] = await self.applier.apply([SendEvent.model_validate(data)])
        return result

    def count(self, rid: str, day: str, channel: Channel = Channel.EMAIL) -> int:
        return self.store.count(channel, rid, datetime.fromisoformat(day).date())


def at(a: Allocation, channel: str) -> Any:
    return next(e for e in a.channels if e.channel == channel)


MAIL = [
    {"channel": "email", "resource_id": "mail-1", "daily_limit": 1},
    {"channel": "linkedin", "resource_id": "seat-1"},
]


async def test_a_failed_send_gives_its_slot_back_once() -> None:
    w = World(MAIL, max_defer_days=0)
    [a] = await w.decide(lead(40))
    assert w.count("mail-1", "2026-11-27") == 1
    [b] = await w.decide(lead(40, lead_id="lead-2"))
    assert at(b, "email").status == "exhausted"
    done = await w.tell("failed", a, event_id="fail-1")
    assert isinstance(done, Applied) and done.refunded == 1
    assert w.count("mail-1", "2026-11-27") == 0
    again = await w.tell("failed", a, event_id="fail-1")  # redelivered
    assert isinstance(again, Applied) and again.refunded == 1  # the same outcome...
    other = await w.tell("failed", a, event_id="fail-2")  # another event, the same send
    assert isinstance(other, Applied) and other.refunded == 0
    assert w.count("mail-1", "2026-11-27") == 0  # ...and never below zero
    [c] = await w.decide(lead(40, lead_id="lead-3"))
    assert at(c, "email").status == "allocated"


async def test_no_refund_for_a_day_that_has_ended() -> None:
    w = World(MAIL)
    [a] = await w.decide(lead(40))
    done = await w.tell("failed", a, at="2026-11-28T09:00:00+00:00")  # the 27th is over
    assert isinstance(done, Applied) and done.refunded == 0
    assert w.count("mail-1", "2026-11-27") == 1


async def test_a_reply_cancels_the_later_sends_and_suppresses_the_lead() -> None:
    w = World(MAIL, suppression_days=10)
    [a] = await w.decide(lead(40))  # email Fri 09:00, linkedin Fri 10:00
    done = await w.tell("replied", a, at="2026-11-27T09:30:00+00:00")
    assert isinstance(done, Applied)
    assert [(c.channel.value, c.reason) for c in done.cancellations] == [("linkedin", "replied")]
    assert done.cancellations[0].allocation_id == a.allocation_id
    assert w.count("seat-1", "2026-11-27", Channel.LINKEDIN) == 0  # given back
    assert w.count("mail-1", "2026-11-27") == 1  # sent before the reply: kept
    again = await w.tell("replied", a, at="2026-11-27T09:30:00+00:00", event_id=done.event.event_id)
    assert isinstance(again, Applied) and again.cancellations == done.cancellations
    [later] = await w.decide(lead(40, "2026-11-28T12:00:00+00:00", event_id="later"))
    assert {e.status for e in later.channels} == {"suppressed"}
    assert later.channels[0].reason.code == "suppressed"  # type: ignore[union-attr]
    [after] = await w.decide(lead(40, "2026-12-08T12:00:00+00:00", event_id="after"))
    assert {e.status for e in after.channels} == {"allocated"}  # 10 days on


async def test_unsubscribed_is_for_good() -> None:
    w = World(MAIL)
    [a] = await w.decide(lead(40))
    await w.tell("unsubscribed", a, at="2026-11-26T13:00:00+00:00")
    [later] = await w.decide(lead(40, "2027-11-26T12:00:00+00:00", event_id="a year on"))
    assert {e.status for e in later.channels} == {"suppressed"}


async def test_throttled_cools_the_resource_until_retry_after() -> None:
    w = World(
        [
            {"channel": "email", "resource_id": "mail-1"},
            {"channel": "email", "resource_id": "mail-2"},
        ]
    )
    [a] = await w.decide(lead(40))
    assert at(a, "email").resource_id == "mail-1"
    done = await w.tell("throttled", a, retry_after="2026-11-30T12:00:00+00:00")
    assert isinstance(done, Applied)
    [change] = done.health
    assert (change.resource_id, change.state, change.reason) == ("mail-1", "cooling", "throttled")
    out = await w.decide(*[lead(40, lead_id=f"x{i}") for i in range(3)])
    assert {at(b, "email").resource_id for b in out} == {"mail-2"}
    # Monday 09:00 is before the retry: mail-2 again; Tuesday both
    w2 = World([{"channel": "email", "resource_id": "mail-1"}], max_defer_days=3)
    [b] = await w2.decide(lead(40))
    await w2.tell("throttled", b, retry_after="2026-11-30T12:00:00+00:00")
    [c] = await w2.decide(lead(40, lead_id="y"))
    assert at(c, "email").usage_day == "2026-12-01"
    assert at(c, "email").reason.code == "deferred_health"


async def test_auth_failed_pauses_until_loaded_again() -> None:
    w = World(MAIL)
    [a] = await w.decide(lead(40))
    done = await w.tell("auth_failed", a)
    assert isinstance(done, Applied) and done.health[0].state == "paused"
    [b] = await w.decide(lead(40, lead_id="y"))
    assert at(b, "email").status == "exhausted"
    resumed_at = int(datetime.fromisoformat("2026-11-26T15:00:00+00:00").timestamp())
    assert await w.store.resume("acme", [(Channel.EMAIL, "mail-1")], resumed_at) == 1
    [c] = await w.decide(lead(40, lead_id="z"))
    assert at(c, "email").status == "allocated"
    # The change back to active is published once, whoever asks first.
    back = await lapsed_health(w.applier.directory, w.store, datetime.fromisoformat(THURSDAY))
    assert [(h.resource_id, h.state, h.reason) for h in back] == [
        ("mail-1", "active", "loaded again with active: true")
    ]
    assert back[0].changed_at == datetime.fromisoformat("2026-11-26T15:00:00+00:00")
    assert await lapsed_health(w.applier.directory, w.store, datetime.fromisoformat(THURSDAY)) == []


async def test_a_cooldown_that_ends_is_published_once() -> None:
    w = World(MAIL)
    [a] = await w.decide(lead(40))
    await w.tell("throttled", a, retry_after="2026-11-27T12:00:00+00:00")
    directory = w.applier.directory
    early = await lapsed_health(
        directory, w.store, datetime.fromisoformat("2026-11-27T11:59:00+00:00")
    )
    assert early == []
    late = await lapsed_health(
        directory, w.store, datetime.fromisoformat("2026-11-28T00:00:00+00:00")
    )
    assert [(h.resource_id, h.state, h.reason, h.changed_at.isoformat()) for h in late] == [
        ("mail-1", "active", "cooldown over", "2026-11-27T12:00:00+00:00")
    ]
    assert (
        await lapsed_health(directory, w.store, datetime.fromisoformat("2026-11-29T00:00:00+00:00"))
        == []
    )


async def test_a_bounce_rate_over_the_limit_cools_for_the_cooldown() -> None:
    w = World(
        [{"channel": "email", "resource_id": "mail-1", "daily_limit": 100}], cooldown_hours=48
    )
    sent = await w.decide(*[lead(40, lead_id=f"l{i}") for i in range(40)])
    for a in sent[:20]:
        assert isinstance(await w.tell("sent", a), Applied)
    # 1 of 20 is 5%: not above; the second makes 10%
    first = await w.tell("bounced", sent[0])
    assert isinstance(first, Applied) and first.health == ()
    second = await w.tell("bounced", sent[1], at="2026-11-26T14:00:00+00:00")
    assert isinstance(second, Applied)
    [change] = second.health
    assert change.state == "cooling" and change.reason == "bounce rate 2/20 over 7 days above 0.05"
    assert change.until == datetime.fromisoformat("2026-11-28T14:00:00+00:00")


async def test_complaints_reaching_the_limit_cool() -> None:
    w = World(MAIL, complaint_limit=2)
    [a] = await w.decide(lead(40))
    one = await w.tell("complained", a)
    two = await w.tell("complained", a)
    assert isinstance(one, Applied) and one.health == ()
    assert isinstance(two, Applied) and two.health[0].reason == "2 complaints over 7 days (limit 2)"


async def test_feedback_naming_no_reserved_send_is_bad_input() -> None:
    w = World(MAIL)
    [a] = await w.decide(lead(40))
    wrong = await w.tell("sent", a, resource_id="mail-9")
    assert isinstance(wrong, InvalidRecord) and wrong.code == "unknown_send"
    assert wrong.field == "resource_id" and "through mail-1, not mail-9" in wrong.message
    data = {
        "event_id": "n",
        "kind": "failed",
        "client_id": "acme",
        "lead_id": "lead-1",
        "allocation_id": "nope",
        "channel": "email",
        "resource_id": "mail-1",
        "occurred_at": THURSDAY,
    }
    [none] = await w.applier.apply([SendEvent.model_validate(data)])
    assert isinstance(none, InvalidRecord) and none.field == "allocation_id"


async def test_a_sticky_sender_keeps_the_first_touch() -> None:
    seats = [{"channel": "linkedin", "resource_id": f"seat-{i}"} for i in range(3)]
    w = World(seats, sticky_days=8)
    [first] = await w.decide(lead(40, lead_id="L"))
    fillers = await w.decide(*[lead(40, lead_id=f"f{i}") for i in range(4)])
    assert {at(f, "linkedin").resource_id for f in fillers} == {"seat-0", "seat-1", "seat-2"}
    [follow] = await w.decide(lead(40, "2026-11-27T12:00:00+00:00", lead_id="L", event_id="f"))
    assert at(follow, "linkedin").resource_id == at(first, "linkedin").resource_id
    # require: the sticky seat is full, so the follow-up waits a day
    w2 = World(
        [{"channel": "linkedin", "resource_id": f"seat-{i}", "daily_limit": 1} for i in range(2)],
        sticky_days=8,
        sticky="require",
    )
    [one] = await w2.decide(lead(40, lead_id="L"))
    [again] = await w2.decide(lead(40, lead_id="L", event_id="again"))
    assert at(again, "linkedin").resource_id == at(one, "linkedin").resource_id
    assert at(again, "linkedin").usage_day == "2026-11-30"
    assert at(again, "linkedin").reason.code == "deferred_full"
    w3 = World(
        [{"channel": "linkedin", "resource_id": f"seat-{i}", "daily_limit": 1} for i in range(2)],
        sticky_days=8,
    )
    await w3.decide(lead(40, lead_id="L"))
    [prefer] = await w3.decide(lead(40, lead_id="L", event_id="again"))
    assert at(prefer, "linkedin").usage_day == "2026-11-27"  # prefer: the other seat


KINDS = [
    "sent",
    "failed",
    "bounced",
    "complained",
    "throttled",
    "auth_failed",
    "replied",
    "meeting_booked",
    "unsubscribed",
]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.sampled_from(KINDS), st.integers(0, 29), st.integers(0, 72), st.booleans()),
        max_size=60,
    )
)
async def test_refunds_never_go_below_zero_nor_twice_and_stops_leave_no_later_send(
    feedback: list[tuple[str, int, int, bool]],
) -> None:
    w = World(
        [{"channel": "email", "resource_id": f"m{i}", "daily_limit": 3} for i in range(2)]
        + [{"channel": "linkedin", "resource_id": "s0", "daily_limit": 4}],
        max_defer_days=4,
    )
    leads = [
        lead(
            50,
            (datetime.fromisoformat(THURSDAY) + timedelta(hours=i)).isoformat(),
            lead_id=f"L{i % 10}",
            event_id=f"e{i}",
        )
        for i in range(30)
    ]
    out = await w.decide(*leads)
    stops: dict[str, datetime] = {}
    told: list[tuple[str, Allocation, str, datetime, str]] = []
    for n, (kind, which, hours, redeliver) in enumerate(feedback):
        if redeliver and told:
            told.append(told[-1])  # the same send-event again
        else:
            a = out[which]
            sent = [e for e in a.channels if e.status == "allocated"]
            if kind not in ("replied", "meeting_booked", "unsubscribed") and not sent:
                continue
            when = datetime.fromisoformat(THURSDAY) + timedelta(hours=hours)
            told.append((kind, a, sent[0].channel.value if sent else "email", when, f"fb-{n}"))
        kind, a, channel, when, event_id = told[-1]
        result = await w.tell(kind, a, channel=channel, at=when.isoformat(), event_id=event_id)
        assert not isinstance(result, InvalidRecord)
        if kind in ("replied", "meeting_booked", "unsubscribed"):
            stops[a.lead_id] = min(stops.get(a.lead_id, when), when)
    assert all(v >= 0 for v in w.store.counters.values())
    # every counter equals the sends still standing on it
    standing: dict[str, int] = {}
    for index in w.store.state.sends.values():
        for send in index.values():
            if send.state in COUNTED:
                for key in send.keys:
                    standing[key] = standing.get(key, 0) + 1
    for key, count in w.store.counters.items():
        if key.startswith("ratelimit:email") or key.startswith("ratelimit:linkedin"):
            assert count == standing.get(key, 0), key
    # no send of a stopped lead survives after its stop
    for index_key, index in w.store.state.sends.items():
        lead_id = index_key.rsplit(":", 1)[1]
        if lead_id in stops:
            for send in index.values():
                if send.state == "r":
                    assert send.send_at <= int(stops[lead_id].timestamp())


async def test_a_refund_never_hands_a_paced_k_out_again() -> None:
    w = World(
        [{"channel": "email", "resource_id": "mail-1"}], pacing={"email": {"gap_seconds": 600}}
    )
    first = await w.decide(*[lead(30, lead_id=f"p{i}") for i in range(3)])
    await w.tell("failed", first[1])  # its count comes back, its k does not
    [later] = await w.decide(lead(30, lead_id="p9"))
    nine = datetime.fromisoformat("2026-11-27T09:00:00+00:00")
    sends = sorted([at(a, "email").send_at for a in (*first, later)])
    assert at(later, "email").send_at >= nine + timedelta(seconds=3 * 600)
    assert min((b - a).total_seconds() for a, b in pairwise(sends)) >= 300
