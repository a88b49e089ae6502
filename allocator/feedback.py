"""Send-events -> what they change (CONTRACT.md section 10), in input order,
with one store round trip per batch.

The stream worker and the replay both apply feedback through
`FeedbackApplier`: the rules run atomically in the quota store (memory or
Redis: allocator/quota/feedback.py and feedback.lua); this turns a validated
send-event and its client's setup into the store's request, and the store's
outcome into the records of `lead-cancellations` and `resource-health`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from allocator.directory import ClientDirectory, ClientSetup, unknown_client
from allocator.errors import ErrorCode, InvalidRecord
from allocator.models import Cancellation, HealthChange, SendEvent, derived_id, zone
from allocator.quota.base import FeedbackOutcome, FeedbackRequest, HealthSet, QuotaStore

# How long a send-event's outcome is held against redelivery: as long as a
# reserved send may still be named by one (deferrals, a week of retries).
_HOLD = timedelta(days=45)
_THROTTLE = timedelta(hours=1)  # a throttled resource's default wait


@dataclass(frozen=True)
class Applied:
    """What one send-event did: the records it produced and the counts given back."""

    event: SendEvent
    cancellations: tuple[Cancellation, ...]
    health: tuple[HealthChange, ...]
    refunded: int


def _epoch(at: datetime) -> int:
    return int(at.timestamp())


def _utc(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def feedback_request(event: SendEvent, setup: ClientSetup) -> FeedbackRequest:
    client = setup.client
    day = event.occurred_at.astimezone(zone(client.timezone)).date()
    cooldown = timedelta(hours=client.cooldown_hours)
    cool_until = event.occurred_at + cooldown
    if event.kind == "throttled":
        cool_until = event.retry_after or event.occurred_at + _THROTTLE
    suppress_until = -1
    if event.kind != "unsubscribed":
        suppress_until = _epoch(event.occurred_at + timedelta(days=client.suppression_days))
    return FeedbackRequest(
        hold_key=derived_id("feedback", event.client_id, event.event_id),
        client_id=event.client_id,
        lead_id=event.lead_id,
        kind=event.kind,
        occurred=_epoch(event.occurred_at),
        occurred_day=day,
        hold_until=_epoch(max(event.occurred_at, datetime.now(UTC)) + _HOLD),
        allocation_id=event.allocation_id or "",
        channel=event.channel,
        resource_id=event.resource_id or "",
        cool_until=_epoch(cool_until),
        week=tuple(day - timedelta(days=n) for n in range(6, -1, -1)),
        bounce_rate_limit=client.bounce_rate_limit,
        complaint_limit=client.complaint_limit,
        suppress_until=suppress_until,
    )


def records(event: SendEvent, outcome: FeedbackOutcome) -> Applied:
    """The outcome as records; `changed_at` and `cancelled_at` are the event's
    occurred_at, so that a replay writes the same bytes as the live run."""
    at = event.occurred_at
    cancellations = tuple(
        Cancellation(
            allocation_id=c.allocation_id,
            event_id=c.event_id,
            lead_id=event.lead_id,
            client_id=event.client_id,
            channel=c.channel,
            resource_id=c.resource_id,
            send_at=_utc(c.send_at),
            reason=event.kind,
            cancelled_at=at,
            feedback_event_id=event.event_id,
        )
        for c in outcome.cancelled
    )
    health = tuple(
        HealthChange(
            client_id=event.client_id,
            channel=h.channel,
            resource_id=h.resource_id,
            state=h.state,
            until=_utc(h.until) if h.until >= 0 else None,
            reason=h.reason,
            changed_at=at,
            feedback_event_id=event.event_id,
        )
        for h in outcome.health
    )
    return Applied(event, cancellations, health, outcome.refunded)


class FeedbackApplier:
    """Applies batches of validated send-events through the quota store."""

    def __init__(self, directory: ClientDirectory, quota: QuotaStore) -> None:
        self.directory = directory
        self.quota = quota

    async def apply(self, events: list[SendEvent]) -> list[Applied | InvalidRecord]:
        """Each event's records, or the InvalidRecord (code unknown_send) of one
        that names no send the allocator reserved (a dead letter)."""
        if not events:
            return []
        snapshot = await self.directory.snapshot()
        requests = [
            feedback_request(e, snapshot.get(e.client_id) or unknown_client(e.client_id))
            for e in events
        ]
        outcomes = await self.quota.feedback(requests)
        done: list[Applied | InvalidRecord] = []
        for event, outcome in zip(events, outcomes, strict=True):
            if outcome.error is not None:
                _, sentence = outcome.error
                field = sentence.split(":", 1)[0]
                done.append(
                    InvalidRecord(
                        ErrorCode.UNKNOWN_SEND, field, getattr(event, field, None), sentence
                    )
                )
            else:
                done.append(records(event, outcome))
        return done


async def lapsed_health(
    directory: ClientDirectory, quota: QuotaStore, now: datetime
) -> list[HealthChange]:
    """Every resource whose health became active again by `now` (a cooldown
    over, a pause lifted), claimed for this caller (QuotaStore.lapse): the
    records of `resource-health` that no send-event produces. Once they are
    published, forget_published_health(). `changed_at` is when it changed,
    not when it was seen."""
    changes: list[HealthChange] = []
    for client_id, setup in sorted((await directory.snapshot()).items()):
        named = [(r.channel, r.resource_id) for r in setup.resources]
        for h in await quota.lapse(client_id, named, int(now.timestamp())):
            changes.append(
                HealthChange(
                    client_id=client_id,
                    channel=h.channel,
                    resource_id=h.resource_id,
                    state="active",
                    until=None,
                    reason=h.reason,
                    changed_at=_utc(h.until),
                    feedback_event_id="",
                )
            )
    return changes


async def forget_published_health(quota: QuotaStore, changes: Sequence[HealthChange]) -> None:
    """Say that these changes from lapsed_health() are published, so that the
    store forgets them (until then a caller that died would have them taken again)."""
    by_client: dict[str, list[HealthSet]] = {}
    for change in changes:
        by_client.setdefault(change.client_id, []).append(
            HealthSet(
                change.channel.value,
                change.resource_id,
                change.state,
                int(change.changed_at.timestamp()),
                change.reason,
            )
        )
    for client_id, published in by_client.items():
        await quota.lapse_published(client_id, published)
