"""faust's hard-coded consumer fetch wait becomes our setting."""

from __future__ import annotations

from collections.abc import Iterator

import aiokafka
import faust.transport.drivers.aiokafka as driver
import pytest

from streams.faust_adapt import use_fetch_max_wait


@pytest.fixture
def restored() -> Iterator[None]:
    yield
    driver.aiokafka = aiokafka  # type: ignore[attr-defined]


async def test_faust_consumers_get_the_configured_fetch_wait(restored: None) -> None:
    use_fetch_max_wait(123)
    # faust's driver builds its consumers as aiokafka.AIOKafkaConsumer(..., fetch_max_wait_ms=1500)
    consumer = driver.aiokafka.AIOKafkaConsumer(
        bootstrap_servers="127.0.0.1:9", fetch_max_wait_ms=1500
    )
    assert consumer._fetch_max_wait_ms == 123
    assert driver.aiokafka.TopicPartition is aiokafka.TopicPartition  # the rest is aiokafka's
