"""Why a channel entry is not at its first slot (CONTRACT.md section 11): the
stable codes, and the one sentence each becomes in a record."""

from __future__ import annotations

from datetime import date
from enum import StrEnum

from allocator.channels import RESOURCE_TYPE, Channel


class Why(StrEnum):
    # Declaration order breaks ties when several resources are blocked for
    # different reasons on a day (quota/rules.py choose_on_day): the plainest first.
    DEFERRED_FULL = "deferred_full"
    DEFERRED_WARMUP = "deferred_warmup"
    DEFERRED_WEEKLY = "deferred_weekly"
    DEFERRED_POOL = "deferred_pool"
    DEFERRED_HEALTH = "deferred_health"
    DEFERRED_LEAD_LIMIT = "deferred_lead_limit"
    DEFERRED_DOMAIN_LIMIT = "deferred_domain_limit"
    MOVED_WINDOW = "moved_window"
    MOVED_HOLIDAY = "moved_holiday"
    EXHAUSTED = "exhausted"
    NO_RESOURCE = "no_resource"
    SUPPRESSED = "suppressed"


WHY_ORDER: dict[str, int] = {why.value: rank for rank, why in enumerate(Why)}

# What a record's sentences call one resource of a channel: "linkedin seat".
RESOURCE_NOUNS: dict[Channel, str] = {
    channel: kind.value.replace("_", " ") for channel, kind in RESOURCE_TYPE.items()
}


def resource_noun(channel: Channel, count: int) -> str:
    """`3 linkedin seats`, `1 email domain`."""
    return f"{count} {RESOURCE_NOUNS[channel]}{'' if count == 1 else 's'}"


def blocked_detail(why: str, channel: Channel, blocked: int, of: int, day: date) -> str:
    """The sentence of a day on which the channel found no room (quota.rules)."""
    on = day.isoformat()
    some = resource_noun(channel, blocked)
    if blocked < of:
        some = f"{blocked} of {resource_noun(channel, of)}"
    match why:
        case Why.DEFERRED_FULL:
            return f"{some} full on {on}"
        case Why.DEFERRED_WARMUP:
            return f"{some} at their warm-up cap on {on}"
        case Why.DEFERRED_WEEKLY:
            return f"{some} at their weekly limit on {on}"
        case Why.DEFERRED_POOL:
            return f"{some} in a full pool on {on}"
        case Why.DEFERRED_HEALTH:
            return f"{some} cooling or paused on {on}"
        case Why.DEFERRED_LEAD_LIMIT:
            return f"the lead's daily send limit reached on {on}"
        case Why.DEFERRED_DOMAIN_LIMIT:
            return f"the recipient domain's daily limit reached on {on}"
        case Why.MOVED_WINDOW:
            return f"{some} paced full before the window's end on {on}"
    return f"{why} on {on}"
