"""What a replay did, counted as it runs: the terminal summary, summary.json and
the report's charts all read from here."""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from allocator.channels import ALLOCATED, DEFERRED, EXHAUSTED, REPORTED_STATUSES, reported_status
from allocator.decision import Decision
from allocator.directory import ClientSetup
from allocator.models import ScoredLead


@dataclass
class Summary:
    rules: dict[str, Any]
    leads: int = 0
    invalid: Counter[str] = field(default_factory=Counter)  # error_code -> count
    tiers: Counter[str] = field(default_factory=Counter)
    # (tier, channel, status) with status in REPORTED_STATUSES
    entries: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    # (day, channel, status): the send's quota day, else the day it asked for
    per_day: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    # (client, channel, resource_id, usage_day) -> sends
    usage: Counter[tuple[str, str, str, str]] = field(default_factory=Counter)
    limits: dict[tuple[str, str, str], int | None] = field(default_factory=dict)
    # (client, channel, day asked for) -> sends wanted that day
    demand: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    capacity: dict[tuple[str, str], int | None] = field(default_factory=dict)
    # (weekday 0=Mon, hour) of send_at, local to its zone
    send_times: Counter[tuple[int, int]] = field(default_factory=Counter)

    def add(self, decision: Decision, lead: ScoredLead, setup: ClientSetup) -> None:
        allocation = decision.allocation
        tier = allocation.als_tier.value
        self.leads += 1
        self.tiers[tier] += 1
        for entry, steps, wanted in zip(
            allocation.channels, decision.deferrals, decision.wanted_days, strict=True
        ):
            channel = entry.channel.value
            status = reported_status(entry.status, steps)
            self.entries[(tier, channel, status)] += 1
            day = entry.usage_day or (wanted or lead.scored_at.date()).isoformat()
            self.per_day[(day, channel, status)] += 1
            if wanted is not None:
                self.demand[(lead.client_id, channel, wanted.isoformat())] += 1
            if entry.status == ALLOCATED and entry.send_at is not None:
                assert entry.resource_id is not None and entry.usage_day is not None
                self.usage[(lead.client_id, channel, entry.resource_id, entry.usage_day)] += 1
                self.send_times[(entry.send_at.weekday(), entry.send_at.hour)] += 1
        for channel, quotas in setup.quotas.items():
            key = (setup.client.client_id, channel.value)
            if key not in self.capacity:
                limits = [q.limit for q in quotas]
                self.capacity[key] = (
                    None if None in limits else sum(q for q in limits if q is not None)
                )
                for q in quotas:
                    self.limits[(setup.client.client_id, channel.value, q.resource_id)] = q.limit

    # --- derived figures ------------------------------------------------------

    def status_totals(self) -> Counter[str]:
        totals: Counter[str] = Counter()
        for (_, _, status), n in self.entries.items():
            totals[status] += n
        return totals

    def utilisation(self) -> list[dict[str, Any]]:
        """Per resource: days used, mean and peak share of its daily limit."""
        by_resource: dict[tuple[str, str, str], list[int]] = {}
        for (client, channel, resource, _), n in sorted(self.usage.items()):
            by_resource.setdefault((client, channel, resource), []).append(n)
        rows = []
        for key, counts in sorted(by_resource.items()):
            limit = self.limits.get(key)
            rows.append(
                {
                    "client_id": key[0],
                    "channel": key[1],
                    "resource_id": key[2],
                    "daily_limit": limit,
                    "days": len(counts),
                    "sends": sum(counts),
                    "mean_per_day": round(statistics.fmean(counts), 3),
                    "peak_per_day": max(counts),
                    "mean_utilisation": None
                    if not limit
                    else round(statistics.fmean(counts) / limit, 4),
                    "peak_utilisation": None if not limit else round(max(counts) / limit, 4),
                }
            )
        return rows

    def capacity_needed(self) -> list[dict[str, Any]]:
        """Per client and channel: the busiest day's demand against today's capacity."""
        peaks: dict[tuple[str, str], tuple[int, str]] = {}
        for (client, channel, day), n in sorted(self.demand.items()):
            if n > peaks.get((client, channel), (0, ""))[0]:
                peaks[(client, channel)] = (n, day)
        rows = []
        for (client, channel), (peak, day) in sorted(peaks.items()):
            capacity = self.capacity.get((client, channel))
            rows.append(
                {
                    "client_id": client,
                    "channel": channel,
                    "peak_day": day,
                    "peak_demand": peak,
                    "daily_capacity": capacity,
                    "shortfall": 0 if capacity is None else max(0, peak - capacity),
                }
            )
        return rows

    def balance(self) -> float:
        """Mean over (client, channel, day) of the spread max-min of sends across
        resources with equal limits: 0 is perfectly even."""
        peers: dict[tuple[str, str, int | None], list[str]] = {}
        for (client, channel, resource), limit in self.limits.items():
            peers.setdefault((client, channel, limit), []).append(resource)
        used: dict[tuple[str, str, int | None, str], dict[str, int]] = {}
        for (client, channel, resource, day), n in self.usage.items():
            limit = self.limits.get((client, channel, resource))
            used.setdefault((client, channel, limit, day), {})[resource] = n
        spreads = []
        for (client, channel, limit, _), counts in used.items():
            group = peers.get((client, channel, limit), [])
            if len(group) > 1:
                per_resource = [counts.get(r, 0) for r in group]
                spreads.append(max(per_resource) - min(per_resource))
        return round(statistics.fmean(spreads), 4) if spreads else 0.0

    def to_json(self) -> dict[str, Any]:
        totals = self.status_totals()
        entries = sum(totals.values())
        by_tier = {}
        for tier, leads in sorted(self.tiers.items()):
            tier_entries: Counter[str] = Counter()
            for (t, _, s), n in self.entries.items():
                if t == tier:
                    tier_entries[s] += n
            channel_entries = sum(tier_entries.values())
            by_tier[tier] = {
                "leads": leads,
                "channel_entries": channel_entries,
                **{s: tier_entries[s] for s in REPORTED_STATUSES},
                "deferred_share": _share(tier_entries[DEFERRED], channel_entries),
                "exhausted_share": _share(tier_entries[EXHAUSTED], channel_entries),
            }
        return {
            "rules": self.rules,
            "leads": self.leads,
            "invalid_records": sum(self.invalid.values()),
            "invalid_by_code": dict(sorted(self.invalid.items())),
            "channel_entries": entries,
            "statuses": {s: totals[s] for s in REPORTED_STATUSES},
            "by_tier": by_tier,
            "by_tier_channel_status": [
                {"tier": t, "channel": c, "status": s, "count": n}
                for (t, c, s), n in sorted(self.entries.items())
            ],
            "per_day": [
                {"day": d, "channel": c, "status": s, "count": n}
                for (d, c, s), n in sorted(self.per_day.items())
            ],
            "resources": self.utilisation(),
            "capacity_needed": self.capacity_needed(),
            "usage_balance_spread": self.balance(),
            "send_times": [
                {"weekday": w, "hour": h, "count": n}
                for (w, h), n in sorted(self.send_times.items())
            ],
        }


def _share(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0
