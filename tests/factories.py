"""Small builders for test records (plain data, no services)."""

from __future__ import annotations

from datetime import date
from typing import Any

from allocator.channels import Channel
from allocator.models import Client, HowPattern, Resource, ScoredLead, WhenPattern
from allocator.quota import ChannelAsk, LeadRequest, ResourceQuota


def lead(score: int = 90, scored_at: str = "2026-11-26T12:00:00+00:00", **extra: Any) -> ScoredLead:
    data: dict[str, Any] = {
        "lead_id": "lead-1",
        "client_id": "acme",
        "als_score": score,
        "scored_at": scored_at,
    }
    data.update(extra)
    return ScoredLead.model_validate(data)


def client(client_id: str = "acme", timezone: str = "UTC", max_defer_days: int = 3) -> Client:
    return Client(client_id=client_id, timezone=timezone, max_defer_days=max_defer_days)


def resource(
    channel: str,
    resource_id: str,
    client_id: str = "acme",
    limit: int | None = None,
    active: bool = True,
) -> Resource:
    return Resource.model_validate(
        {
            "client_id": client_id,
            "channel": channel,
            "resource_id": resource_id,
            "daily_limit": limit,
            "active": active,
        }
    )


def when(
    channel: str,
    day: int,
    hour: int,
    confidence: float = 0.9,
    updated_at: str = "2026-01-01T00:00:00Z",
    client_id: str = "acme",
) -> WhenPattern:
    return WhenPattern.model_validate(
        {
            "client_id": client_id,
            "pattern_type": "when",
            "channel": channel,
            "optimal_day": day,
            "optimal_hour": hour,
            "confidence": confidence,
            "updated_at": updated_at,
        }
    )


def how(
    sequence: list[str],
    confidence: float = 0.9,
    updated_at: str = "2026-01-01T00:00:00Z",
    client_id: str = "acme",
) -> HowPattern:
    return HowPattern.model_validate(
        {
            "client_id": client_id,
            "pattern_type": "how",
            "winning_sequence": sequence,
            "confidence": confidence,
            "updated_at": updated_at,
        }
    )


def ask(
    hold_key: str,
    channel: Channel,
    days: tuple[date, ...],
    resources: tuple[ResourceQuota, ...],
    plan: str = "plan",
) -> LeadRequest:
    """A lead that asks for one send of one channel."""
    return LeadRequest(hold_key, plan, (ChannelAsk(channel, days, resources),), max(days))
