"""Independent checks of emitted allocations against the contract's rules.

Every expected value comes from the test oracle (tests/oracle.py), written
from the contract's words: nothing here calls the production tiers, decision
core, timing, pattern filter, limit resolution or id derivation. The
production `ClientSetup`, `ScoredLead` and `PatternSet` the callers pass are
only read as data: the client row, its resource rows, the lead's fields and
the latest pattern held per slot.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from allocator.directory import ClientSetup
from allocator.models import ScoredLead
from allocator.patterns import PatternSet
from tests import oracle

UsageKey = tuple[str, str, str]  # channel, resource_id, usage_day


@dataclass(frozen=True)
class ClientFacts:
    """A client as the contract describes it: zone, deferral horizon, active resources."""

    zone: str = oracle.CLIENT_DEFAULT_ZONE
    max_defer_days: int = 0
    # channel -> resource_id -> daily limit (None: unlimited); own, active resources only
    resources: dict[str, dict[str, int | None]] = field(default_factory=dict)


def client_facts(client_id: str, setup: ClientSetup | None) -> ClientFacts:
    """An unknown client is decided as a client in UTC with no resources (section 5)."""
    if setup is None:
        return ClientFacts()
    assert setup.client.client_id == client_id
    resources: dict[str, dict[str, int | None]] = {}
    for row in setup.resources:
        if row.client_id != client_id or not row.active:
            continue
        channel = str(row.channel)
        limit = (
            row.daily_limit
            if row.daily_limit is not None
            else (oracle.DEFAULT_DAILY_LIMIT[channel])
        )
        resources.setdefault(channel, {})[row.resource_id] = limit
    return ClientFacts(setup.client.timezone, setup.client.max_defer_days, resources)


def when_of(patterns: PatternSet, channel: str) -> oracle.When | None:
    """The WHEN pattern held for the channel, usable or not (the oracle decides)."""
    for held_channel, pattern in patterns.when.items():
        if str(held_channel) == channel:
            return oracle.When(pattern.optimal_day, pattern.optimal_hour, pattern.confidence)
    return None


def expected_sequence(tier: str, patterns: PatternSet) -> tuple[list[str], str]:
    how = patterns.how
    if how is None:
        return oracle.sequence_for(tier, None, None)
    return oracle.sequence_for(tier, [str(c) for c in how.winning_sequence], how.confidence)


def expected_slots(
    lead: ScoredLead, facts: ClientFacts, channel: str, patterns: PatternSet
) -> list[tuple[datetime, date]]:
    send_zone = lead.timezone or facts.zone
    return oracle.send_slots(
        lead.scored_at,
        channel,
        send_zone,
        facts.zone,
        when_of(patterns, channel),
        facts.max_defer_days,
    )


def instant(text: str) -> datetime:
    """An RFC 3339 timestamp of the record, which must carry its offset, in UTC."""
    parsed = datetime.fromisoformat(text)
    assert parsed.utcoffset() is not None, text
    return parsed.astimezone(UTC)


def check_allocation(
    allocation: dict[str, Any],
    lead: ScoredLead,
    setup: ClientSetup | None,
    patterns: PatternSet,
) -> None:
    """Everything about one allocation that does not depend on other leads."""
    facts = client_facts(lead.client_id, setup)
    tier = oracle.tier_of(lead.als_score)
    event_id = oracle.event_id_of(lead.event_id, lead.lead_id, lead.client_id, lead.scored_at)
    assert allocation["event_id"] == event_id
    assert allocation["allocation_id"] == oracle.allocation_id(event_id)
    assert (allocation["lead_id"], allocation["client_id"], allocation["als_score"]) == (
        lead.lead_id,
        lead.client_id,
        lead.als_score,
    )
    assert allocation["als_tier"] == tier
    sequence, source = expected_sequence(tier, patterns)
    assert allocation["sequence_source"] == source
    assert [c["channel"] for c in allocation["channels"]] == sequence
    for entry in allocation["channels"]:
        channel = entry["channel"]
        when = when_of(patterns, channel)
        usable = when is not None and oracle.usable(when.confidence)
        assert entry["timing_source"] == ("pattern" if usable else "default")
        mine = facts.resources.get(channel, {})
        if not mine:
            assert entry["status"] == "no_resource"
        else:
            assert entry["status"] in ("allocated", "exhausted")
        if entry["status"] != "allocated":
            unset = (
                entry["resource_type"],
                entry["resource_id"],
                entry["send_at"],
                entry["usage_day"],
            )
            assert unset == (None, None, None, None), entry
            continue
        assert entry["resource_type"] == oracle.RESOURCE_TYPE[channel]
        assert entry["resource_id"] in mine  # own, active
        slots = expected_slots(lead, facts, channel, patterns)
        assert (instant(entry["send_at"]), date.fromisoformat(entry["usage_day"])) in slots, (
            entry,
            slots,
        )


def usage_of(allocations: list[dict[str, Any]]) -> Counter[UsageKey]:
    used: Counter[UsageKey] = Counter()
    for allocation in allocations:
        for entry in allocation["channels"]:
            if entry["status"] == "allocated":
                used[(entry["channel"], entry["resource_id"], entry["usage_day"])] += 1
    return used


def check_limits(used: Counter[UsageKey], setups: dict[str, ClientSetup]) -> None:
    limits = {
        (channel, resource_id): limit
        for client_id, setup in setups.items()
        for channel, own in client_facts(client_id, setup).resources.items()
        for resource_id, limit in own.items()
    }
    for (channel, resource_id, _), count in used.items():
        limit = limits[(channel, resource_id)]
        assert limit is None or count <= limit, (channel, resource_id, count, limit)


def check_exhausted_means_full(
    allocations: list[dict[str, Any]],
    leads: dict[str, ScoredLead],
    setups: dict[str, ClientSetup],
    patterns: dict[str, PatternSet],
    used: Counter[UsageKey],
) -> int:
    """An exhausted channel had every resource full on every candidate day."""
    exhausted = 0
    for allocation in allocations:
        lead = leads[allocation["event_id"]]
        setup = setups.get(lead.client_id)
        if setup is None:  # unknown client: every channel no_resource, checked elsewhere
            continue
        facts = client_facts(lead.client_id, setup)
        for entry in allocation["channels"]:
            if entry["status"] != "exhausted":
                continue
            exhausted += 1
            channel = entry["channel"]
            slots = expected_slots(lead, facts, channel, patterns[lead.client_id])
            for _, usage_day in slots:
                for resource_id, limit in facts.resources[channel].items():
                    key = (channel, resource_id, usage_day.isoformat())
                    assert limit is not None and used[key] == limit, key
    return exhausted


async def assert_counters_match(
    redis_url: str, prefix: str, allocations: list[dict[str, Any]], complete: bool = False
) -> None:
    """Every Redis counter equals the allocated sends of the distinct allocations;
    with `complete`, these are all the allocations, and no other counter exists."""
    from redis.asyncio import Redis

    redis = Redis.from_url(redis_url, decode_responses=True)
    try:
        expected = {
            f"{prefix}ratelimit:{channel}:{resource}:daily:{day}": str(count)
            for (channel, resource, day), count in usage_of(allocations).items()
        }
        for key, count in expected.items():
            assert await redis.get(key) == count, key
        if complete:
            keys = [k async for k in redis.scan_iter(match=f"{prefix}ratelimit:*", count=1000)]
            assert sorted(keys) == sorted(expected)
    finally:
        await redis.aclose()


# --- redelivered copies -------------------------------------------------------


def identical_apart_from_decided_at(copies: list[dict[str, Any]]) -> bool:
    stripped = [{k: v for k, v in c.items() if k != "decided_at"} for c in copies]
    return all(s == stripped[0] for s in stripped)


def by_event(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        grouped[record["event_id"]].append(record)
    return grouped


def assert_each_once(copies: dict[str, list[dict[str, Any]]], wanted: set[str]) -> int:
    """Every wanted event allocated, every redelivered copy identical to the
    first but for decided_at, distinct allocation ids; the number of extra copies."""
    lost = wanted - set(copies)
    assert not lost, f"{len(lost)} leads never allocated"
    extra = 0
    for event in wanted:
        assert identical_apart_from_decided_at(copies[event]), event
        extra += len(copies[event]) - 1
    firsts = [copies[event][0]["allocation_id"] for event in wanted]
    assert len(set(firsts)) == len(firsts)
    return extra
