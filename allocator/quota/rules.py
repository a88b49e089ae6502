"""The capacity rules of one reservation (CONTRACT.md sections 3.4 and 8), in Python.

For one ask on one candidate day: the lead's and the recipient domain's caps,
then per resource its cap of the day (the daily limit, lowered by a warm-up),
its rolling week (the day and the 6 before it, summed from the day counters:
there is no week counter that could drift) and its pool's day and week; among
the resources with room, the rotation's choice. The in-memory store runs these
functions; the Redis store runs the same rules inside reserve.lua, atomically
with the increments; a test holds the two to the same answers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

from allocator.channels import Channel
from allocator.frozen import fast_init
from allocator.quota.base import (
    Blocked,
    ChannelAsk,
    ResourceQuota,
    cap_key,
    counter_key,
    pace_key,
    pool_key,
)
from allocator.quota.feedback import blocked_by_health
from allocator.reasons import WHY_ORDER, Why

Count = Callable[[str], int]


def weeks_around(day: date) -> tuple[date, ...]:
    """The 13 days from 6 before `day` to 6 after: a send on `day` falls in the
    7 rolling weeks (of 7 days each) that end on `day` and on each of the 6
    days after it, and none of them may go over (sends are booked for later
    days too, by deferrals and patterns)."""
    return tuple(day + timedelta(days=n) for n in range(-6, 7))


def week_full(counts: list[int], limit: int) -> bool:
    """Whether one more send in the middle day of 13 `counts` (weeks_around)
    would put one of its 7 rolling weeks over `limit`."""
    window = sum(counts[:7])
    worst = window
    for start in range(1, 7):
        window += counts[start + 6] - counts[start - 1]
        worst = max(worst, window)
    return worst >= limit


def day_cap(resource: ResourceQuota, day: date) -> tuple[int | None, bool]:
    """The resource's cap on `day` (None: unlimited), and whether its warm-up set it."""
    cap = resource.limit
    if resource.warmup is not None:
        ramp = resource.warmup.cap_on(day)
        if cap is None or ramp < cap:
            return ramp, True
    return cap, False


@fast_init
@dataclass(frozen=True, slots=True)
class DayChoice:
    """The outcome of one day: the index of the resource taken and the keys to
    count it in, or what blocked the day."""

    chosen: int | None
    increments: tuple[str, ...] = ()
    blocked: Blocked | None = None
    k: int = 0  # the chosen resource's (paced) sends that day before this one
    pace: str | None = None  # the pacing counter to count it in (never refunded)


# Reasons a day stays blocked for, unchanged, as long as no counter goes down:
# a resource's cap of the day (full, or its warm-up's) is checked first and its
# counter only grows between refunds. A day blocked by its rolling week or its
# pool stays blocked, but not always for that reason: once later days' sends
# fill the week, a day its pool blocked is blocked by the week (checked
# before the pool); and a resource another client lists with a higher limit
# may still take that client's sends and fill the day. The record says the
# reason, so such a day is asked again. (Remembering it also made a client's
# reasons depend on whether any client had health recorded, which keeps
# memory.py from using the memo: one process and a split replay disagreed.)
_LASTING = frozenset({Why.DEFERRED_FULL, Why.DEFERRED_WARMUP})


class FullDays:
    """Days on which every resource of a channel was found without room for a
    lasting reason, remembered until the store gives a count back or records
    a resource's health (`forget`). A replay of a busy history asks for the
    same full days again and again; this answers them without reading a
    counter. Keyed by the identity of the ask's resource tuple, which is kept
    beside the answer so that the id cannot be reused meanwhile, and by the
    channel and the client: the counters are a channel's, the pools a
    client's, and one tuple may serve several channels (it did in a test, and
    the day one channel filled was taken as full for the next)."""

    def __init__(self, size: int = 1 << 16) -> None:
        self._days: dict[
            tuple[int, Channel, str, date], tuple[tuple[ResourceQuota, ...], DayChoice]
        ] = {}
        self._size = size
        # Per ask and client, how many of its first days are known full, as
        # of `_version` (one more at every put; forget drops them): leads of one
        # shape share their ask, and most of a busy replay's leads pass over
        # the same full days before the one they get.
        self._skips: dict[tuple[int, str], tuple[ChannelAsk, int, int, Blocked | None]] = {}
        self._version = 0

    def get(self, ask: ChannelAsk, client_id: str, day: date) -> DayChoice | None:
        resources = ask.resources
        found = self._days.get((id(resources), ask.channel, client_id, day))
        return found[1] if found is not None and found[0] is resources else None

    def put(self, ask: ChannelAsk, client_id: str, day: date, choice: DayChoice) -> None:
        if len(self._days) >= self._size:
            self._days.clear()
        self._days[(id(ask.resources), ask.channel, client_id, day)] = (ask.resources, choice)
        self._version += 1

    def skip(self, ask: ChannelAsk, client_id: str) -> tuple[int, Blocked | None]:
        """How many of the ask's days, from its first, are known full, and what
        blocked the first of them (None when none is)."""
        held = self._skips.get((id(ask), client_id))
        if held is not None and held[0] is ask and held[1] == self._version:
            return held[2], held[3]
        step, first = 0, None
        for day in ask.days:
            known = self.get(ask, client_id, day)
            if known is None:
                break
            first = first or known.blocked
            step += 1
        if ask.paced is None:  # a paced lead's ask is its own: no other lead asks it
            if len(self._skips) >= self._size:
                self._skips.clear()
            # The ask is kept beside the answer, so that its id cannot be reused meanwhile.
            self._skips[(id(ask), client_id)] = (ask, self._version, step, first)
        return step, first

    def forget(self) -> None:
        self._days.clear()
        self._skips.clear()


def choose_on_day(
    ask: ChannelAsk,
    client_id: str,
    step: int,
    count: Count,
    health: Callable[[str], tuple[str, int] | None] | None = None,
    sticky: str | None = None,
    full: FullDays | None = None,
) -> DayChoice:
    """Which resource of `ask` takes a send on its `step`-th day, given the
    counters (`count` reads one by its key without a prefix), each resource's
    health (CONTRACT.md section 10; None: every resource is active) and the
    lead's sticky resource, if any. Nothing is counted here. `full`, if
    given, remembers days found full (its caller forgets them when a counter
    goes down or a health is recorded); only asked without health or sticky."""
    day = ask.days[step]
    room = ask.paced[step] if ask.paced is not None else None
    at = ask.at[step] if ask.at else 0
    channel = ask.channel
    shared: list[str] = []
    of = len(ask.resources)
    if ask.lead is not None:
        key = cap_key("", "lead", client_id, ask.lead.name, day)
        if count(key) >= ask.lead.limit:
            return DayChoice(None, blocked=Blocked(Why.DEFERRED_LEAD_LIMIT, 0, of))
        shared.append(key)
    if ask.domain is not None:
        key = cap_key("", "domain", client_id, ask.domain.name, day)
        if count(key) >= ask.domain.limit:
            return DayChoice(None, blocked=Blocked(Why.DEFERRED_DOMAIN_LIMIT, 0, of))
        shared.append(key)
    memo = full if health is None and sticky is None else None
    if memo is not None:
        known = memo.get(ask, client_id, day)
        if known is not None:
            return known
    loaded = ask.rotation == "least_loaded"
    best: int | None = None
    best_count, best_cap = 0, None
    tally: dict[str, int] = {}
    sticky_at: int | None = None
    sticky_count = 0
    sticky_why: str = Why.DEFERRED_HEALTH  # the sticky resource is not among the active ones
    for index, resource in enumerate(ask.resources):
        rid = resource.resource_id
        used = count(counter_key("", channel, rid, day))
        # The limits in order: health, the day's cap (after warm-up), the
        # rolling week, the pool. This loop runs for every resource on every
        # day a lead tries, so the week and pool are looked at only when the
        # resource has them.
        cap, warm = day_cap(resource, day)
        why: str | None
        if health is not None and blocked_by_health(health(rid), at):
            why = Why.DEFERRED_HEALTH
        elif cap is not None and used >= cap:
            why = Why.DEFERRED_WARMUP if warm else Why.DEFERRED_FULL
        elif resource.weekly is None and resource.pool is None:
            why = None
        else:
            why = _week_or_pool(ask, client_id, resource, day, count)
        # k counts the resource's paced sends of the day and is never given
        # back (a refund must not hand a taken k out again).
        if room is not None and why is None and count(pace_key("", channel, rid, day)) >= room:
            why = Why.MOVED_WINDOW  # paced past the day's end
        if rid == sticky:
            if why is None:
                sticky_at, sticky_count = index, used
            else:
                sticky_why = why
        if why is not None:
            tally[why] = tally.get(why, 0) + 1
            continue
        if best is None or (
            _less_loaded(used, cap, best_count, best_cap) if loaded else used < best_count
        ):
            best, best_count, best_cap = index, used, cap
    if sticky is not None:
        if sticky_at is not None:
            best, best_count = sticky_at, sticky_count
        elif ask.sticky_require:
            return DayChoice(None, blocked=Blocked(sticky_why, 1, of))
    if best is None:
        worst, blocked = min(tally.items(), key=_worst)
        choice = DayChoice(None, blocked=Blocked(worst, blocked, of))
        if memo is not None and _LASTING.issuperset(tally):
            memo.put(ask, client_id, day, choice)
        return choice
    taken = ask.resources[best]
    keys = [counter_key("", channel, taken.resource_id, day)]
    if taken.pool is not None:
        keys.append(pool_key("", channel, client_id, taken.pool.pool_id, day))
    if room is None:
        return DayChoice(best, tuple(keys + shared), k=best_count)
    paced = pace_key("", channel, taken.resource_id, day)
    return DayChoice(best, tuple(keys + shared), k=count(paced), pace=paced)


def _worst(item: tuple[str, int]) -> tuple[int, int]:
    """The reason most resources were blocked by; a tie to the plainest (WHY_ORDER)."""
    return (-item[1], WHY_ORDER[item[0]])


def _week_or_pool(
    ask: ChannelAsk, client_id: str, resource: ResourceQuota, day: date, count: Count
) -> str | None:
    """Whether the resource's rolling week, or its pool's day or week, has no
    room on `day` (its day's cap had room), or None."""
    if resource.weekly is not None:
        rid = resource.resource_id
        counts = [count(counter_key("", ask.channel, rid, d)) for d in weeks_around(day)]
        if week_full(counts, resource.weekly):
            return Why.DEFERRED_WEEKLY
    pool = resource.pool
    if pool is not None:
        pooled = count(pool_key("", ask.channel, client_id, pool.pool_id, day))
        if pool.limit is not None and pooled >= pool.limit:
            return Why.DEFERRED_POOL
        if pool.weekly is not None:
            days = weeks_around(day)
            counts = [count(pool_key("", ask.channel, client_id, pool.pool_id, d)) for d in days]
            if week_full(counts, pool.weekly):
                return Why.DEFERRED_POOL
    return None


def _less_loaded(used: int, cap: int | None, best_used: int, best_cap: int | None) -> bool:
    """used / cap < best_used / best_cap, exactly (an unlimited resource is empty);
    a tie is not less, so it goes to the earlier (smaller) resource_id."""
    mine = (0, 1) if cap is None else (used, cap)
    theirs = (0, 1) if best_cap is None else (best_used, best_cap)
    return mine[0] * theirs[1] < theirs[0] * mine[1]
