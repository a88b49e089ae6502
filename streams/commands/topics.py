"""`allocator topics create`: the allocator's topics, created where missing."""

from __future__ import annotations

from allocator.config import Settings
from allocator.running import run_to_end
from streams.topics import ensure_topics


def create(settings: Settings) -> int:
    counts = run_to_end(ensure_topics(settings))
    for name, partitions in counts.items():
        print(f"{name}: {partitions} partitions")
    return 0
