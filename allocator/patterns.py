"""Learned WHEN/HOW patterns: which one is held, which one is used.

One place for the two pattern rules: a newer `updated_at` replaces an older one
for the same (client, type, channel), and a pattern is used only when its
confidence is strictly above the floor.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from allocator.channels import Channel
from allocator.models import ConversionPattern, HowPattern, WhenPattern

CONFIDENCE_FLOOR = 0.6


def usable(pattern: ConversionPattern | None) -> bool:
    return pattern is not None and pattern.confidence > CONFIDENCE_FLOOR


def slot_of(pattern: ConversionPattern) -> str:
    """The name of the slot a pattern occupies within its client: 'how' or 'when:<channel>'."""
    if isinstance(pattern, WhenPattern):
        return f"when:{pattern.channel.value}"
    return "how"


@dataclass(frozen=True)
class PatternSet:
    """The latest patterns held for one client."""

    how: HowPattern | None = None
    when: dict[Channel, WhenPattern] = field(default_factory=dict)

    def with_pattern(self, pattern: ConversionPattern) -> PatternSet:
        """This set with `pattern` applied; an older pattern than the one held changes nothing."""
        held = self.held(pattern)
        if held is not None and held.updated_at > pattern.updated_at:
            return self
        if isinstance(pattern, HowPattern):
            return PatternSet(how=pattern, when=self.when)
        return PatternSet(how=self.how, when={**self.when, pattern.channel: pattern})

    def held(self, pattern: ConversionPattern) -> ConversionPattern | None:
        if isinstance(pattern, HowPattern):
            return self.how
        return self.when.get(pattern.channel)

    def usable_how(self) -> HowPattern | None:
        return self.how if usable(self.how) else None

    def usable_when(self, channel: Channel) -> WhenPattern | None:
        pattern = self.when.get(channel)
        return pattern if usable(pattern) else None

    def all(self) -> list[ConversionPattern]:
        """Every pattern held: the HOW pattern, then the WHEN patterns by channel."""
        return ([self.how] if self.how else []) + [self.when[c] for c in sorted(self.when)]


NO_PATTERNS = PatternSet()


class PatternBook:
    """The latest patterns of every client, as one worker holds them.

    Fed from two sides in any order: the database (every pattern ever
    persisted) and the pattern copies the worker consumes. Applying is
    idempotent and the newer `updated_at` wins, so the order does not matter.
    """

    def __init__(self) -> None:
        self._sets: dict[str, PatternSet] = {}

    def get(self, client_id: str) -> PatternSet:
        return self._sets.get(client_id, NO_PATTERNS)

    def apply(self, pattern: ConversionPattern) -> None:
        held = self.get(pattern.client_id)
        updated = held.with_pattern(pattern)
        if updated is not held:
            self._sets[pattern.client_id] = updated

    def merge(self, sets: dict[str, PatternSet]) -> None:
        for patterns in sets.values():
            for pattern in patterns.all():
                self.apply(pattern)

    def __len__(self) -> int:
        return sum(len(patterns.all()) for patterns in self._sets.values())
