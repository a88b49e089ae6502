"""Independent checks of emitted allocations against the contract's rules."""

from __future__ import annotations

from collections import Counter
from typing import Any

from allocator.channels import RESOURCE_TYPE, Channel
from allocator.decision import Schedule, channel_sequence
from allocator.directory import ClientSetup, unknown_client
from allocator.models import ScoredLead, derived_id, zone
from allocator.patterns import PatternSet
from allocator.tiers import tier_for_score
from allocator.timing import send_slots

UsageKey = tuple[str, str, str]  # channel, resource_id, usage_day


def check_allocation(
    allocation: dict[str, Any], lead: ScoredLead, setup: ClientSetup | None,
    patterns: PatternSet,
) -> None:
    """Everything about one allocation that does not depend on other leads."""
    setup = setup or unknown_client(lead.client_id)
    tier = tier_for_score(lead.als_score)
    assert allocation["event_id"] == lead.key
    assert allocation["allocation_id"] == derived_id("allocation", lead.key)
    assert allocation["als_tier"] == tier.value
    sequence, source = channel_sequence(tier, patterns.usable_how())
    assert allocation["sequence_source"] == source
    assert [c["channel"] for c in allocation["channels"]] == [c.value for c in sequence]
    client_zone = zone(setup.client.timezone)
    send_zone = zone(lead.timezone) if lead.timezone else client_zone
    for entry in allocation["channels"]:
        channel = Channel(entry["channel"])
        when = patterns.usable_when(channel)
        assert entry["timing_source"] == ("pattern" if when else "default")
        quotas = setup.quotas_for(channel)
        if not quotas:
            assert entry["status"] == "no_resource"
            continue
        assert entry["status"] in ("allocated", "exhausted")
        if entry["status"] == "exhausted":
            assert entry["resource_id"] is None and entry["send_at"] is None
            continue
        assert entry["resource_type"] == RESOURCE_TYPE[channel].value
        assert entry["resource_id"] in {q.resource_id for q in quotas}  # own, active
        slots = send_slots(lead.scored_at, Schedule().hours[channel], send_zone, client_zone,
                           when, setup.client.max_defer_days)
        candidates = {(s.send_at.isoformat(), s.usage_day.isoformat()) for s in slots}
        assert (entry["send_at"], entry["usage_day"]) in candidates


def usage_of(allocations: list[dict[str, Any]]) -> Counter[UsageKey]:
    used: Counter[UsageKey] = Counter()
    for allocation in allocations:
        for entry in allocation["channels"]:
            if entry["status"] == "allocated":
                used[(entry["channel"], entry["resource_id"], entry["usage_day"])] += 1
    return used


def check_limits(used: Counter[UsageKey], setups: dict[str, ClientSetup]) -> None:
    limits = {(ch.value, q.resource_id): q.limit for s in setups.values()
              for ch, qs in s.quotas.items() for q in qs}
    for (channel, resource_id, _), count in used.items():
        limit = limits[(channel, resource_id)]
        assert limit is None or count <= limit, (channel, resource_id, count, limit)


def check_exhausted_means_full(
    allocations: list[dict[str, Any]], leads: dict[str, ScoredLead],
    setups: dict[str, ClientSetup], patterns: dict[str, PatternSet], used: Counter[UsageKey],
) -> int:
    """An exhausted channel had every resource full on every candidate day."""
    exhausted = 0
    for allocation in allocations:
        lead = leads[allocation["event_id"]]
        setup = setups.get(lead.client_id)
        if setup is None:  # unknown client: every channel no_resource, checked elsewhere
            continue
        for entry in allocation["channels"]:
            if entry["status"] != "exhausted":
                continue
            exhausted += 1
            channel = Channel(entry["channel"])
            client_zone = zone(setup.client.timezone)
            send_zone = zone(lead.timezone) if lead.timezone else client_zone
            slots = send_slots(lead.scored_at, Schedule().hours[channel], send_zone, client_zone,
                               patterns[lead.client_id].usable_when(channel),
                               setup.client.max_defer_days)
            for slot in slots:
                for quota in setup.quotas_for(channel):
                    key = (channel.value, quota.resource_id, slot.usage_day.isoformat())
                    assert quota.limit is not None and used[key] == quota.limit, key
    return exhausted


async def assert_counters_match(redis_url: str, prefix: str,
                                allocations: list[dict[str, Any]], complete: bool = False) -> None:
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
