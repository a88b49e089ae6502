"""Redis quota store: Lua calls reserve a whole batch atomically and hold the answers.

Redis runs a script without interleaving any other command, so no number of
concurrent workers can push a counter past its limit, and the hot path makes
one round trip per batch instead of one call per resource per lead.

One Redis or a Redis Cluster, chosen by the URL (`redis://` or
`redis+cluster://`, see `RedisTarget`). On a cluster a script may only touch
keys of one hash slot, so every key of a client carries the client's hash tag
(keys.py) and a batch is split into one script call per slot (the clients
whose tags share it); the calls go out in one pipeline, which the cluster
client sends as one round trip per primary, all primaries at once. On one
Redis the batch is split into calls of ramped sizes (small first and last,
up to `requests_per_call` between: 31, 93, 345 and 31 for 500 leads),
streamed on one connection: each sent as soon as it is encoded, each answer
read as it comes (`_stream`). Either way the script receives every key it
touches in KEYS, and each call is atomic.

The script reads hold keys and counters with MGET, which answers nil for a
key of another type: such a key (none of ours is one) counts as absent and
is overwritten, where a GET would fail.

Optionally (`wait_replicas`) each round trip ends with WAIT, so that no
answer is handed back before a replica has it: Redis replicates
asynchronously, and a failover otherwise loses what the primary acknowledged
and had not yet sent on (README, "Redis Cluster").
"""

from __future__ import annotations

import json
import logging
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from importlib.resources import files
from json.encoder import encode_basestring_ascii
from operator import attrgetter
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit, urlunsplit

import orjson
import redis.exceptions
from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import AbstractConnection
from redis.backoff import NoBackoff
from redis.crc import key_slot
from redis.retry import Retry

from allocator.channels import Channel
from allocator.errors import ServiceUnavailable
from allocator.quota.base import (
    LAPSE_LEASE_SECONDS,
    LAPSING,
    NO_HEALTH,
    Blocked,
    Cancelled,
    ChannelAsk,
    FeedbackOutcome,
    FeedbackRequest,
    HealthSet,
    Held,
    LeadRequest,
    PoolQuota,
    Reservation,
    feedback_key,
    health_key,
    health_stat_key,
    held_name,
    sends_key,
    suppressed_key,
)
from allocator.quota.base import key_part as escape
from allocator.quota.feedback import SEND_KINDS, unknown_send
from allocator.quota.keys import KeyLayout
from allocator.quota.rules import day_cap, weeks_around

log = logging.getLogger(__name__)

R = TypeVar("R", LeadRequest, FeedbackRequest)
T = TypeVar("T")

_SCRIPT = files("allocator.quota").joinpath("reserve.lua").read_text()
_FEEDBACK = files("allocator.quota").joinpath("feedback.lua").read_text()
# A pause lifted (quota/feedback.py resumed): active from ARGV[1], waiting for
# _LAPSE to say so. KEYS: health keys.
_RESUME = """
local n = 0
for _, key in ipairs(KEYS) do
  local found = redis.call('GET', key)
  if found and cjson.decode(found)[1] == 'paused' then
    redis.call('SET', key, cjson.encode({'active', tonumber(ARGV[1]), 'resumed'}))
    n = n + 1
  end
end
return n
"""
# Health back to active (quota/feedback.py lapsed), atomically: each change is
# claimed by one caller. The key becomes ["lapsing", at, reason, lease till]
# until the claimer says it published the change (_LAPSED); a claim whose
# lease ran out (its worker died before publishing) is taken again, so a
# change is published twice at worst, never lost. The lease is counted in the
# callers' clocks (`now`), which the workers' NTP keeps within seconds. Every
# script here reads "lapsing" as active: it is neither cooling nor paused,
# and _RESUME lifts only "paused". KEYS: health keys.
_LAPSE = """
local back = {}
local now = tonumber(ARGV[1])
local lease_till = now + tonumber(ARGV[2])
for i, key in ipairs(KEYS) do
  local found = redis.call('GET', key)
  if found then
    local h = cjson.decode(found)
    local at, reason = nil, nil
    if h[1] == 'cooling' and h[2] <= now then
      at, reason = h[2], 'cooldown over'
    elseif h[1] == 'active' then
      at, reason = h[2], 'loaded again with active: true'
    elseif h[1] == 'lapsing' and h[4] <= now then
      at, reason = h[2], h[3]
    end
    if at then
      redis.call('SET', key, cjson.encode({'lapsing', at, reason, lease_till}), 'KEEPTTL')
      back[#back + 1] = {i, at, reason}
    end
  end
end
return back
"""
# The claimed lapses that were published: forgotten, unless the key changed
# since (a new cooling or pause stays).
_LAPSED = """
local n = 0
for i, key in ipairs(KEYS) do
  local found = redis.call('GET', key)
  if found then
    local h = cjson.decode(found)
    if h[1] == 'lapsing' and h[2] == tonumber(ARGV[i]) then
      redis.call('DEL', key)
      n = n + 1
    end
  end
end
return n
"""

# The latest any zone's local day ends is UTC-12's: 12 h after UTC midnight.
_LATEST_DAY_END = timedelta(days=1, hours=14)

# URL schemes of a Redis Cluster, and the scheme redis-py reads for each.
_CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
# Query parameters the allocator reads itself; redis-py would refuse them.
_WAIT_REPLICAS = "wait_replicas"
_WAIT_TIMEOUT_MS = "wait_timeout_ms"


@dataclass(frozen=True)
class RedisTarget:
    """What ALLOCATOR_REDIS_URL names, read once.

    `redis://host:port/db` (or `rediss://`) is one Redis; `redis+cluster://host:port`
    (or `rediss+cluster://`) is a Redis Cluster, found from that one node (the
    client learns the others and follows failovers). Either may end with
    `?wait_replicas=N&wait_timeout_ms=T`: after each reservation round trip,
    WAIT until N replicas have it, for at most T ms (default 100), and report
    Redis unavailable if fewer did. Other query parameters go to redis-py.
    """

    url: str  # what redis-py reads: redis:// or rediss://, without the allocator's parameters
    cluster: bool
    wait_replicas: int = 0
    wait_timeout_ms: int = 100

    @classmethod
    def parse(cls, url: str) -> RedisTarget:
        parts = urlsplit(url)
        cluster = parts.scheme in _CLUSTER_SCHEMES
        scheme = _CLUSTER_SCHEMES.get(parts.scheme, parts.scheme)
        own: dict[str, str] = {}
        rest: list[str] = []  # the other parameters exactly as written (redis-py unquotes them)
        for piece in parts.query.split("&") if parts.query else ():
            name, _, value = piece.partition("=")
            if unquote(name) in (_WAIT_REPLICAS, _WAIT_TIMEOUT_MS):
                own[unquote(name)] = unquote(value)
            else:
                rest.append(piece)
        try:
            replicas = int(own.get(_WAIT_REPLICAS, "0"))
            timeout = int(own.get(_WAIT_TIMEOUT_MS, "100"))
        except ValueError as exc:
            raise ValueError(
                f"Redis URL: {_WAIT_REPLICAS} and {_WAIT_TIMEOUT_MS} are whole numbers"
            ) from exc
        if replicas < 0 or timeout <= 0:
            # WAIT's timeout 0 means "forever": a dead replica would hang the worker.
            raise ValueError(f"Redis URL: {_WAIT_REPLICAS} >= 0 and {_WAIT_TIMEOUT_MS} > 0")
        plain = urlunsplit((scheme, parts.netloc, parts.path, "&".join(rest), parts.fragment))
        return cls(plain, cluster, replicas, timeout)


def _declarer(declared: dict[str, int]) -> Callable[[str], int]:
    """The KEYS of one script call, each declared once, in `declared` (key ->
    its 1-based index; its keys in order are KEYS): a key's index, declaring it
    on first use. (The hot loop of _call writes the same setdefault inline.)"""

    def at(key: str) -> int:
        return declared.setdefault(key, len(declared) + 1)

    return at


@dataclass
class _Call:
    """One script call: the positions in the batch of its leads, its KEYS, its
    batch JSON, the ARGV after the flag (reserve.lua: the leads' plans) and,
    for reserve.lua, a last ARGV of the leads' whole numbers (_numbers; None
    for feedback.lua, which takes none)."""

    positions: list[int]
    keys: list[str]
    batch: str
    more: list[str] = field(default_factory=list)
    numbers: bytes | None = None
    packed: bytes = b""  # the command as sent to one Redis, once made

    def _text(self, sha: str, flag: str) -> list[str]:
        return ["EVALSHA", sha, str(len(self.keys)), *self.keys, self.batch, flag, *self.more]

    def args(self, sha: str, flag: str) -> list[str | bytes]:
        args: list[str | bytes] = [*self._text(sha, flag)]
        if self.numbers is not None:
            args.append(self.numbers)
        return args

    def pack(self, sha: str, flag: str) -> bytes:
        """args() as Redis reads it (RESP)."""
        return _pack(self._text(sha, flag), self.numbers)


@dataclass
class _Shape:
    """A shape as encoded for one call, and the KEYS it names in the order
    it declared them: another call of the batch that declares them at the
    same places can send the same text (an ask's shape costs ~100 us to
    encode; a batch of 500 leads makes five calls)."""

    text: str
    names: list[str]  # the keys it declared, in order; [] when some were declared before it
    base: int  # how many keys the call had declared before it
    around: list[tuple[str, str, str, str]]

    @classmethod
    def encode(
        cls,
        store: RedisQuotaStore,
        client: str,
        ask: ChannelAsk,
        declared: dict[str, int],
        expiry: Callable[[date], int],
    ) -> _Shape:
        base = len(declared)
        fresh = True

        def at(key: str) -> int:
            nonlocal fresh
            index = declared.setdefault(key, len(declared) + 1)
            fresh = fresh and index > base
            return index

        text = store._ask_json(client, ask, at, expiry)
        names = list(declared)[base:] if fresh else []
        keys = store.keys
        around = [
            (*keys.cap_around(client, "lead", d), *keys.cap_around(client, "domain", d))
            for d in ask.days
        ]
        return cls(text, names, base, around)

    def declare(self, declared: dict[str, int]) -> bool:
        """Declare its keys in `declared` as it did; whether they got the same places."""
        if not self.names or len(declared) != self.base:
            return False
        for name in self.names:
            declared.setdefault(name, len(declared) + 1)
        return len(declared) == self.base + len(self.names)


class _Calls:
    """The script calls of a batch, each made when first asked for: on one
    Redis each call goes out as soon as it is made, so that Redis runs it
    while the next is made (both take about as long)."""

    def __init__(self, make: Callable[[list[int]], _Call], chunks: list[list[int]]) -> None:
        self._make = make
        self._chunks = chunks
        self._made: list[_Call] = []

    def __len__(self) -> int:
        return len(self._chunks)

    def __getitem__(self, index: int) -> _Call:
        while len(self._made) <= index:
            self._made.append(self._make(self._chunks[len(self._made)]))
        return self._made[index]

    def __iter__(self) -> Iterator[_Call]:
        return (self[index] for index in range(len(self)))


# What an ask's shape is made of: every field of ChannelAsk but its resources
# (keyed by identity, _call) and the lead's and the domain's caps (the lead's own).
_shape_fields = attrgetter(
    *(f.name for f in fields(ChannelAsk) if f.name not in ("resources", "lead", "domain"))
)


# Requests in one script call at most, by default: a batch of more is split
# (on one Redis in ramped sizes, _ramped; on a cluster per slot, _chunks;
# send-events for feedback.lua too). A call blocks Redis while it runs, 5-15
# ms at this size with every check (Redis's own 13.7-37.3 us a lead, round 2's
# counters to the worker's requests, in bench/results/quota-2026-11-28*.txt),
# and reads and writes the batch's shared counters once.
REQUESTS_PER_CALL = 400


class RedisQuotaStore:
    def __init__(
        self,
        redis: Redis | RedisCluster,
        *,
        prefix: str = "",
        retention_days: int = 3,
        requests_per_call: int = REQUESTS_PER_CALL,
        wait_replicas: int = 0,
        wait_timeout_ms: int = 100,
    ) -> None:
        self._redis = redis
        self._cluster = isinstance(redis, RedisCluster)
        self.keys = KeyLayout(prefix, self._cluster)
        self._retention = timedelta(days=retention_days)
        self._per_call = requests_per_call
        self._wait = (wait_replicas, wait_timeout_ms)
        self._sha = redis.register_script(_SCRIPT).sha
        self._feedback_sha = redis.register_script(_FEEDBACK).sha
        self._slots: dict[str, int] = {}  # client_id -> slot of its tag
        # (channel, resource_id) -> the first client seen with it, to warn
        # once when a cluster gives one physical sender two counters.
        self._owner: dict[tuple[Channel, str], str] = {}

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str = "",
        retention_days: int = 3,
        requests_per_call: int = REQUESTS_PER_CALL,
    ) -> RedisQuotaStore:
        target = RedisTarget.parse(url)
        client: Redis | RedisCluster
        if target.cluster and target.wait_replicas:
            # WAIT counts the replicas that have the writes of its own
            # connection, so it must follow the calls on their node's
            # connection. redis-py's own retry of a cluster pipeline (after a
            # connection error or CLUSTERDOWN) sends the WAITs again without
            # their target node, to its default node, whose answer says nothing
            # of our writes. So this client does not retry: its caller does
            # (ServiceUnavailable), with a pipeline built anew on the new slot map.
            no_retry = Retry(NoBackoff(), 0)
            client = RedisCluster.from_url(target.url, decode_responses=True, retry=no_retry)
        elif target.cluster:
            client = RedisCluster.from_url(target.url, decode_responses=True)
        else:
            client = Redis.from_url(target.url, decode_responses=True)
        return cls(
            client,
            prefix=prefix,
            retention_days=retention_days,
            requests_per_call=requests_per_call,
            wait_replicas=target.wait_replicas,
            wait_timeout_ms=target.wait_timeout_ms,
        )

    @property
    def cluster(self) -> bool:
        return self._cluster

    def expires_at(self, day: date) -> int:
        """Unix time a counter of `day` may go: a few days after that day ends
        everywhere (and never before now plus the retention, for replays of old days)."""
        day_end = datetime.combine(day, datetime.min.time(), tzinfo=UTC) + _LATEST_DAY_END
        return int(max(day_end.timestamp(), time.time()) + self._retention.total_seconds())

    async def reserve(self, requests: Sequence[LeadRequest]) -> list[Held]:
        # The calls of one batch share their shapes' encodings (_call).
        made: dict[tuple[Any, ...], _Shape] = {}
        return await self._answers(
            requests, lambda batch, positions: self._call(batch, positions, made), _helds
        )

    async def _execute(
        self, calls: _Calls, split: Callable[[Any], list[T]], feedback: bool = False
    ) -> list[list[T]]:
        try:
            async with redis_outages():
                return await self._run(calls, split, feedback)
        except ServiceUnavailable as exc:
            if isinstance(self._redis, RedisCluster) and not isinstance(exc.cause, NotReplicated):
                # A node gone or a slot moved: learn the slot map again on the
                # next call (redis-py does not, for a pipeline it did not retry).
                with suppress(redis.exceptions.RedisError, OSError):
                    await self._redis.aclose()
            raise

    async def feedback(self, requests: Sequence[FeedbackRequest]) -> list[FeedbackOutcome]:
        """Apply send-events (feedback.lua), one script call per slot group as reserve does."""
        answers = await self._answers(requests, self._feedback_call, _strings, feedback=True)
        return [_outcome(r, value) for r, value in zip(requests, answers, strict=True)]

    async def _answers(
        self,
        requests: Sequence[R],
        call: Callable[[Sequence[R], list[int]], _Call],
        split: Callable[[Any], list[T]],
        feedback: bool = False,
    ) -> list[T]:
        """Each request's answer, in order: the batch split into script calls
        (per slot group on a cluster, in one pipeline; in ramped sizes on one
        Redis, streamed); `split` makes a call's reply one answer per request."""
        if not requests:
            return []
        # One Redis streams the calls (_stream), so ramp their sizes; a
        # cluster's pipeline sends them all at once.
        split_up = _chunks if self._cluster else _ramped
        chunks = [
            chunk for group in self._groups(requests) for chunk in split_up(group, self._per_call)
        ]
        calls = _Calls(lambda chunk: call(requests, chunk), chunks)
        replies = await self._execute(calls, split, feedback)
        if len(chunks) == 1:
            return replies[0]  # the positions in order
        answers: dict[int, T] = {}  # by position in `requests`: each is in exactly one call
        for made, values in zip(calls, replies, strict=True):
            for position, value in zip(made.positions, values, strict=True):
                answers[position] = value
        return [answers[position] for position in range(len(requests))]

    def _feedback_call(self, requests: Sequence[FeedbackRequest], positions: list[int]) -> _Call:
        declared: dict[str, int] = {}
        at = _declarer(declared)
        items = []
        for position in positions:
            r = requests[position]
            client = r.client_id
            named = self.keys.named
            channel = r.channel.value if r.channel is not None else ""
            stats: Any = 0
            if r.channel is not None and r.kind in ("sent", "bounced", "complained"):
                stats = [
                    [
                        at(named(client, health_stat_key(client, channel, r.resource_id, kind, d)))
                        for d in r.week
                    ]
                    for kind in ("sent", "bounced", "complained")
                ]
            items.append(
                [
                    at(named(client, feedback_key(r.hold_key))),
                    r.hold_until,
                    r.kind,
                    r.occurred,
                    r.occurred_day.isoformat(),
                    at(named(client, sends_key(client, r.lead_id))),
                    # Only the send kinds name a send (CONTRACT.md section 10); a stop
                    # that carries an allocation is about the whole lead.
                    f"{r.allocation_id}|{channel}" if r.kind in SEND_KINDS else "",
                    r.resource_id,
                    channel,
                    at(named(client, health_key(client, channel, r.resource_id)))
                    if r.channel is not None
                    else 0,
                    at(named(client, suppressed_key(client, r.lead_id))),
                    r.cool_until,
                    stats,
                    r.bounce_rate_limit,
                    r.complaint_limit,
                    r.suppress_until,
                    self.expires_at(r.occurred_day + timedelta(days=8)),
                    str(r.bounce_rate_limit),  # as Python writes it, for the reason
                ]
            )
        return _Call(positions, list(declared), json.dumps(items))

    async def health(
        self, client_id: str, resources: Sequence[tuple[Channel, str]]
    ) -> list[tuple[str, int, str]]:
        if not resources:
            return []
        named = [self.keys.named(client_id, health_key(client_id, c, r)) for c, r in resources]
        async with redis_outages():
            values = await self._redis.mget(named)
        found = []
        for value in values:
            if value is None:
                found.append(NO_HEALTH)
                continue
            state, until, why, *_ = json.loads(value)
            if state == LAPSING:  # claimed, not yet published: active as if forgotten
                found.append(NO_HEALTH)
            else:
                found.append((state, int(until), why))
        return found

    async def resume(
        self, client_id: str, resources: Sequence[tuple[Channel, str]], at: int
    ) -> int:
        keys = [self.keys.named(client_id, health_key(client_id, c, r)) for c, r in resources]
        if not keys:
            return 0
        async with redis_outages():
            return int(await self._redis.eval(_RESUME, len(keys), *keys, at))

    async def lapse(
        self,
        client_id: str,
        resources: Sequence[tuple[Channel, str]],
        now: int,
        lease: int = LAPSE_LEASE_SECONDS,
    ) -> list[HealthSet]:
        keys = [self.keys.named(client_id, health_key(client_id, c, r)) for c, r in resources]
        if not keys:
            return []
        async with redis_outages():
            found = await self._redis.eval(_LAPSE, len(keys), *keys, now, lease)
        back = []
        for index, at, reason in found:
            channel, rid = resources[int(index) - 1]
            back.append(HealthSet(channel.value, rid, "active", int(at), str(reason)))
        return back

    async def lapse_published(self, client_id: str, published: Sequence[HealthSet]) -> None:
        if not published:
            return
        keys = [
            self.keys.named(client_id, health_key(client_id, Channel(h.channel), h.resource_id))
            for h in published
        ]
        async with redis_outages():
            await self._redis.eval(_LAPSED, len(keys), *keys, *[h.until for h in published])

    def _groups(self, requests: Sequence[R]) -> list[list[int]]:
        """Positions of the leads that may share a script call: all of them on
        one Redis; on a cluster, those whose clients' tags hash to the same slot."""
        if not self._cluster:
            return [list(range(len(requests)))]
        by_slot: dict[int, list[int]] = {}
        for position, request in enumerate(requests):
            by_slot.setdefault(self._slot(request.client_id), []).append(position)
        return list(by_slot.values())

    def _slot(self, client_id: str) -> int:
        slot = self._slots.get(client_id)
        if slot is None:
            slot = self._slots[client_id] = key_slot(self.keys.client_prefix(client_id).encode())
        return slot

    def _call(
        self,
        requests: Sequence[LeadRequest],
        positions: list[int],
        made: dict[tuple[Any, ...], _Shape],
    ) -> _Call:
        # This runs for every lead: a few microseconds here are as many as
        # Redis spends on the lead, so the hot path avoids calls it can.
        declared: dict[str, int] = {}  # KEYS, each once: key -> its 1-based index

        keys = self.keys
        expiry_of: dict[date, int] = {}  # a batch names the same few days again and again

        def expiry(day: date) -> int:
            found = expiry_of.get(day)
            if found is None:
                found = expiry_of[day] = self.expires_at(day)
            return found

        # What the asks of a client share (all but the lead's and the domain's
        # caps) is encoded once per call as a shape (reserve.lua); each lead
        # names its shape. The key holds the resources by identity: the
        # request's tuples live as long as this call, so no id is reused, and
        # a client's leads share one tuple (its directory's), which hashes
        # in no time where hashing it by value would cost more than the rest.
        shapes: list[str] = []
        # per shape: its place (1-based), and per day of it what comes before
        # and after the escaped name in a lead's and in a domain's counter key
        shape_of: dict[tuple[Any, ...], tuple[int, list[tuple[str, str, str, str]]]] = {}
        until_of: dict[date, int] = {}  # the refs of hold expiries
        plan_of: dict[str, str] = {}
        refs: dict[int | str, int] = {}  # values the leads name by their place, 1-based
        infos: list[str] = []
        leads: list[int] = []  # reserve.lua's flat list
        add, more = leads.append, leads.extend
        plans = []  # as JSON: the script writes each into its held answer as it is
        # per client, what comes before the escaped lead id in the keys of a
        # lead's index of sends and of its suppression
        lead_heads: dict[str, tuple[str, str]] = {}
        for position in positions:
            request = requests[position]
            client = request.client_id
            info = 0
            if request.lead_id:
                heads = lead_heads.get(client)
                if heads is None:
                    heads = lead_heads[client] = (
                        keys.named(client, sends_key(client, "")),
                        keys.named(client, suppressed_key(client, "")),
                    )
                escaped = escape(request.lead_id)
                index = declared.setdefault(heads[0] + escaped, len(declared) + 1)
                stop = declared.setdefault(heads[1] + escaped, len(declared) + 1)
                # The index outlives the held answer: feedback may name a
                # send for weeks, and a sticky sender looks back sticky_days.
                till = expiry(request.hold_day + _index_days(request))
                # (json.dumps of the list, written out: this runs per lead)
                infos.append(
                    f"[{index},{stop},{encode_basestring_ascii(request.allocation_id)},"
                    f"{encode_basestring_ascii(request.event_id)},{request.scored_at},{till}]"
                )
                info = len(infos)
            until = until_of.get(request.hold_day)
            if until is None:
                # in milliseconds: SET ... PXAT is SET ... EXAT without its
                # rewrite for replication, which cost Redis an allocation per lead
                text = f"{expiry(request.hold_day)}000"
                until = until_of[request.hold_day] = refs.setdefault(text, len(refs) + 1)
            plan = plan_of.get(request.plan)
            if plan is None:
                # ASCII (json's escapes): its length in characters is its length in bytes
                plan = plan_of[request.plan] = encode_basestring_ascii(request.plan)
            plans.append(plan)
            more(
                (
                    declared.setdefault(keys.held(client, held_name(request)), len(declared) + 1),
                    until,
                    len(plan),
                    info,
                    len(request.asks),
                )
            )
            for ask in request.asks:
                shared = (client, id(ask.resources), _shape_fields(ask))
                found = shape_of.get(shared)
                if found is None:
                    known = made.get(shared)
                    if known is None or not known.declare(declared):
                        known = made[shared] = _Shape.encode(self, client, ask, declared, expiry)
                    shapes.append(known.text)
                    found = shape_of[shared] = (len(shapes), known.around)
                shape, around = found
                lead, domain = ask.lead, ask.domain
                if lead is None and domain is None:
                    more((shape, 0, 0))
                    continue
                more(
                    (
                        shape,
                        0 if lead is None else refs.setdefault(lead.limit, len(refs) + 1),
                        0 if domain is None else refs.setdefault(domain.limit, len(refs) + 1),
                    )
                )
                lead_name = "" if lead is None else escape(lead.name)
                domain_name = "" if domain is None else escape(domain.name)
                for lead_head, lead_tail, domain_head, domain_tail in around:
                    if lead is not None:
                        key = lead_head + lead_name + lead_tail
                        add(declared.setdefault(key, len(declared) + 1))
                    if domain is not None:
                        key = domain_head + domain_name + domain_tail
                        add(declared.setdefault(key, len(declared) + 1))
        batch = f"[[{','.join(shapes)}],{_dumps(list(refs))},[{','.join(infos)}]]"
        return _Call(positions, list(declared), batch, ["".join(plans)], _numbers(leads))

    def _ask_json(
        self,
        client_id: str,
        ask: ChannelAsk,
        at: Callable[[str], int],
        expiry: Callable[[date], int],
    ) -> str:
        """An ask's shape as the script reads it (reserve.lua): per candidate
        day the counter key indexes and the caps of that day (rules.day_cap),
        computed here so that the script only counts and compares. The lead's
        and the domain's caps are the lead's own (_call)."""
        if self._cluster:
            self._note_owners(client_id, ask)
        keys = self.keys
        channel = ask.channel
        resources = ask.resources
        ids = [r.resource_id for r in resources]
        weekly = any(r.weekly is not None for r in resources)
        pooled = any(r.pool is not None for r in resources)
        days = []
        for step, day in enumerate(ask.days):
            caps = [day_cap(r, day) for r in resources]
            entry: list[Any] = [
                [at(keys.counter(client_id, channel, i, day)) for i in ids],
                [-1 if cap is None else cap for cap, _ in caps],
                f"{expiry(day)}000",  # in ms (PEXPIREAT); a string: Lua numbers are doubles
                [1 if warm else 0 for _, warm in caps] if any(w for _, w in caps) else 0,
                0,
                0,
                -1 if ask.paced is None else ask.paced[step],
                ask.at[step] if ask.at else 0,
                day.isoformat(),
                0
                if ask.paced is None
                else [at(keys.pace(client_id, channel, i, day)) for i in ids],
            ]
            if weekly:
                around = weeks_around(day)
                entry[4] = [
                    0
                    if r.weekly is None
                    else [r.weekly, [at(keys.counter(client_id, channel, i, d)) for d in around]]
                    for r, i in zip(resources, ids, strict=True)
                ]
            if pooled:
                entry[5] = [self._pool_json(client_id, channel, r.pool, day, at) for r in resources]
            days.append(entry)
        extra: Any = 0
        if ask.at:
            extra = [
                channel.value,
                ask.gap,
                ask.jitter,
                ask.sticky_days,
                1 if ask.sticky_require else 0,
                [at(keys.named(client_id, health_key(client_id, channel, i))) for i in ids],
            ]
        # The ids also as the inside of a JSON string, for the picks the script writes.
        escaped = [encode_basestring_ascii(i)[1:-1] for i in ids]
        return _dumps([days, ids, 1 if ask.rotation == "least_loaded" else 0, extra, escaped])

    def _pool_json(
        self,
        client_id: str,
        channel: Channel,
        pool: PoolQuota | None,
        day: date,
        at: Callable[[str], int],
    ) -> Any:
        if pool is None:
            return 0
        week: Any = 0
        if pool.weekly is not None:
            around = weeks_around(day)
            week = [at(self.keys.pool(client_id, channel, pool.pool_id, d)) for d in around]
        return [
            at(self.keys.pool(client_id, channel, pool.pool_id, day)),
            -1 if pool.limit is None else pool.limit,
            -1 if pool.weekly is None else pool.weekly,
            week,
        ]

    def _note_owners(self, client_id: str, ask: ChannelAsk) -> None:
        """On a cluster each client counts its own use of a resource id: two
        clients listing one physical sender each get its full limit. Say so once."""
        for resource in ask.resources:
            key = (ask.channel, resource.resource_id)
            first = self._owner.setdefault(key, client_id)
            if first != client_id and first != "":
                log.warning(
                    "resource %s %r is listed by clients %r and %r: on Redis Cluster each "
                    "client counts it separately, so together they may exceed its daily limit",
                    ask.channel.value,
                    resource.resource_id,
                    first,
                    client_id,
                )
                self._owner[key] = ""  # warned: once per resource

    async def _run(
        self, calls: _Calls, split: Callable[[Any], list[T]], feedback: bool = False
    ) -> list[list[T]]:
        """The calls' answers, split, in one pipeline (loading the script where it is missing)."""
        sha, script = (self._feedback_sha, _FEEDBACK) if feedback else (self._sha, _SCRIPT)
        for _ in range(3):
            if isinstance(self._redis, RedisCluster):
                results = await self._pipeline(self._redis, calls, sha)
                results[: len(calls)] = [
                    r if isinstance(r, Exception) else split(r) for r in results[: len(calls)]
                ]
            else:
                results = await self._stream(self._redis, calls, sha, split)
            if not any(isinstance(r, redis.exceptions.NoScriptError) for r in results):
                break
            # A fresh server, or a replica promoted since the script was loaded:
            # load it (on every primary of a cluster) and run the calls again,
            # which is safe because every lead is held by the attempt that decided it.
            await self._redis.script_load(script)
        else:
            raise ServiceUnavailable("redis", RuntimeError("the script keeps going missing"))
        for result in results:
            if isinstance(result, Exception):
                raise result
        answers, acks = results[: len(calls)], results[len(calls) :]
        wanted, timeout = self._wait
        if any(int(ack) < wanted for ack in acks):
            raise ServiceUnavailable(
                "redis",
                NotReplicated(f"fewer than {wanted} replica(s) acknowledged within {timeout} ms"),
            )
        return answers

    async def _pipeline(self, cluster: RedisCluster, calls: _Calls, sha: str) -> list[Any]:
        """A cluster: the calls in one pipeline, which the cluster client sends
        as one round trip per primary, all primaries at once."""
        wanted, timeout = self._wait
        rewrite_found = "1" if wanted else "0"
        await cluster.initialize()  # the slot map, before asking it for nodes
        cluster_pipe = cluster.pipeline()
        nodes: dict[str, ClusterNode] = {}
        for call in calls:
            # redis-py refuses pipe.evalsha on a cluster (it cannot know the
            # keys are in one slot); the raw command routes by its KEYS.
            cluster_pipe.execute_command(*call.args(sha, rewrite_found))
            node = cluster.get_node_from_key(call.keys[0])
            if node is None:  # only ever None when asked for a replica
                raise redis.exceptions.SlotNotCoveredError(call.keys[0])
            nodes[node.name] = node
        if wanted:
            # One WAIT per primary, after its calls: the cluster pipeline
            # sends a node's commands on one connection, in order, and WAIT
            # waits for that connection's writes.
            for node in nodes.values():
                cluster_pipe.execute_command("WAIT", wanted, timeout, target_nodes=node)
        return await cluster_pipe.execute(raise_on_error=False)

    async def _stream(
        self, client: Redis, calls: _Calls, sha: str, split: Callable[[Any], list[T]]
    ) -> list[Any]:
        """One Redis: the calls on one connection, in order (Redis runs a
        connection's commands in the order sent, so the leads are reserved in
        input order), each sent as soon as it is made and each reply split as
        soon as it is read, so that the client's work overlaps Redis's; then,
        with wait_replicas, WAIT. Each call's answers, or its error; WAIT's count.
        Retried as redis-py retries a pipeline (every lead is held by the
        attempt that decided it, so sending a call again changes nothing)."""
        wanted, timeout = self._wait
        flag = "1" if wanted else "0"
        pool = client.connection_pool
        get: Callable[[], Awaitable[AbstractConnection]] = pool.get_connection  # untyped there
        conn = await get()

        async def attempt() -> list[Any]:
            for index in range(len(calls)):
                call = calls[index]
                if not call.packed:
                    call.packed = call.pack(sha, flag)
                await conn.send_packed_command(call.packed, check_health=index == 0)
            if wanted:
                await conn.send_packed_command(_pack(["WAIT", str(wanted), str(timeout)]))
            results: list[Any] = []
            for _ in range(len(calls)):
                try:
                    results.append(split(await conn.read_response()))
                except redis.exceptions.ResponseError as exc:
                    results.append(exc)
            if wanted:
                results.append(await conn.read_response())
            return results

        async def failed(_: Exception) -> None:
            await conn.disconnect()

        try:
            results: list[Any] = await conn.retry.call_with_retry(attempt, failed)
            return results
        except BaseException:
            # Replies may be left unread (an error, a cancellation): this
            # connection's next reader would take them for its own.
            await conn.disconnect()
            raise
        finally:
            await pool.release(conn)

    async def usage(
        self, channel: Channel, resource_ids: Sequence[str], day: date, *, client_id: str = ""
    ) -> list[int]:
        """The counters; on a cluster, `client_id`'s (each client's keys carry its tag)."""
        if not resource_ids:
            return []
        keys = [self.keys.counter(client_id, channel, rid, day) for rid in resource_ids]
        async with redis_outages():
            values = await self._redis.mget(keys)
        return [int(v) if v is not None else 0 for v in values]

    async def read_counters(self, client_id: str, keys: Sequence[str]) -> list[int]:
        """Counters of one client by their keys without a prefix (base.py's
        counter_key, pool_key, cap_key with prefix ""); 0 where none is."""
        if not keys:
            return []
        head = self.keys.client_prefix(client_id)
        async with redis_outages():
            values = await self._redis.mget([head + key for key in keys])
        return [int(v) if v is not None else 0 for v in values]

    async def increment(
        self, channel: Channel, resource_id: str, day: date, *, client_id: str = ""
    ) -> int:
        key = self.keys.counter(client_id, channel, resource_id, day)
        async with redis_outages(), self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expireat(key, self.expires_at(day))
            count, _ = await pipe.execute()
        return int(count)

    async def close(self) -> None:
        await self._redis.aclose()


class NotReplicated(Exception):
    """WAIT came back with fewer replicas than asked for."""


# How long after its last send day a lead's index of sends is kept: as long as
# a send-event's outcome is held (allocator/feedback.py), or the sticky window.
INDEX_DAYS = 45


_INDEX_DAYS = timedelta(days=INDEX_DAYS)


def _index_days(request: LeadRequest) -> timedelta:
    longest = 0
    for ask in request.asks:  # (a loop: max() over a list made per lead cost twice as much)
        if ask.sticky_days > longest:
            longest = ask.sticky_days
    return _INDEX_DAYS if longest <= INDEX_DAYS else timedelta(days=longest)


def _pack(args: list[str], last: bytes | None = None) -> bytes:
    """A command as Redis reads it (RESP): what redis-py's pack_command makes,
    in one join instead of a join per argument (a call has a few per lead);
    `last`, when given, is one more argument, as it is."""
    count = len(args) if last is None else len(args) + 1
    tail = b"" if last is None else b"$%d\r\n%b\r\n" % (len(last), last)
    body = "".join([f"${len(arg)}\r\n{arg}\r\n" for arg in args])
    if body.isascii():  # then each length in characters is its length in bytes
        return f"*{count}\r\n{body}".encode() + tail
    parts = [f"*{count}\r\n".encode()]
    for arg in args:
        data = arg.encode()
        parts += (b"$%d\r\n" % len(data), data, b"\r\n")
    return b"".join(parts) + tail


def _numbers(values: list[int]) -> bytes:
    """Whole numbers as reserve.lua reads them (struct.unpack, 4 bytes each,
    little-endian): cjson read them as text in four times the time."""
    return struct.pack(f"<{len(values)}i", *values)


def _chunks(positions: list[int], size: int) -> list[list[int]]:
    return [positions[start : start + size] for start in range(0, len(positions), size)]


def _ramped(positions: list[int], size: int) -> list[list[int]]:
    """`positions` in calls of at most `size`, in order; when they need more
    than one, the first two are a sixteenth and three sixteenths of them (at
    most an eighth and three eighths of `size`): Redis starts on the first
    while the client makes the next, and the client keeps ahead, as it makes
    a call in about a third of the time Redis runs it; the last is as small
    as the first (little is left to read once Redis is done). Measured on 500
    leads a batch: 32-96-250-90-32 ran ~15% faster than 250-250 (day
    counters only); 31-93-345-31 (REQUESTS_PER_CALL 400) then took 8% fewer
    of Redis's instructions than 31-93-250-95-31 with round 2's counters, as
    each call reads and writes the batch's shared counters again."""
    if len(positions) <= size:
        return [positions]
    small = min(len(positions) // 16, size // 8)
    if small == 0:  # fewer than 16 leads, or calls of fewer than 8: nothing to ramp
        return _chunks(positions, size)
    head = [positions[:small], positions[small : 4 * small]]
    body = positions[4 * small : len(positions) - small]
    return [*head, *_chunks(body, size), positions[len(positions) - small :]]


# Failures that mean "Redis is not there right now"; anything else (a script
# error, an answer that does not read) is a bug and is raised as it is.
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
    redis.exceptions.ReadOnlyError,
    # A cluster between a primary's death and its replica's promotion: slots
    # not served (CLUSTERDOWN, MASTERDOWN), a slot map that has none for a
    # slot, resharding (TRYAGAIN), redirections exhausted (ClusterError).
    redis.exceptions.ClusterError,
    redis.exceptions.TryAgainError,
    redis.exceptions.SlotNotCoveredError,
    ConnectionError,
    TimeoutError,
    OSError,
)


def _unavailable(exc: BaseException) -> bool:
    # The cluster client raises a bare RedisClusterException for everything
    # from "no node answers" to "this command cannot run on a cluster": an
    # outage only when an outage caused it.
    if isinstance(exc, redis.exceptions.AuthenticationError | redis.exceptions.AuthorizationError):
        return False  # a wrong password does not pass by waiting (a ConnectionError in redis-py)
    if isinstance(exc, _UNAVAILABLE):
        return True
    cause = exc.__cause__
    return (
        type(exc) is redis.exceptions.RedisClusterException
        and cause is not None
        and (_unavailable(cause))
    )


@asynccontextmanager
async def redis_outages() -> AsyncIterator[None]:
    """Raise ServiceUnavailable for a Redis failure that may pass."""
    try:
        yield
    except Exception as exc:
        if _unavailable(exc):
            raise ServiceUnavailable("redis", exc) from exc
        raise


def _outcome(request: FeedbackRequest, value: str | bytes) -> FeedbackOutcome:
    answer = json.loads(value)
    if answer and answer[0] == "!":
        return FeedbackOutcome(
            error=unknown_send(request, answer[2] if answer[1] == "other" else None)
        )
    refunded, cancelled, health = answer
    return FeedbackOutcome(
        refunded=int(refunded),
        cancelled=tuple(
            Cancelled(a, e, ch, rid, int(at)) for a, e, ch, rid, at in (cancelled or ())
        ),
        health=tuple(
            HealthSet(ch, rid, state, int(until), why)
            for ch, rid, state, until, why in (health or ())
        ),
    )


def _dumps(value: Any) -> str:
    """reserve.lua's call as JSON, by orjson: ~15 times json.dumps on a call's
    list of numbers, when the leads' numbers were JSON too. cjson reads orjson's compact
    UTF-8 text as it read json's ASCII escapes. Every number of a call is an
    int (orjson would write a float's NaN as null, json as NaN). What orjson
    refuses (an integer past 64 bits, a string with a lone surrogate) goes to
    json, as before. (feedback.lua's calls keep json: a few per send-event,
    and they carry a float.)"""
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:
        return json.dumps(value)


def _loads(text: str | bytes) -> Any:
    """reserve.lua's answers, by orjson: ~3 times json.loads on a call's
    answers, which a worker read for every lead (5% of its time). Their
    numbers are Lua's, written with %d (orjson would read one past 64 bits as
    a float, json as an int). What orjson refuses (a lone surrogate's escape,
    in a plan) goes to json, as before."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def _helds(reply: str) -> list[Held]:
    """reserve.lua's reply: the held answers as one JSON list (one string to
    read and decode instead of one per lead), read as each reply comes in
    (_stream), while Redis runs the next call."""
    return [_read_held(answer) for answer in _loads(reply)]


def _strings(reply: list[str]) -> list[str]:
    return reply


def _held(value: str | bytes) -> Held:
    """A held answer as stored."""
    return _read_held(_loads(value))


def _read_held(answer: list[Any]) -> Held:
    if len(answer) == 5 and answer[3]:
        # As reserve.lua writes them now, [plan, picks, blocked, ks, suppressed]
        # with a k per pick: read in one pass (this runs for every lead).
        plan, picks, blocked, ks, suppressed = answer
        chosen: list[Reservation | None] = []
        for pick, k in zip(picks, ks, strict=True):
            if pick == "-":
                chosen.append(None)
            else:
                step, resource_id = _step_and_resource(pick)
                chosen.append(Reservation(step, resource_id, int(k)))
        # (most leads have one ask, not blocked: no Blocked to look up)
        whys = _NOT_BLOCKED if blocked == _ONE_EMPTY else tuple([_blocked(b) for b in blocked])
        return Held(plan, tuple(chosen), whys, suppressed)
    # [plan, picks] held before round 2; [plan, picks, blocked, ks, suppressed] since.
    plan, picks, *rest = answer
    # cjson encodes an empty list as {} (a lead with nothing to reserve)
    blocked = tuple(_blocked(b) for b in (rest[0] or ())) if rest else ()
    ks = list(rest[1] or ()) if len(rest) > 1 else []
    chosen = [_pick(p) for p in picks or ()]
    if ks:
        chosen = [
            Reservation(p.step, p.resource_id, int(k)) if p is not None else None
            for p, k in zip(chosen, ks, strict=True)
        ]
    suppressed = rest[2] if len(rest) > 2 else ""
    return Held(plan, tuple(chosen), blocked, suppressed)


_ONE_EMPTY = [""]
_NOT_BLOCKED: tuple[Blocked | None, ...] = (None,)


@lru_cache(maxsize=4096)  # a pick names a step and one of a client's resources
def _step_and_resource(pick: str) -> tuple[int, str]:
    step, _, resource_id = pick.partition(":")
    return int(step), resource_id


@lru_cache(maxsize=4096)  # a handful of reasons and counts; a Blocked never changes
def _blocked(text: str) -> Blocked | None:
    if not text:
        return None
    why, resources, of = text.split(":")
    return Blocked(why, int(resources), int(of))


def _pick(text: str) -> Reservation | None:
    if text == "-":
        return None
    step, resource_id = _step_and_resource(text)
    return Reservation(step, resource_id)
