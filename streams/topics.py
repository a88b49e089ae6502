"""The allocator's topics on the broker: create what is missing, learn partition counts.

Topics are created explicitly with the counts the app declares: a topic that a
producer auto-creates gets the broker's default count, and the internal
fan-out topic must have as many partitions as the leads topic.
"""

from __future__ import annotations

import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError

from allocator.config import Settings, kafka_login_refusal

log = logging.getLogger(__name__)


def external_topics(settings: Settings) -> list[str]:
    return [
        settings.topic_scored_leads,
        settings.topic_conversion_patterns,
        settings.topic_allocations,
        settings.topic_dlq,
        settings.topic_send_events,
        settings.topic_lead_cancellations,
        settings.topic_resource_health,
    ]


def new_topic(settings: Settings, name: str) -> NewTopic:
    """A topic as the allocator creates it: the configured partitions and replicas."""
    return NewTopic(name, settings.topic_partitions, settings.topic_replication_factor)


async def ensure_topics(settings: Settings, names: list[str] | None = None) -> dict[str, int]:
    """Create the missing topics (`new_topic`); partition count of every topic."""
    names = names or external_topics(settings)
    options = settings.kafka_client_options()
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers, **options)
    try:
        await admin.start()
    except KafkaConnectionError:
        # The worker's first connection (prepare() runs this before faust): a
        # refused login or TLS handshake is said in one line here, rather than
        # as "Unable to bootstrap" or faust retrying it forever.
        refusal = await kafka_login_refusal(settings.kafka_bootstrap_servers, options)
        await admin.close()
        if refusal is not None:
            raise refusal from None
        raise
    try:
        existing = set(await admin.list_topics())
        missing = [n for n in names if n not in existing]
        if missing:
            log.info(
                "creating topics %s with %d partitions, %d replicas",
                missing,
                settings.topic_partitions,
                settings.topic_replication_factor,
            )
            await admin.create_topics([new_topic(settings, n) for n in missing])
        described = await admin.describe_topics(names)
        return {t["topic"]: len(t["partitions"]) for t in described}
    finally:
        await admin.close()
