"""The quota port: reserve a lead's sends on the least-used resources with room,
atomically, and hold the answer so that a redelivered event gets it again."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import Protocol

from allocator.channels import Channel
from allocator.frozen import fast_init
from allocator.models.records import Rotation, derived_id


@dataclass(frozen=True)
class Ramp:
    """A warm-up (CONTRACT.md section 8): the cap on day D is 0 before `start`,
    else initial + step * floor((D - start) / every_days)."""

    start: date
    initial: int
    step: int
    every_days: int = 1

    def cap_on(self, day: date) -> int:
        if day < self.start:
            return 0
        return self.initial + self.step * ((day - self.start).days // self.every_days)


@dataclass(frozen=True)
class PoolQuota:
    """The pool a resource also draws from: its id and its day and week limits."""

    pool_id: str
    limit: int | None = None
    weekly: int | None = None


@dataclass(frozen=True, order=True)
class ResourceQuota:
    """A resource as the quota sees it: its id, its daily limit (None:
    unlimited) and, from round 2, its rolling-week limit, warm-up and pool."""

    resource_id: str
    limit: int | None
    weekly: int | None = None
    warmup: Ramp | None = None
    pool: PoolQuota | None = None


@fast_init
@dataclass(frozen=True, slots=True)
class Cap:
    """A limit on one named counter of the lead's client per day: the lead's own
    sends (`name` = lead_id) or its recipient domain's (`name` = the domain)."""

    name: str
    limit: int


@fast_init
@dataclass(frozen=True, slots=True)
class ChannelAsk:
    """Reserve one send of `channel`.

    `days` are the candidate quota days in order (the send day, then each
    deferral); `resources` are the client's active resources for the channel,
    sorted by resource_id so that ties go to the smallest id.
    """

    channel: Channel
    days: tuple[date, ...]
    resources: tuple[ResourceQuota, ...]
    rotation: Rotation = "least_used"
    lead: Cap | None = None  # the client's lead_daily_limit
    domain: Cap | None = None  # the client's recipient_domain_daily_limit (email)
    # Pacing (CONTRACT.md section 9): per day, how many sends of one resource
    # fit before the day's window ends; None: not paced.
    paced: tuple[int, ...] | None = None
    # Round 2, section 10: per day the slot's instant (Unix seconds), which a
    # cooling resource must not be used before, and how a send is recorded
    # in the lead's index: at slot + k * gap + jitter.
    at: tuple[int, ...] = ()
    gap: int = 0
    jitter: int = 0
    # Sticky sender: the resource the lead last had on this channel within
    # this many days takes the send (`require`: or the day is blocked).
    sticky_days: int = 0
    sticky_require: bool = False


@fast_init
@dataclass(frozen=True, slots=True)
class LeadRequest:
    """Everything one lead asks of the quota, held under `hold_key`.

    `hold_key` names the event within its client (two clients may reuse an
    event id); empty, it is derived from `client_id` and `event_id` by the
    store that needs a name (`held_name`), so that a store which keeps
    answers in memory need not hash one per lead. `plan` is the lead's
    encoded plan, stored beside the answers and handed back unchanged on a
    redelivery, so that the allocation is rebuilt from what was decided then,
    not from today's setup and patterns.
    `hold_day` is the latest quota day of the plan: the held answer lives as
    long as that day's counters. `client_id` is the lead's client: on Redis
    Cluster its keys carry the client's hash tag, so that one script call can
    reach all of them (redis_store.py); the other stores ignore it. It comes
    last, with a default, so that a request built without it still reads the same.
    """

    hold_key: str
    plan: str
    asks: tuple[ChannelAsk, ...]
    hold_day: date
    client_id: str = ""
    # Round 2, section 10: the lead's index of reserved sends (refunds, stops,
    # sticky sender) and its suppression. Without a lead_id (benchmarks and
    # the quota's own tests) neither is read nor written.
    lead_id: str = ""
    allocation_id: str = ""
    event_id: str = ""
    scored_at: int = 0  # Unix seconds


@fast_init
@dataclass(frozen=True, slots=True)
class Reservation:
    """One ask's outcome: the deferral step taken (0 = the first day), the
    resource, and `k`, the sends of that resource on that day before this one
    (pacing spaces sends by it)."""

    step: int
    resource_id: str
    k: int = 0


@fast_init
@dataclass(frozen=True, slots=True)
class Blocked:
    """Why an ask found no room on its first day: a reason code (allocator.reasons)
    and how many of its resources that reason blocked (0 for a lead or domain cap)."""

    why: str
    resources: int
    of: int = 0  # the ask's resources


@fast_init
@dataclass(frozen=True, slots=True)
class Held:
    """The answer to a LeadRequest: the plan it was decided with, and per ask
    its reservation or None (exhausted: every day was full), and per ask what
    blocked its first day (None: it went out on its first day). Answers held
    before round 2 have no `blocked`."""

    plan: str
    picks: tuple[Reservation | None, ...]
    blocked: tuple[Blocked | None, ...] = ()
    # The lead was stopped (section 10): "<kind>:<since>:<until or -1>", and
    # nothing was reserved.
    suppressed: str = ""


def choose_resource(counts: Sequence[int], resources: Sequence[ResourceQuota]) -> int | None:
    """Index of the least-used resource still under its limit; ties to the first (smallest id).

    The Redis adapter runs the same rule inside its Lua script (reserve.lua),
    because it must happen atomically with the increment; the tests hold the
    two to the same results.
    """
    best: int | None = None
    for index, (count, resource) in enumerate(zip(counts, resources, strict=True)):
        has_room = resource.limit is None or count < resource.limit
        if has_room and (best is None or count < counts[best]):
            best = index
    return best


@dataclass(frozen=True)
class FeedbackRequest:
    """One send-event as the store applies it (CONTRACT.md section 10); every
    time in Unix seconds, every day the client's local date."""

    hold_key: str  # the feedback event's idempotency key, within its client
    client_id: str
    lead_id: str
    kind: str
    occurred: int
    occurred_day: date
    hold_until: int  # Unix seconds the answer is held (redeliveries get it)
    allocation_id: str = ""
    channel: Channel | None = None
    resource_id: str = ""
    cool_until: int = 0  # throttled: retry_after; else occurred + cooldown
    week: tuple[date, ...] = ()  # the 7 days that end on occurred_day (bounce rate)
    bounce_rate_limit: float = 0.05
    complaint_limit: int = 3
    suppress_until: int = -1  # a stop: until when (-1: for good)


@dataclass(frozen=True)
class Cancelled:
    """A reserved send a stop cancelled."""

    allocation_id: str
    event_id: str
    channel: str
    resource_id: str
    send_at: int


# How long a lapse claimed by lapse() waits for its caller's lapse_published()
# before another caller may take it: many of the workers' lapse timers (15 s
# by default, ALLOCATOR_HEALTH_LAPSE_SECONDS).
LAPSE_LEASE_SECONDS = 300
# A health held as claimed by lapse() and not yet published; active already.
LAPSING = "lapsing"
# What health() says of a resource with no health held: (state, until, reason).
NO_HEALTH = ("active", -1, "")


@dataclass(frozen=True)
class HealthSet:
    """A resource's new health (`until` -1: none)."""

    channel: str
    resource_id: str
    state: str
    until: int
    reason: str


@dataclass(frozen=True)
class FeedbackOutcome:
    """What one send-event did; `error` (a dead letter's code and sentence) when
    it names no reserved send."""

    error: tuple[str, str] | None = None
    refunded: int = 0
    cancelled: tuple[Cancelled, ...] = ()
    health: tuple[HealthSet, ...] = ()


# Cached, as the pool, pace and health keys: a batch builds the same few keys
# again and again (its resources on its days).
@lru_cache(maxsize=1 << 16)
def counter_key(prefix: str, channel: Channel, resource_id: str, day: date) -> str:
    """The design's key format extended with the day (contract rule 6)."""
    return f"{prefix}ratelimit:{channel.value}:{resource_id}:daily:{day.isoformat()}"


def key_part(text: str) -> str:
    """An id as a part of a key: ids may hold ':'; escaped, two ids never make
    the same key (redis_store.py escapes the lead and domain parts with it too)."""
    return text.replace("%", "%25").replace(":", "%3A")


@lru_cache(maxsize=1 << 16)
def pool_key(prefix: str, channel: Channel, client_id: str, pool_id: str, day: date) -> str:
    """A pool's day counter, in the contract's family; `pool` is no channel, so
    it never meets a resource's key."""
    return (
        f"{prefix}ratelimit:pool:{channel.value}:{key_part(client_id)}:{key_part(pool_id)}"
        f":daily:{day.isoformat()}"
    )


@lru_cache(maxsize=1 << 16)
def pace_key(prefix: str, channel: Channel, resource_id: str, day: date) -> str:
    """A resource's paced sends of a day (pacing's k): only ever counted up."""
    return f"{prefix}ratelimit:pace:{channel.value}:{key_part(resource_id)}:daily:{day.isoformat()}"


def cap_key(prefix: str, kind: str, client_id: str, name: str, day: date) -> str:
    """A lead's (`kind` lead) or a recipient domain's (`kind` domain) day counter."""
    owner, named = key_part(client_id), key_part(name)
    return f"{prefix}ratelimit:{kind}:{owner}:{named}:daily:{day.isoformat()}"


# Round 2, section 10: what feedback keeps, per client (keys.py adds the prefix
# and, on a cluster, the client's hash tag).


def sends_key(client_id: str, lead_id: str) -> str:
    """The lead's index of reserved sends: "<allocation_id>|<channel>" -> the send."""
    return f"allocator:sends:{key_part(client_id)}:{key_part(lead_id)}"


def suppressed_key(client_id: str, lead_id: str) -> str:
    return f"allocator:suppressed:{key_part(client_id)}:{key_part(lead_id)}"


@lru_cache(maxsize=1 << 16)
def health_key(client_id: str, channel: Channel | str, resource_id: str) -> str:
    return f"allocator:health:{key_part(client_id)}:{channel}:{key_part(resource_id)}"


def health_stat_key(
    client_id: str, channel: Channel | str, resource_id: str, kind: str, day: date
) -> str:
    """sent / bounced / complained of a resource on a client-local day."""
    return (
        f"allocator:hstat:{key_part(client_id)}:{channel}:{key_part(resource_id)}:{kind}:"
        f"{day.isoformat()}"
    )


def held_name(request: LeadRequest) -> str:
    """The name a lead's answer is held under: its hold_key, or the one derived
    from its client and event (as decision.py's requests leave it empty)."""
    return request.hold_key or derived_id("held", request.client_id, request.event_id)


def feedback_key(hold_key: str) -> str:
    return f"allocator:feedback:{hold_key}"


class QuotaStore(Protocol):
    async def reserve(self, requests: Sequence[LeadRequest]) -> list[Held]:
        """Reserve each lead's asks in order, in one atomic step per call.

        Idempotent per hold_key: asking again returns the first answer, with
        the plan it was decided with, and changes no counter.
        """
        ...

    async def usage(
        self, channel: Channel, resource_ids: Sequence[str], day: date, *, client_id: str = ""
    ) -> list[int]:
        """The counters of those resources on that day."""
        ...

    async def increment(
        self, channel: Channel, resource_id: str, day: date, *, client_id: str = ""
    ) -> int:
        """Add one send to that counter unconditionally; the new count."""
        ...

    async def read_counters(self, client_id: str, keys: Sequence[str]) -> list[int]:
        """Counters of one client by their keys without a prefix (counter_key,
        pool_key, cap_key with prefix ""); 0 where there is none."""
        ...

    async def feedback(self, requests: Sequence[FeedbackRequest]) -> list[FeedbackOutcome]:
        """Apply send-events in order, each once per hold_key (a redelivery gets
        the first outcome and changes nothing), in one atomic step per call."""
        ...

    async def health(
        self, client_id: str, resources: Sequence[tuple[Channel, str]]
    ) -> list[tuple[str, int, str]]:
        """Each resource's (state, until or -1, reason); NO_HEALTH when none is held."""
        ...

    async def resume(
        self, client_id: str, resources: Sequence[tuple[Channel, str]], at: int
    ) -> int:
        """Lift `paused` from these resources (loaded again with active: true, at
        Unix second `at`); how many. Each is active from then; lapse() publishes it."""
        ...

    async def lapse(
        self,
        client_id: str,
        resources: Sequence[tuple[Channel, str]],
        now: int,
        lease: int = LAPSE_LEASE_SECONDS,
    ) -> list[HealthSet]:
        """Each of these resources whose health became active again by `now`: a
        cooling whose until has passed, or a pause lifted by resume(); each is
        returned to one caller (state active, `until` the instant it changed,
        the reason), who publishes it and then says so with lapse_published().
        Until then it is claimed for `lease` seconds: if its caller dies
        before that, a lapse() at or after now + lease returns it again (a
        record published twice rather than lost). A store in this process's
        memory, which dies with its caller, forgets it at once."""
        ...

    async def lapse_published(self, client_id: str, published: Sequence[HealthSet]) -> None:
        """These changes, returned by lapse(), are published: forget them."""
        ...

    async def close(self) -> None: ...
