"""`allocator topics create` makes the missing topics as configured."""

from __future__ import annotations

from typing import Any

import pytest

import streams.topics
from allocator.config import Settings
from streams.topics import ensure_topics


class FakeAdmin:
    """Records what would be created; `existing` topics are already there."""

    existing = {"scored-leads"}
    created: list[Any] = []

    def __init__(self, **_: Any) -> None:
        pass

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def list_topics(self) -> list[str]:
        return sorted(self.existing)

    async def create_topics(self, topics: list[Any]) -> None:
        self.created.extend(topics)

    async def describe_topics(self, names: list[str]) -> list[dict[str, Any]]:
        return [{"topic": n, "partitions": [{}] * 4} for n in names]


async def test_created_topics_have_the_configured_replication_factor(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(streams.topics, "AIOKafkaAdminClient", FakeAdmin)
    monkeypatch.setattr(FakeAdmin, "created", [])
    monkeypatch.setenv("ALLOCATOR_TOPIC_REPLICATION_FACTOR", "3")
    monkeypatch.setenv("ALLOCATOR_TOPIC_PARTITIONS", "6")
    await ensure_topics(Settings())
    made = {t.name: (t.num_partitions, t.replication_factor) for t in FakeAdmin.created}
    assert made == {
        "conversion-patterns": (6, 3),
        "lead-allocations": (6, 3),
        "lead-allocations-dlq": (6, 3),
        "send-events": (6, 3),
        "lead-cancellations": (6, 3),
        "resource-health": (6, 3),
    }
