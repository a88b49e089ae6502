"""`allocator clients list`, `allocator resources list [--client C]` and
`allocator pools list [--client C]`: what the database holds, as the worker
will read it."""

from __future__ import annotations

from typing import Any

from allocator.directory import daily_limit
from allocator.models import Client, Pool, Resource
from allocator.running import run_to_end
from allocator.store.database import list_clients, list_pools, list_resources
from streams.commands.output import cell, console, print_json, table
from streams.commands.store import open_database


async def _clients(database_url: str) -> list[Client]:
    async with open_database(database_url) as db, db.session() as session:
        return await list_clients(session)


async def _resources(database_url: str, client_id: str | None) -> list[Resource]:
    async with open_database(database_url) as db, db.session() as session:
        return await list_resources(session, client_id)


async def _pools(database_url: str, client_id: str | None) -> list[Pool]:
    async with open_database(database_url) as db, db.session() as session:
        return await list_pools(session, client_id)


def _or_none(value: object) -> str:
    return "-" if value is None else str(value)


def show_clients(database_url: str, as_json: bool) -> int:
    clients = run_to_end(_clients(database_url))
    if as_json:
        print_json([client.model_dump(mode="json") for client in clients])
        return 0
    out = console()
    out.print(f"{len(clients)} client(s)", markup=False, highlight=False)
    if clients:
        shown = table(
            "client_id",
            "timezone",
            "max_defer_days",
            "rotation",
            "lead/day",
            "domain/day",
        )
        for client in clients:
            shown.add_row(
                cell(client.client_id),
                cell(client.timezone),
                cell(client.max_defer_days),
                cell(client.rotation),
                cell(_or_none(client.lead_daily_limit)),
                cell(_or_none(client.recipient_domain_daily_limit)),
            )
        out.print(shown)
    return 0


def show_pools(database_url: str, client_id: str | None, as_json: bool) -> int:
    pools = run_to_end(_pools(database_url, client_id))
    if as_json:
        print_json([pool.model_dump(mode="json") for pool in pools])
        return 0
    whose = f" of client {client_id!r}" if client_id is not None else ""
    out = console()
    out.print(f"{len(pools)} pool(s){whose}", markup=False, highlight=False)
    if pools:
        shown = table("client_id", "channel", "pool_id", "daily limit", "weekly limit")
        for pool in pools:
            shown.add_row(
                cell(pool.client_id),
                cell(pool.channel.value),
                cell(pool.pool_id),
                cell(_or_none(pool.daily_limit)),
                cell(_or_none(pool.weekly_limit)),
            )
        out.print(shown)
    return 0


def resource_row(resource: Resource) -> dict[str, Any]:
    """A resource as listed: its own fields and the daily limit the worker applies."""
    return {
        "client_id": resource.client_id,
        "channel": resource.channel.value,
        "resource_type": resource.resource_type.value,
        "resource_id": resource.resource_id,
        "daily_limit": resource.daily_limit,  # None: the type's default
        "effective_daily_limit": daily_limit(resource),  # None: unlimited
        "active": resource.active,
        "weekly_limit": resource.weekly_limit,
        "warmup": resource.warmup.model_dump(mode="json") if resource.warmup else None,
        "pool_id": resource.pool_id,
    }


def _limit(row: dict[str, Any]) -> str:
    effective = row["effective_daily_limit"]
    if effective is None:
        return "unlimited"
    return str(effective) if row["daily_limit"] is not None else f"{effective} (default)"


def show_resources(database_url: str, client_id: str | None, as_json: bool) -> int:
    rows = [resource_row(r) for r in run_to_end(_resources(database_url, client_id))]
    if as_json:
        print_json(rows)
        return 0
    whose = f" of client {client_id!r}" if client_id is not None else ""
    out = console()
    out.print(f"{len(rows)} resource(s){whose}", markup=False, highlight=False)
    if not rows:
        return 0
    shown = table(
        "client_id",
        "channel",
        "resource_type",
        "resource_id",
        "daily limit",
        "weekly",
        "warm-up",
        "pool",
        "active",
    )
    for row in rows:
        shown.add_row(
            cell(row["client_id"]),
            cell(row["channel"]),
            cell(row["resource_type"]),
            cell(row["resource_id"]),
            cell(_limit(row)),
            cell(_or_none(row["weekly_limit"])),
            cell(_ramp(row["warmup"])),
            cell(_or_none(row["pool_id"])),
            cell("yes" if row["active"] else "no (paused)"),
        )
    out.print(shown)
    return 0


def _ramp(warmup: dict[str, Any] | None) -> str:
    """`from 2026-11-02: 5 +2 every 1 day(s)`."""
    if warmup is None:
        return "-"
    return (
        f"from {warmup['start']}: {warmup['initial']} +{warmup['step']} "
        f"every {warmup['every_days']} day(s)"
    )
