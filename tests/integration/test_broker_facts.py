"""Facts about the broker that the design depends on, checked rather than assumed.

Transactions (and so faust's processing_guarantee="exactly_once") are not
supported by the embedded Tansu 0.6.0: InitProducerId for a transactional id
fails. On Apache Kafka the same test expects them to work. The service's own
guarantee, effectively-once through idempotent reservations and
commit-after-produce, needs neither (topics.md).
"""

from __future__ import annotations

import uuid

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError


async def test_transactions_on_this_broker(broker_bootstrap: str, broker_kind: str) -> None:
    topic = f"txn-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=broker_bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, 1, 1)])
    await admin.close()
    producer = AIOKafkaProducer(
        bootstrap_servers=broker_bootstrap, transactional_id=f"tx-{uuid.uuid4().hex[:8]}"
    )
    try:
        await producer.start()
        async with producer.transaction():
            await producer.send(topic, b"x")
        supported = True
    except KafkaError:
        supported = False
    finally:
        await producer.stop()
    assert supported is (broker_kind != "embedded")
