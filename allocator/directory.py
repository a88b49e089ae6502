"""Who a client is and what it may send with, read through a cache.

The hot path asks the directory for a client's setup per lead; the directory
reloads the whole table at most once per `ttl` seconds, so a change in the
database is seen within `ttl` and no lead waits on a query of its own.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache

from allocator.calendars import OPEN, Calendar
from allocator.channels import DEFAULT_DAILY_LIMIT, Channel, ResourceType
from allocator.models import Client, Pool, Resource
from allocator.quota.base import PoolQuota, Ramp, ResourceQuota
from allocator.timing import DEFAULT_WINDOWS, Window

log = logging.getLogger(__name__)
_RETRY_SECONDS = 5.0


@dataclass(frozen=True)
class ClientSetup:
    client: Client
    # Active resources only, per channel, sorted by resource_id, limits resolved.
    quotas: dict[Channel, tuple[ResourceQuota, ...]] = field(default_factory=dict)
    resources: tuple[Resource, ...] = ()
    known: bool = True
    pools: tuple[Pool, ...] = ()
    calendar: Calendar = OPEN
    windows: dict[Channel, Window | None] = field(default_factory=lambda: dict(DEFAULT_WINDOWS))

    def quotas_for(self, channel: Channel) -> tuple[ResourceQuota, ...]:
        return self.quotas.get(channel, ())

    def window(self, channel: Channel) -> Window | None:
        return self.windows.get(channel)

    def gap(self, channel: Channel) -> int | None:
        """Pacing of the channel in seconds, None when not paced."""
        pacing = self.client.pacing.get(channel)
        return pacing.gap_seconds if pacing is not None else None


def send_windows(client: Client) -> dict[Channel, Window | None]:
    """The client's window per channel: its own, else the default (sms and voice
    08:00-21:00 every day); a channel it sets to null has none."""
    windows: dict[Channel, Window | None] = dict(DEFAULT_WINDOWS)
    for channel, window in client.send_windows.items():
        windows[channel] = (
            None if window is None else Window(frozenset(window.days), window.start, window.end)
        )
    return windows


def calendar_of(client: Client) -> Calendar:
    if client.holidays is None and not client.blackout_dates:
        return OPEN
    return Calendar(client.holidays, frozenset(client.blackout_dates))


def daily_limit(resource: Resource) -> int | None:
    """The resource's own limit, else its type's default (None: unlimited)."""
    if resource.daily_limit is not None:
        return resource.daily_limit
    return DEFAULT_DAILY_LIMIT[resource.resource_type]


def resource_quota(resource: Resource, pools: dict[tuple[Channel, str], Pool]) -> ResourceQuota:
    """The resource's limits as the quota counts them. A pool the resource names
    and the client does not have counts as no pool (the loaders refuse such a
    line; a pool deleted behind them must not stop the resource)."""
    ramp = None
    if resource.warmup is not None:
        w = resource.warmup
        ramp = Ramp(w.start, w.initial, w.step, w.every_days)
    pool = None
    if resource.pool_id is not None:
        found = pools.get((resource.channel, resource.pool_id))
        if found is not None:
            pool = PoolQuota(found.pool_id, found.daily_limit, found.weekly_limit)
        else:
            log.warning(
                "resource %s/%s names pool %r, which client %s does not have: no pool counted",
                resource.channel.value,
                resource.resource_id,
                resource.pool_id,
                resource.client_id,
            )
    return ResourceQuota(
        resource.resource_id, daily_limit(resource), resource.weekly_limit, ramp, pool
    )


def build_setup(
    client: Client, resources: Iterable[Resource], pools: Iterable[Pool] = ()
) -> ClientSetup:
    mine = tuple(r for r in resources if r.client_id == client.client_id)
    my_pools = tuple(p for p in pools if p.client_id == client.client_id)
    by_key = {(p.channel, p.pool_id): p for p in my_pools}
    quotas: dict[Channel, list[ResourceQuota]] = {}
    for resource in mine:
        if resource.active:
            quotas.setdefault(resource.channel, []).append(resource_quota(resource, by_key))
    ordered = {ch: tuple(sorted(qs, key=lambda q: q.resource_id)) for ch, qs in quotas.items()}
    return ClientSetup(
        client,
        ordered,
        mine,
        pools=my_pools,
        calendar=calendar_of(client),
        windows=send_windows(client),
    )


@lru_cache(maxsize=1024)
def unknown_client(client_id: str) -> ClientSetup:
    """A client missing from the database: UTC, no resources (contract section 5).

    One setup per client id, not one per lead: building it is a pydantic
    validation, and plans are shared by setup identity (decision.plan_lead).
    """
    return ClientSetup(Client(client_id=client_id), known=False)


def build_snapshot(
    clients: Iterable[Client], resources: Iterable[Resource], pools: Iterable[Pool] = ()
) -> Snapshot:
    by_client: dict[str, list[Resource]] = {}
    for resource in resources:
        by_client.setdefault(resource.client_id, []).append(resource)
    pools_of: dict[str, list[Pool]] = {}
    for pool in pools:
        pools_of.setdefault(pool.client_id, []).append(pool)
    return {
        c.client_id: build_setup(c, by_client.get(c.client_id, ()), pools_of.get(c.client_id, ()))
        for c in clients
    }


Snapshot = dict[str, ClientSetup]


class ClientDirectory:
    """Client setups from `load`, refreshed at most every `ttl` seconds (None: never)."""

    def __init__(
        self,
        load: Callable[[], Awaitable[Snapshot]],
        ttl: float | None = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load = load
        self._ttl = ttl
        self._clock = clock
        self._snapshot: Snapshot | None = None
        self._loaded_at = 0.0
        self._lock = asyncio.Lock()

    @classmethod
    def fixed(cls, snapshot: Snapshot) -> ClientDirectory:
        async def load() -> Snapshot:
            return snapshot

        return cls(load, ttl=None)

    async def snapshot(self) -> Snapshot:
        if self._fresh():
            assert self._snapshot is not None
            return self._snapshot
        async with self._lock:  # one reload at a time; the others wait for it
            if not self._fresh():
                await self._reload()
        assert self._snapshot is not None
        return self._snapshot

    async def _reload(self) -> None:
        try:
            self._snapshot = await self._load()
        except Exception as exc:
            if self._snapshot is None:
                raise  # nothing to fall back on: the caller retries
            # A database outage must not stop allocation: serve the last good
            # snapshot and try again within a few seconds.
            log.warning("reloading clients and resources failed (%s); keeping the last ones", exc)
            retry_in = min(self._ttl or 0.0, _RETRY_SECONDS)
            self._loaded_at = self._clock() - (self._ttl or 0.0) + retry_in
            return
        self._loaded_at = self._clock()

    def _fresh(self) -> bool:
        if self._snapshot is None:
            return False
        return self._ttl is None or self._clock() - self._loaded_at < self._ttl

    async def setup_for(self, client_id: str) -> ClientSetup:
        snapshot = await self.snapshot()
        return snapshot.get(client_id) or unknown_client(client_id)

    async def owner_of(
        self, resource_type: ResourceType, resource_id: str
    ) -> tuple[ClientSetup, Resource]:
        """The client owning that resource; LookupError when none does."""
        for setup in (await self.snapshot()).values():
            for resource in setup.resources:
                if resource.resource_type == resource_type and resource.resource_id == resource_id:
                    return setup, resource
        raise LookupError(f"no resource {resource_type.value}/{resource_id} in the database")
