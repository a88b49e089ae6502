"""A cache of values that hold over a span of time: the send slots a reference
instant gets, and everything a lead's plan shares with others, stay the same
from one instant up to the next candidate slot.

Per key, up to `spans` non-overlapping spans [since, until) with their value,
found by bisection: a stream worker reads several partitions at once, so
consecutive leads come from different hours, and one span per key would be
replaced at nearly every lead.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Hashable
from datetime import datetime
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SpanCache(Generic[K, V]):
    def __init__(self, keys: int = 4096, spans: int = 64) -> None:
        self._keys = keys
        self._spans = spans
        # key -> (the spans' starts, sorted; per start its (until, value))
        self._held: dict[K, tuple[list[datetime], list[tuple[datetime, V]]]] = {}

    def get(self, key: K, at: datetime) -> tuple[V, datetime] | None:
        """The value of the span holding `at`, and where that span ends."""
        held = self._held.get(key)
        if held is None:
            return None
        starts, spans = held
        i = bisect_right(starts, at) - 1
        if i < 0:
            return None
        until, value = spans[i]
        return (value, until) if at < until else None

    def put(self, key: K, since: datetime, until: datetime, value: V) -> None:
        """Hold `value` over [since, until), replacing what was held there.

        Spans of one key never overlap: each runs from a reference to the next
        candidate after it, and two references before the same candidate have
        that one next. A span ending at the same instant is the same span, so
        it is widened in place, which keeps the starts sorted."""
        held = self._held.get(key)
        if held is None:
            if len(self._held) >= self._keys:
                self._held.clear()
            held = self._held[key] = ([], [])
        starts, spans = held
        for i, (end, _) in enumerate(spans):
            if end == until:
                starts[i] = min(starts[i], since)
                spans[i] = (until, value)
                return
        if len(starts) >= self._spans:
            del starts[0], spans[0]  # the earliest: streams move forward in time
        i = bisect_right(starts, since)
        starts.insert(i, since)
        spans.insert(i, (until, value))
