"""Redis quota store: one Lua call reserves a whole batch atomically and holds the answers.

Redis runs a script without interleaving any other command, so no number of
concurrent workers can push a counter past its limit, and the hot path makes
one round trip per batch instead of one call per resource per lead.

Redis Cluster: a script may only touch keys of one hash slot, and the
contract's key format has no hash tag, so a batch would span slots. The design
copes by running the quota store on one primary (with a replica for failover),
which is ample: Redis spends about 20 microseconds per reservation. The script
builds its keys from the prefix rather than receiving them in KEYS, which a
single primary allows; see README, "Redis Cluster", for the cluster variant.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from importlib.resources import files

import redis.exceptions
from redis.asyncio import Redis

from allocator.channels import Channel
from allocator.errors import ServiceUnavailable
from allocator.quota.base import Held, LeadRequest, Reservation, ResourceQuota, counter_key

_SCRIPT = files("allocator.quota").joinpath("reserve.lua").read_text()

# The latest any zone's local day ends is UTC-12's: 12 h after UTC midnight.
_LATEST_DAY_END = timedelta(days=1, hours=14)


class RedisQuotaStore:
    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str = "",
        retention_days: int = 3,
        requests_per_call: int = 250,
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self._retention = timedelta(days=retention_days)
        self._per_call = requests_per_call
        self._reserve = redis.register_script(_SCRIPT)

    @classmethod
    def from_url(cls, url: str, **options: int | str) -> RedisQuotaStore:
        client = Redis.from_url(url, decode_responses=True)
        return cls(client, **options)  # type: ignore[arg-type]

    def expires_at(self, day: date) -> int:
        """Unix time a counter of `day` may go: a few days after that day ends
        everywhere (and never before now plus the retention, for replays of old days)."""
        day_end = datetime.combine(day, datetime.min.time(), tzinfo=UTC) + _LATEST_DAY_END
        return int(max(day_end.timestamp(), time.time()) + self._retention.total_seconds())

    async def reserve(self, requests: Sequence[LeadRequest]) -> list[Held]:
        held: list[Held] = []
        async with redis_outages():
            for start in range(0, len(requests), self._per_call):
                held.extend(await self._reserve_chunk(requests[start : start + self._per_call]))
        return held

    async def _reserve_chunk(self, requests: Sequence[LeadRequest]) -> list[Held]:
        expiry_of: dict[date, int] = {}  # a batch names the same few days again and again
        items = []
        for request in requests:
            asks = []
            for ask in request.asks:
                expiries = tuple(
                    expiry_of.get(day) or expiry_of.setdefault(day, self.expires_at(day))
                    for day in ask.days
                )
                asks.append(_ask_json(ask.channel, ask.days, expiries, ask.resources))
            hold_until = expiry_of.get(request.hold_day) or self.expires_at(request.hold_day)
            items.append(
                f"[{json.dumps(request.hold_key)},{json.dumps(request.plan)},"
                f'"{hold_until}",[{",".join(asks)}]]'
            )
        batch = "[" + ",".join(items) + "]"
        raw = await self._reserve(keys=[], args=[self._prefix, batch])
        return [_held(value) for value in raw]

    async def usage(self, channel: Channel, resource_ids: Sequence[str], day: date) -> list[int]:
        if not resource_ids:
            return []
        keys = [counter_key(self._prefix, channel, rid, day) for rid in resource_ids]
        async with redis_outages():
            values = await self._redis.mget(keys)
        return [int(v) if v is not None else 0 for v in values]

    async def increment(self, channel: Channel, resource_id: str, day: date) -> int:
        key = counter_key(self._prefix, channel, resource_id, day)
        async with redis_outages(), self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expireat(key, self.expires_at(day))
            count, _ = await pipe.execute()
        return int(count)

    async def close(self) -> None:
        await self._redis.aclose()


# Failures that mean "Redis is not there right now"; anything else (a script
# error, a key of the wrong type) is a bug and is raised as it is.
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
    redis.exceptions.ReadOnlyError,
    ConnectionError,
    TimeoutError,
    OSError,
)


@asynccontextmanager
async def redis_outages() -> AsyncIterator[None]:
    """Raise ServiceUnavailable for a Redis failure that may pass."""
    try:
        yield
    except _UNAVAILABLE as exc:
        raise ServiceUnavailable("redis", exc) from exc


@lru_cache(maxsize=8192)
def _ask_json(
    channel: Channel,
    days: tuple[date, ...],
    expiries: tuple[int, ...],
    resources: tuple[ResourceQuota, ...],
) -> str:
    """An ask as the script reads it: the same for every lead of a client, channel and day."""
    return json.dumps(
        [
            channel.value,
            [day.isoformat() for day in days],
            [str(at) for at in expiries],  # strings: Lua numbers are doubles
            [r.resource_id for r in resources],
            [-1 if r.limit is None else r.limit for r in resources],
        ]
    )


def _held(value: str | bytes) -> Held:
    plan, picks = json.loads(value)
    # cjson encodes an empty list as {} (a lead with nothing to reserve)
    return Held(plan, tuple(_pick(p) for p in picks or ()))


def _pick(text: str) -> Reservation | None:
    if text == "-":
        return None
    step, resource_id = text.split(":", 1)
    return Reservation(int(step), resource_id)
