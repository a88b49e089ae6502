"""Feedback from the send dispatchers (CONTRACT.md section 10): the
`send-events` input and the `lead-cancellations` and `resource-health` outputs."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict

from allocator.channels import Channel
from allocator.errors import ErrorCode, InvalidRecord, shown
from allocator.models.fields import ChannelField, Instant, Text, Timestamp, fail

SEND_KINDS = ("sent", "failed", "bounced", "complained", "throttled", "auth_failed")
STOP_KINDS = ("replied", "meeting_booked", "unsubscribed")
KINDS = SEND_KINDS + STOP_KINDS
Kind = Literal[
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


def _kind(value: Any) -> Any:
    if value not in KINDS:
        fail(ErrorCode.UNKNOWN_KIND, f"must be one of {', '.join(KINDS)}, got {shown(value)}")
    return value


class SendEvent(BaseModel):
    """What became of a send (or of the lead): one record on `send-events`."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    event_id: Text
    kind: Annotated[Kind, BeforeValidator(_kind)]
    client_id: Text
    lead_id: Text
    allocation_id: Text | None = None
    channel: ChannelField | None = None
    resource_id: Text | None = None
    occurred_at: Timestamp
    retry_after: Timestamp | None = None  # read for `throttled` only; ignored on other kinds

    @property
    def stops(self) -> bool:
        return self.kind in STOP_KINDS


def check_kind_fields(event: SendEvent) -> SendEvent:
    """The fields a kind requires (CONTRACT.md section 10); InvalidRecord names one missing."""
    if event.kind in SEND_KINDS:
        for name in ("allocation_id", "channel", "resource_id"):
            if getattr(event, name) is None:
                raise InvalidRecord(
                    ErrorCode.MISSING_FIELD, name, None, f"{name}: required for kind {event.kind!r}"
                )
    return event


class Cancellation(BaseModel):
    """A send the allocator had handed out that must not go: the lead stopped."""

    model_config = ConfigDict(frozen=True)

    allocation_id: str
    event_id: str  # the scored-lead event the allocation answered
    lead_id: str
    client_id: str
    channel: Channel
    resource_id: str
    send_at: Instant
    reason: str  # the stop's kind: replied, meeting_booked, unsubscribed
    cancelled_at: Instant
    feedback_event_id: str  # the send-event that stopped the lead


HealthState = Literal["active", "cooling", "paused"]


class HealthChange(BaseModel):
    """A resource's health changed (`resource-health`)."""

    model_config = ConfigDict(frozen=True)

    client_id: str
    channel: Channel
    resource_id: str
    state: HealthState
    until: Instant | None
    reason: str
    changed_at: Instant
    feedback_event_id: str  # the send-event that changed it; "" for a lapse or a resume
