"""The one place that adapts faust where it has no setting of its own.

faust-streaming 0.15 creates its Kafka consumers with a hard-coded
`fetch_max_wait_ms=1500` (faust/transport/drivers/aiokafka.py). Kafka answers a
fetch as soon as data arrives, so there the wait only bounds idle polling; but
the embedded Tansu broker answers a long-poll fetch only when the wait runs
out, which put ~0.7-1.7 s into every record's end-to-end latency (topics.md).
`use_fetch_max_wait` makes the wait ALLOCATOR_CONSUMER_FETCH_MAX_WAIT_MS.
"""

from __future__ import annotations

import types
from typing import Any

import aiokafka
import faust.transport.drivers.aiokafka as _driver


class _AiokafkaWithFetchWait(types.ModuleType):
    """aiokafka as faust's driver sees it, with our fetch wait for its consumers."""

    def __init__(self, fetch_max_wait_ms: int) -> None:
        super().__init__("aiokafka")
        self.fetch_max_wait_ms = fetch_max_wait_ms

    def __getattr__(self, name: str) -> Any:
        return getattr(aiokafka, name)

    def AIOKafkaConsumer(self, *args: Any, **kwargs: Any) -> aiokafka.AIOKafkaConsumer:
        kwargs["fetch_max_wait_ms"] = self.fetch_max_wait_ms
        return aiokafka.AIOKafkaConsumer(*args, **kwargs)


def use_fetch_max_wait(fetch_max_wait_ms: int) -> None:
    """Every consumer faust creates in this process from now on waits at most this long."""
    _driver.aiokafka = _AiokafkaWithFetchWait(fetch_max_wait_ms)  # type: ignore[attr-defined]
