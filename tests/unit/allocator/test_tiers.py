import pytest

from allocator.channels import Channel
from allocator.decision import channel_sequence
from allocator.patterns import PatternSet
from allocator.tiers import Tier, allowed_channels, default_sequence, tier_for_score
from tests.factories import how, when

E, L, V, S, D = Channel.EMAIL, Channel.LINKEDIN, Channel.VOICE, Channel.SMS, Channel.DIRECT_MAIL


@pytest.mark.parametrize(
    ("score", "tier"),
    [
        (0, Tier.UNQUALIFIED),
        (19, Tier.UNQUALIFIED),
        (20, Tier.COLD),
        (34, Tier.COLD),
        (35, Tier.COOL),
        (59, Tier.COOL),
        (60, Tier.WARM),
        (84, Tier.WARM),
        (85, Tier.HOT),
        (100, Tier.HOT),
    ],
)
def test_tier_boundaries(score: int, tier: Tier) -> None:
    assert tier_for_score(score) is tier


def test_default_sequences() -> None:
    assert default_sequence(Tier.UNQUALIFIED) == []
    assert default_sequence(Tier.COLD) == [E]
    assert default_sequence(Tier.COOL) == [E, L]
    assert default_sequence(Tier.WARM) == [E, L, V]
    assert default_sequence(Tier.HOT) == [E, L, V, S, D]
    assert allowed_channels(Tier.HOT) == frozenset(Channel)


def test_how_pattern_order_filtered_to_tier() -> None:
    assert channel_sequence(Tier.WARM, how(["sms", "voice", "email"])) == ([V, E], "pattern")


def test_how_pattern_never_widens_access() -> None:
    assert channel_sequence(Tier.COLD, how(["sms", "voice"])) == ([E], "default")


def test_how_pattern_at_exactly_floor_is_not_used() -> None:
    patterns = PatternSet().with_pattern(how(["linkedin", "email"], confidence=0.6))
    assert patterns.usable_how() is None
    assert channel_sequence(Tier.COOL, patterns.usable_how()) == ([E, L], "default")
    above = PatternSet().with_pattern(how(["linkedin", "email"], confidence=0.6000001))
    assert channel_sequence(Tier.COOL, above.usable_how()) == ([L, E], "pattern")


def test_older_pattern_is_ignored_newer_replaces() -> None:
    newer = how(["sms"], updated_at="2026-02-01T00:00:00Z")
    older = how(["voice"], updated_at="2026-01-01T00:00:00Z")
    assert PatternSet().with_pattern(newer).with_pattern(older).how == newer
    assert PatternSet().with_pattern(older).with_pattern(newer).how == newer
    w = PatternSet().with_pattern(when("sms", 1, 9)).with_pattern(when("email", 2, 10))
    assert set(w.when) == {S, E}
