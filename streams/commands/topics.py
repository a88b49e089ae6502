"""`allocator topics create`: the allocator's topics, created where missing."""

from __future__ import annotations

import asyncio

from allocator.config import Settings
from streams.topics import ensure_topics


def create(settings: Settings) -> int:
    counts = asyncio.run(ensure_topics(settings))
    for name, partitions in counts.items():
        print(f"{name}: {partitions} partitions")
    return 0
