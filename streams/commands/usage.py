"""`allocator usage [--client C] [--day YYYY-MM-DD] [--json]`: per resource, what
the live quota counters hold (CONTRACT.md sections 8 and 12).

One row per resource in the database (of client C with --client), active or
paused, read from the counters the workers share (ALLOCATOR_REDIS_URL, under
ALLOCATOR_QUOTA_KEY_PREFIX), with its limits from the database as the worker
resolves them (allocator/directory.py, allocator/quota/rules.py). A table on
a terminal, or with --json a list of objects with these fields:

    client_id     the resource's client
    channel       its channel
    resource_id   its id
    day           the day shown, YYYY-MM-DD: --day, else today in the client's
                  own time zone (each client its own)
    count         the resource's counter on that day
    cap           the resource's cap on that day (its daily limit, lowered by
                  its warm-up); null: unlimited
    cap_source    where the cap comes from: "daily_limit" (the resource's own),
                  "default" (its type's default), "warmup" (its warm-up ramp
                  is below the daily limit that day) or "unlimited" (cap null)
    week          the rolling week: its counters of the day and the 6 days before
                  (the worker also counts sends booked for the 6 days after it:
                  every rolling week a send falls in must have room)
    weekly_limit  its limit over any 7 days; null: none
    pool          null when the resource counts in no pool, else
                  {pool_id, count, daily_limit, week, weekly_limit}: the pool's
                  counter on the day, its daily limit (null: none), its
                  rolling week (the day and the 6 before) and its weekly limit
                  (null: none)
    active        false: the resource is paused (the worker gives it no sends)
    health        from the dispatchers' feedback (CONTRACT.md section 10):
                  {state, until, reason}, state "active", "cooling" (no send
                  before `until`) or "paused" (auth_failed: until the
                  resource is loaded again with active: true); a cooling
                  whose until has passed reads active

A resource naming a pool its client does not have counts in no pool (as the
worker counts it), so its `pool` is null. A resource whose client is not in
the database is shown on that client's defaults (UTC), as the contract treats
an unknown client. `memory://` counters live inside one worker's process and
cannot be read from here: the command says so (exit status 2).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import groupby
from typing import Any

from allocator.config import Settings
from allocator.directory import resource_quota
from allocator.models import Client, Pool, Resource
from allocator.models.fields import zone
from allocator.quota import open_quota_store
from allocator.quota.base import QuotaStore, ResourceQuota, counter_key, pool_key
from allocator.quota.rules import day_cap
from allocator.running import run_to_end
from allocator.store.database import list_clients, list_pools, list_resources
from streams.commands.errors import REDIS_VARIABLE, USAGE, CommandError
from streams.commands.output import cell, console, print_json, table
from streams.commands.store import open_database

WEEK_DAYS = 7  # the rolling week: the day and the 6 days before it

_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def parse_day(text: str) -> date:
    """--day's value, exactly YYYY-MM-DD and a real day."""
    if _DAY.fullmatch(text):
        try:
            return date.fromisoformat(text)
        except ValueError as exc:
            raise CommandError(
                f"--day {text}: {exc}; give a real day as YYYY-MM-DD", USAGE
            ) from None
    raise CommandError(f"--day {text}: not a day; give it as YYYY-MM-DD, e.g. 2026-11-26", USAGE)


def today_of(client: Client, now: datetime | None = None) -> date:
    """The client's current local day."""
    return (now or datetime.now(zone("UTC"))).astimezone(zone(client.timezone)).date()


def _week(day: date) -> list[date]:
    """The day and the 6 days before it, oldest first."""
    return [day - timedelta(days=back) for back in range(WEEK_DAYS - 1, -1, -1)]


@dataclass
class _Keys:
    """The counter keys one client's rows read, each once, in one round trip."""

    keys: list[str]
    index: dict[str, int]

    def at(self, key: str) -> int:
        found = self.index.get(key)
        if found is None:
            found = self.index[key] = len(self.keys)
            self.keys.append(key)
        return found


def _cap_source(resource: Resource, cap: int | None, warm: bool) -> str:
    if warm:
        return "warmup"
    if cap is None:
        return "unlimited"
    return "daily_limit" if resource.daily_limit is not None else "default"


async def _client_rows(
    store: QuotaStore,
    client: Client,
    resources: list[Resource],
    pools: list[Pool],
    day: date,
) -> list[dict[str, Any]]:
    """The rows of one client's resources on `day`, its counters read in one call."""
    cid = client.client_id
    by_key = {(p.channel, p.pool_id): p for p in pools if p.client_id == cid}
    keys = _Keys([], {})
    planned: list[tuple[Resource, ResourceQuota, list[int], list[int]]] = []
    for resource in resources:
        quota = resource_quota(resource, by_key)
        own = [
            keys.at(counter_key("", resource.channel, resource.resource_id, d)) for d in _week(day)
        ]
        pooled: list[int] = []
        if quota.pool is not None:
            pooled = [
                keys.at(pool_key("", resource.channel, cid, quota.pool.pool_id, d))
                for d in _week(day)
            ]
        planned.append((resource, quota, own, pooled))
    counts = await store.read_counters(cid, keys.keys)
    healths = await store.health(cid, [(r.channel, r.resource_id) for r in resources])
    now = int(datetime.now(UTC).timestamp())
    rows = []
    for (resource, quota, own, pooled), (state, until, reason) in zip(
        planned, healths, strict=True
    ):
        if state == "cooling" and until <= now:
            state, until, reason = "active", -1, ""
        cap, warm = day_cap(quota, day)
        pool: dict[str, Any] | None = None
        if quota.pool is not None:
            pool = {
                "pool_id": quota.pool.pool_id,
                "count": counts[pooled[-1]],
                "daily_limit": quota.pool.limit,
                "week": sum(counts[i] for i in pooled),
                "weekly_limit": quota.pool.weekly,
            }
        rows.append(
            {
                "client_id": cid,
                "channel": resource.channel.value,
                "resource_id": resource.resource_id,
                "day": day.isoformat(),
                "count": counts[own[-1]],
                "cap": cap,
                "cap_source": _cap_source(resource, cap, warm),
                "week": sum(counts[i] for i in own),
                "weekly_limit": quota.weekly,
                "pool": pool,
                "active": resource.active,
                "health": {
                    "state": state,
                    "until": datetime.fromtimestamp(until, UTC).isoformat() if until >= 0 else None,
                    "reason": reason or None,
                },
            }
        )
    return rows


async def usage_rows(
    settings: Settings, client_id: str | None, day: date | None, now: datetime | None = None
) -> list[dict[str, Any]]:
    """The rows, in the database's order (client, channel, resource_id)."""
    async with open_database(settings.database_url) as db, db.session() as session:
        clients = {c.client_id: c for c in await list_clients(session)}
        resources = await list_resources(session, client_id)
        pools = await list_pools(session, client_id)
    if not resources:
        return []
    store = open_quota_store(
        settings.redis_url, settings.quota_key_prefix, settings.quota_retention_days
    )
    try:
        rows: list[dict[str, Any]] = []
        for cid, mine in groupby(resources, key=lambda r: r.client_id):
            client = clients.get(cid) or Client(client_id=cid)
            on = day or today_of(client, now)
            rows += await _client_rows(store, client, list(mine), pools, on)
        return rows
    finally:
        await store.close()


def show(settings: Settings, client_id: str | None, day_text: str | None, as_json: bool) -> int:
    day = parse_day(day_text) if day_text is not None else None
    if settings.redis_url.startswith("memory://"):
        raise CommandError(
            f"{REDIS_VARIABLE}={settings.redis_url}: those counters live inside the one "
            "worker's process and cannot be read from here; set it to the Redis the workers use",
            USAGE,
        )
    rows = run_to_end(usage_rows(settings, client_id, day))
    if as_json:
        print_json(rows)
        return 0
    whose = f" of client {client_id!r}" if client_id is not None else ""
    when = f"on {day.isoformat()}" if day is not None else "today in each client's time zone"
    out = console()
    out.print(f"{len(rows)} resource(s){whose}, {when}", markup=False, highlight=False)
    if not rows:
        return 0
    shown = table(
        "client_id",
        "channel",
        "resource_id",
        "day",
        "count",
        "cap",
        "week",
        "pool",
        "pool day",
        "pool week",
        "active",
        "health",
    )
    for row in rows:
        pool = row["pool"]
        shown.add_row(
            cell(row["client_id"]),
            cell(row["channel"]),
            cell(row["resource_id"]),
            cell(row["day"]),
            cell(row["count"]),
            cell(_cap(row["cap"], row["cap_source"])),
            cell(_of(row["week"], row["weekly_limit"])),
            cell(None if pool is None else pool["pool_id"]),
            cell(None if pool is None else _of(pool["count"], pool["daily_limit"])),
            cell(None if pool is None else _of(pool["week"], pool["weekly_limit"])),
            cell("yes" if row["active"] else "no (paused)"),
            cell(_health(row["health"])),
        )
    out.print(shown)
    return 0


def _health(health: dict[str, Any]) -> str:
    """`active`, `cooling until 2026-11-27T10:00:00+00:00 (throttled)`, `paused (auth_failed)`."""
    state = str(health["state"])
    if health["until"]:
        state += f" until {health['until']}"
    if health["reason"]:
        state += f" ({health['reason']})"
    return state


def _cap(cap: int | None, source: str) -> str:
    """`12 (warm-up)`, `50 (default)`, `30`, `unlimited`."""
    if cap is None:
        return "unlimited"
    return {"warmup": f"{cap} (warm-up)", "default": f"{cap} (default)"}.get(source, str(cap))


def _of(count: int, limit: int | None) -> str:
    """`34 / 200`, or `34` without a limit."""
    return str(count) if limit is None else f"{count} / {limit}"
