"""Tables. Timestamps are stored as fixed-width UTC text so that they sort and
compare the same on PostgreSQL and SQLite (SQLite has no zone-aware type)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Dialect,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    TypeDecorator,
)


class UtcTimestamp(TypeDecorator[datetime]):
    impl = String(32)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        assert isinstance(value, datetime) and value.tzinfo is not None
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


metadata = MetaData()

# Text columns are unbounded: the contract bounds no id's length, and a longer
# id than a VARCHAR(n) allows would fail on PostgreSQL only, forever.

clients = Table(
    "clients",
    metadata,
    Column("client_id", String(), primary_key=True),
    Column("timezone", String(), nullable=False, server_default="UTC"),
    Column("max_defer_days", Integer, nullable=False, server_default="3"),
    # Round 2 (CONTRACT.md section 8); added to a round-1 table by ROUND_2_COLUMNS.
    Column("rotation", String(), nullable=False, server_default="least_used"),
    Column("lead_daily_limit", Integer, nullable=True),
    Column("recipient_domain_daily_limit", Integer, nullable=True),
    # CONTRACT.md section 9, as their JSON (the models say what each holds)
    Column("send_windows", JSON, nullable=True),
    Column("holidays", String(), nullable=True),
    Column("blackout_dates", JSON, nullable=True),
    Column("pacing", JSON, nullable=True),
    # CONTRACT.md section 10
    Column("bounce_rate_limit", Float, nullable=True),
    Column("complaint_limit", Integer, nullable=True),
    Column("cooldown_hours", Integer, nullable=True),
    Column("suppression_days", Integer, nullable=True),
    Column("sticky_days", Integer, nullable=True),
    Column("sticky", String(), nullable=True),
)

resources = Table(
    "resources",
    metadata,
    Column("client_id", String(), primary_key=True),
    Column("channel", String(), primary_key=True),
    Column("resource_id", String(), primary_key=True),
    Column("daily_limit", Integer, nullable=True),
    Column("active", Boolean, nullable=False, server_default="1"),
    Column("weekly_limit", Integer, nullable=True),
    Column("warmup", JSON, nullable=True),  # {"start", "initial", "step", "every_days"}
    Column("pool_id", String(), nullable=True),
)

pools = Table(
    "pools",
    metadata,
    Column("client_id", String(), primary_key=True),
    Column("channel", String(), primary_key=True),
    Column("pool_id", String(), primary_key=True),
    Column("daily_limit", Integer, nullable=True),
    Column("weekly_limit", Integer, nullable=True),
)

# Columns a database made by round 1 lacks: `Database.create_schema` adds them
# (create_all makes missing tables, never missing columns).
ROUND_2_COLUMNS: dict[str, tuple[str, ...]] = {
    "clients": (
        "rotation",
        "lead_daily_limit",
        "recipient_domain_daily_limit",
        "send_windows",
        "holidays",
        "blackout_dates",
        "pacing",
        "bounce_rate_limit",
        "complaint_limit",
        "cooldown_hours",
        "suppression_days",
        "sticky_days",
        "sticky",
    ),
    "resources": ("weekly_limit", "warmup", "pool_id"),
}

# pattern_slot is 'how' or 'when:<channel>': one latest pattern per slot and client.
conversion_patterns = Table(
    "conversion_patterns",
    metadata,
    Column("client_id", String(), primary_key=True),
    Column("pattern_type", String(), nullable=False),
    Column("pattern_slot", String(), primary_key=True),
    Column("channel", String(), nullable=True),
    Column("optimal_day", Integer, nullable=True),
    Column("optimal_hour", Integer, nullable=True),
    Column("winning_sequence", JSON, nullable=True),
    Column("confidence", Float, nullable=False),
    Column("updated_at", UtcTimestamp, nullable=False),
)

# Owned by the upstream scoring system; created here only when absent.
leads = Table(
    "leads",
    metadata,
    Column("lead_id", String(), primary_key=True),
    Column("client_id", String(), nullable=False),
    Column("als_score", Integer, nullable=False),
    Column("scored_at", UtcTimestamp, nullable=False),
    Column("timezone", String(), nullable=True),
)
