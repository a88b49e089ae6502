"""The feedback rules (CONTRACT.md section 10) in Python: refunds, resource
health, stops and suppression, and the sticky sender's choice.

The in-memory store runs these; the Redis store runs the same rules in
feedback.lua (and reserve.lua for health, suppression and the sticky sender),
atomically; a test holds the two to the same answers. What is kept:

- the lead's index of reserved sends, "<allocation_id>|<channel>" -> Send,
  written by the reservation that took the send;
- a resource's health: (state, until, reason); absent is active;
- per resource and client-local day, how many sends were sent, bounced and
  complained of (the bounce rate and the complaints over 7 days);
- a stopped lead's suppression: (kind, since, until or -1 for good);
- each send-event's outcome, so that a redelivery changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from allocator.models import feedback as models
from allocator.quota.base import Cancelled, FeedbackOutcome, FeedbackRequest, HealthSet

SEND_KINDS = frozenset(models.SEND_KINDS)
STOP_KINDS = frozenset(models.STOP_KINDS)
# A send's state in the index: reserved; given back (failed); cancelled (and
# given back); or gone on counting because its day had ended when it failed
# or was cancelled (`d`, done; `x`, cancelled): its count stays.
RESERVED, REFUNDED, CANCELLED, FAILED_LATE, CANCELLED_LATE = "r", "f", "c", "d", "x"
COUNTED = frozenset({RESERVED, FAILED_LATE, CANCELLED_LATE})
DAY_SECONDS = 86_400
MIN_SENT_FOR_RATE = 20  # a bounce rate needs at least this many sends


@dataclass
class Send:
    """A reserved send in the lead's index (state r, f or c)."""

    event_id: str
    resource_id: str
    send_at: int
    usage_day: str
    keys: list[str]
    state: str = RESERVED

    def encode(self) -> list[object]:
        return [
            self.event_id,
            self.resource_id,
            self.send_at,
            self.usage_day,
            self.keys,
            self.state,
        ]

    @classmethod
    def decode(cls, value: list[Any]) -> Send:
        event_id, resource_id, send_at, usage_day, keys, state = value
        return cls(
            str(event_id), str(resource_id), int(send_at), str(usage_day), list(keys), str(state)
        )


def field_of(allocation_id: str, channel: str) -> str:
    return f"{allocation_id}|{channel}"


def unknown_send(request: FeedbackRequest, reserved_on: str | None) -> tuple[str, str]:
    """A send-event naming no send that was reserved: its dead letter's code and sentence."""
    channel = request.channel.value if request.channel is not None else ""
    if reserved_on is None:
        return (
            "unknown_send",
            f"allocation_id: no {channel} send of allocation {request.allocation_id} was "
            f"reserved for lead {request.lead_id}",
        )
    return (
        "unknown_send",
        f"resource_id: allocation {request.allocation_id} sends {channel} through "
        f"{reserved_on}, not {request.resource_id}",
    )


def rate_reason(bounced: int, sent: int, limit: float) -> str:
    return f"bounce rate {bounced}/{sent} over 7 days above {limit}"


def complaints_reason(complaints: int, limit: int) -> str:
    return f"{complaints} complaints over 7 days (limit {limit})"


COOLDOWN_OVER, RESUMED = "cooldown over", "loaded again with active: true"


def resumed(at: int) -> tuple[str, int, str]:
    """A pause lifted at `at`: active, waiting for lapse() to say so once."""
    return ("active", at, RESUMED)


def lapsed(health: tuple[str, int, str] | None, now: int) -> tuple[int, str] | None:
    """When and why a resource's health became active again by `now`, if it did:
    a cooling whose until has passed, or a lifted pause."""
    if health is None:
        return None
    state, at, _ = health
    if state == "cooling" and at <= now:
        return (at, COOLDOWN_OVER)
    if state == "active":
        return (at, RESUMED)
    return None


def blocked_by_health(health: tuple[str, int] | None, at: int) -> bool:
    """A paused resource takes no send; a cooling one none before its until."""
    if health is None:
        return False
    state, until = health
    return state == "paused" or (state == "cooling" and until > at)


def sticky_resource(index: Mapping[str, Send], channel: str, at: int, days: int) -> str | None:
    """The resource the lead last had on `channel` within `days` of `at`
    (a cancelled send does not count); ties to the smaller resource_id."""
    best: tuple[int, str] | None = None
    for field, send in index.items():
        if not field.endswith("|" + channel) or send.state in (CANCELLED, CANCELLED_LATE):
            continue
        if abs(send.send_at - at) > days * DAY_SECONDS:
            continue
        if (
            best is None
            or send.send_at > best[0]
            or (send.send_at == best[0] and send.resource_id < best[1])
        ):
            best = (send.send_at, send.resource_id)
    return best[1] if best is not None else None


class FeedbackState:
    """What the rules read and write, as the in-memory store holds it."""

    def __init__(self, counters: dict[str, int]) -> None:
        self.counters = counters
        self.sends: dict[str, dict[str, Send]] = {}
        self.health: dict[str, tuple[str, int, str]] = {}
        self.suppressed: dict[str, tuple[str, int, int]] = {}
        self.outcomes: dict[str, FeedbackOutcome] = {}


def apply(
    state: FeedbackState,
    request: FeedbackRequest,
    index_key: str,
    health_key: Callable[[str, str], str],
    stat_key: Callable[[str, str, str, str], str],
    suppressed_key: str,
) -> FeedbackOutcome:
    """One send-event, once: a held outcome is returned as it was."""
    held = state.outcomes.get(request.hold_key)
    if held is not None:
        return held
    index = state.sends.setdefault(index_key, {})
    send: Send | None = None
    channel = request.channel.value if request.channel is not None else ""
    if request.kind in SEND_KINDS:
        send = index.get(field_of(request.allocation_id, channel))
        if send is None:
            return FeedbackOutcome(error=unknown_send(request, None))
        if send.resource_id != request.resource_id:
            return FeedbackOutcome(error=unknown_send(request, send.resource_id))
    outcome = FeedbackOutcome()
    day = request.occurred_day.isoformat()
    if request.kind == "failed":
        assert send is not None
        outcome = FeedbackOutcome(refunded=_refund(state, send, day))
    elif request.kind in ("sent", "bounced", "complained"):
        assert send is not None
        key = stat_key(channel, send.resource_id, request.kind, day)
        state.counters[key] = state.counters.get(key, 0) + 1
        change = _rate_rules(state, request, channel, send.resource_id, health_key, stat_key)
        outcome = FeedbackOutcome(health=change)
    elif request.kind == "throttled":
        assert send is not None
        change = _cool(
            state,
            health_key(channel, send.resource_id),
            channel,
            send.resource_id,
            request.cool_until,
            "throttled",
        )
        outcome = FeedbackOutcome(health=change)
    elif request.kind == "auth_failed":
        assert send is not None
        key = health_key(channel, send.resource_id)
        current = state.health.get(key)
        changes: tuple[HealthSet, ...] = ()
        if current is None or current[0] != "paused":
            state.health[key] = ("paused", -1, "auth_failed")
            changes = (HealthSet(channel, send.resource_id, "paused", -1, "auth_failed"),)
        outcome = FeedbackOutcome(health=changes)
    elif request.kind in STOP_KINDS:
        outcome = _stop(state, request, index, suppressed_key, day)
    state.outcomes[request.hold_key] = outcome
    return outcome


def _refund(state: FeedbackState, send: Send, day: str) -> int:
    """Give the send's counts back, unless already given or its day has ended."""
    if send.state != RESERVED:
        return 0
    if send.usage_day < day:
        send.state = FAILED_LATE
        return 0
    send.state = REFUNDED
    _give_back(state, send)
    return 1


def _give_back(state: FeedbackState, send: Send) -> None:
    """One count off each counter the send took, never below zero."""
    for key in send.keys:
        if state.counters.get(key, 0) > 0:
            state.counters[key] -= 1


def _stop(
    state: FeedbackState,
    request: FeedbackRequest,
    index: dict[str, Send],
    suppressed_key: str,
    day: str,
) -> FeedbackOutcome:
    cancelled = []
    refunded = 0
    for field in sorted(index):
        send = index[field]
        if send.state != RESERVED or send.send_at <= request.occurred:
            continue
        allocation_id, channel = field.rsplit("|", 1)
        send.state = CANCELLED_LATE
        if send.usage_day >= day:
            _give_back(state, send)
            refunded += 1
            send.state = CANCELLED
        cancelled.append(
            Cancelled(allocation_id, send.event_id, channel, send.resource_id, send.send_at)
        )
    until = request.suppress_until
    current = state.suppressed.get(suppressed_key)
    since = request.occurred
    if current is not None:
        since = min(current[1], since)
        if current[2] == -1 or (until != -1 and current[2] > until):
            until = current[2]
    state.suppressed[suppressed_key] = (request.kind, since, until)
    return FeedbackOutcome(refunded=refunded, cancelled=tuple(cancelled))


def _cool(
    state: FeedbackState, key: str, channel: str, resource_id: str, until: int, reason: str
) -> tuple[HealthSet, ...]:
    current = state.health.get(key)
    if current is not None and (
        current[0] == "paused" or (current[0] == "cooling" and current[1] >= until)
    ):
        return ()
    state.health[key] = ("cooling", until, reason)
    return (HealthSet(channel, resource_id, "cooling", until, reason),)


def _rate_rules(
    state: FeedbackState,
    request: FeedbackRequest,
    channel: str,
    resource_id: str,
    health_key: Callable[[str, str], str],
    stat_key: Callable[[str, str, str, str], str],
) -> tuple[HealthSet, ...]:
    def total(kind: str) -> int:
        return sum(
            state.counters.get(stat_key(channel, resource_id, kind, d.isoformat()), 0)
            for d in request.week
        )

    key = health_key(channel, resource_id)
    if request.kind == "bounced":
        sent, bounced = total("sent"), total("bounced")
        # The rate itself against the limit: the product limit * sent rounds,
        # and 0.58 * 50 is 28.999999999999996, so 29 of 50 would pass for
        # above 0.58. (feedback.lua divides the same way: one IEEE division.)
        if sent >= MIN_SENT_FOR_RATE and bounced / sent > request.bounce_rate_limit:
            reason = rate_reason(bounced, sent, request.bounce_rate_limit)
            return _cool(state, key, channel, resource_id, request.cool_until, reason)
    if request.kind == "complained":
        complaints = total("complained")
        if complaints >= request.complaint_limit:
            reason = complaints_reason(complaints, request.complaint_limit)
            return _cool(state, key, channel, resource_id, request.cool_until, reason)
    return ()
