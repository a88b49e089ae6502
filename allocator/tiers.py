"""ALS score -> tier -> the channels a lead may use, and the default sequence."""

from __future__ import annotations

from enum import StrEnum

from allocator.channels import Channel


class Tier(StrEnum):
    UNQUALIFIED = "unqualified"
    COLD = "cold"
    COOL = "cool"
    WARM = "warm"
    HOT = "hot"


# Lowest score of each tier, highest first; below 20 is unqualified.
_TIER_FLOORS: tuple[tuple[int, Tier], ...] = (
    (85, Tier.HOT),
    (60, Tier.WARM),
    (35, Tier.COOL),
    (20, Tier.COLD),
)

# How reports list tiers: best leads first.
DISPLAY_ORDER: tuple[Tier, ...] = (*(tier for _, tier in _TIER_FLOORS), Tier.UNQUALIFIED)

_ACCESS: dict[Tier, frozenset[Channel]] = {
    Tier.UNQUALIFIED: frozenset(),
    Tier.COLD: frozenset({Channel.EMAIL}),
    Tier.COOL: frozenset({Channel.EMAIL, Channel.LINKEDIN}),
    Tier.WARM: frozenset({Channel.EMAIL, Channel.LINKEDIN, Channel.VOICE}),
    Tier.HOT: frozenset(Channel),
}


def tier_for_score(score: int) -> Tier:
    for floor, tier in _TIER_FLOORS:
        if score >= floor:
            return tier
    return Tier.UNQUALIFIED


def allowed_channels(tier: Tier) -> frozenset[Channel]:
    return _ACCESS[tier]


def default_sequence(tier: Tier) -> list[Channel]:
    """The tier's allowed channels in the canonical order (Channel's declaration order)."""
    return list(_SEQUENCE[tier])


# Built once: walking an Enum is slow, and every lead asks for its tier's order.
_SEQUENCE = {tier: tuple(c for c in Channel if c in allowed) for tier, allowed in _ACCESS.items()}
