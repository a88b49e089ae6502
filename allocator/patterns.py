"""Learned WHEN/HOW patterns: which one is held, which one is used.

One place for the two pattern rules: a newer `updated_at` replaces an older one
for the same (client, type, channel), and a pattern is used only when its
confidence is strictly above the floor.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from allocator.channels import Channel
from allocator.models import ConversionPattern, HowPattern, WhenPattern, parse_pattern_data

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

    # Serialised form for faust tables and files: a plain JSON object.
    def to_json(self) -> dict[str, Any]:
        items = ([self.how] if self.how else []) + [self.when[c] for c in sorted(self.when)]
        return {slot_of(p): json.loads(p.model_dump_json()) for p in items}

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> PatternSet:
        result = cls()
        for value in (data or {}).values():
            result = result.with_pattern(parse_pattern_data(value))
        return result


NO_PATTERNS = PatternSet()
