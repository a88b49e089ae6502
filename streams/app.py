"""The faust App: topics and four agents, wired to the core.

conversion-patterns --fan_out_patterns--> database, and <app>-pattern-fanout (a copy per partition)
<app>-pattern-fanout --hold_patterns--> the worker's pattern book (streams/patterns.py)
scored-leads --allocate_leads (reads the book)--> lead-allocations
send-events --apply_send_events--> lead-cancellations, resource-health (counters in Redis)
a timer (publish_lapsed_health) --> resource-health (cooldowns over, pauses lifted)
bad records of any of the three inputs --> lead-allocations-dlq
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, date, datetime
from typing import Any

import faust

from allocator.batch import BatchDecider
from allocator.channels import Channel
from allocator.config import Settings
from allocator.directory import ClientDirectory
from allocator.errors import InvalidRecord, ServiceUnavailable
from allocator.feedback import FeedbackApplier, forget_published_health, lapsed_health
from allocator.quota import Held, LeadRequest, QuotaStore, open_quota_store
from allocator.quota.base import LAPSE_LEASE_SECONDS, FeedbackOutcome, FeedbackRequest, HealthSet
from allocator.running import run_to_end
from allocator.store import Database
from allocator.store.urls import check_database_url
from streams.agents import (
    DeadLetters,
    FeedbackAgent,
    LeadAllocator,
    PatternFanOut,
    with_retry,
)
from streams.commits import Commits, PinnedTopic
from streams.faust_adapt import BatchSender, use_batched_drain, use_fetch_max_wait
from streams.metrics import Metrics
from streams.offsets import Rewinds
from streams.patterns import PatternFeed
from streams.topics import ensure_topics
from streams.web import register_pages

log = logging.getLogger(__name__)


def _brokers(servers: str) -> list[str]:
    return [f"kafka://{s.strip()}" for s in servers.split(",") if s.strip()]


class TimedQuota:
    """The quota store, with each batched reservation timed into the metrics."""

    def __init__(self, inner: QuotaStore, metrics: Metrics) -> None:
        self.inner = inner
        self._metrics = metrics

    async def reserve(self, requests: Sequence[LeadRequest]) -> list[Held]:
        with self._metrics.reservation_seconds.time():
            return await self.inner.reserve(requests)

    async def usage(
        self, channel: Channel, resource_ids: Sequence[str], day: date, *, client_id: str = ""
    ) -> list[int]:
        return await self.inner.usage(channel, resource_ids, day, client_id=client_id)

    async def increment(
        self, channel: Channel, resource_id: str, day: date, *, client_id: str = ""
    ) -> int:
        return await self.inner.increment(channel, resource_id, day, client_id=client_id)

    async def read_counters(self, client_id: str, keys: Sequence[str]) -> list[int]:
        return await self.inner.read_counters(client_id, keys)

    async def feedback(self, requests: Sequence[FeedbackRequest]) -> list[FeedbackOutcome]:
        return await self.inner.feedback(requests)

    async def health(
        self, client_id: str, resources: Sequence[tuple[Channel, str]]
    ) -> list[tuple[str, int, str]]:
        return await self.inner.health(client_id, resources)

    async def resume(
        self, client_id: str, resources: Sequence[tuple[Channel, str]], at: int
    ) -> int:
        return await self.inner.resume(client_id, resources, at)

    async def lapse(
        self,
        client_id: str,
        resources: Sequence[tuple[Channel, str]],
        now: int,
        lease: int = LAPSE_LEASE_SECONDS,
    ) -> list[HealthSet]:
        return await self.inner.lapse(client_id, resources, now, lease)

    async def lapse_published(self, client_id: str, published: Sequence[HealthSet]) -> None:
        await self.inner.lapse_published(client_id, published)

    async def close(self) -> None:
        await self.inner.close()


async def _stay_stopped(commits: Commits) -> None:
    """A restarted agent whose batch could not finish consumes nothing more:
    going on would commit past the records that batch holds."""
    log.error("agent %s stays stopped (see /health); restart the worker", commits.name)
    await asyncio.Event().wait()


async def _run_batches(
    stream: Any,
    commits: Commits,
    size: int,
    within: float,
    work: Callable[[Sequence[Any]], Awaitable[Sequence[Awaitable[Any]]]],
) -> None:
    """An agent's life: each batch through `commits` (pinned, worked, released
    in order once its deliveries are acknowledged)."""
    if commits.failure is not None:
        await _stay_stopped(commits)
    commits.bind(stream)
    try:
        async for events in stream.take_events(size, within=within):
            await commits.run(events, work)
    except BaseException as exc:
        # faust restarts an actor that ended (a crash, a cancellation) with
        # the same stream, whose old iteration may still be draining and
        # acking records: the restarted actor must not take any. Only a stop
        # of the worker ends an agent cleanly.
        if commits.failure is None and not stream.app.should_stop:
            commits.fail(exc)
        raise
    finally:
        # On a clean stop, let acknowledged batches become committable; what
        # is not acknowledged stays uncommitted and comes again.
        await commits.drain()


# faust's own commit timer and every-N-acks commit, off under exactly_once:
# commit_now_and_then (create_app) commits instead, never inside a batch.
_NEVER = 10.0**9


class AllocatorApp(faust.App):
    """faust's App, closing the services the worker opened once its agents have stopped."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.closers: list[Callable[[], Awaitable[None]]] = []
        self.commits: list[Commits] = []

    def on_init_dependencies(self) -> Iterable[Any]:
        services = super().on_init_dependencies()
        # faust adds its Monitor sensor here: four calls and a dict per
        # record, 2-3% of the worker's time on Kafka (py-spy), for faust's
        # own statistics pages (`/performance/`, and `/` under --debug),
        # which the worker does not document and which read zeros without
        # it. The worker's metrics are streams/metrics.py's, at /metrics.
        with contextlib.suppress(KeyError):  # (a faust that no longer adds it)
            self.sensors.remove(self.monitor)
        return services

    async def on_stop(self) -> None:
        stopped = [c for c in self.commits if c.failure is not None]
        if stopped:
            # faust's stop can hang on an agent whose batch never finished
            # (seen: the stop waits on its supervisor for good), and there is
            # nothing to save: that batch and everything after it are
            # uncommitted by design and come again after the restart. So a
            # worker with a stopped agent ends at once when told to stop.
            log.error(
                "stopping at once: agent %s stopped after %s", stopped[0].name, stopped[0].why
            )
            logging.shutdown()
            os._exit(1)
        await super().on_stop()

    async def on_shutdown(self) -> None:
        # mode runs on_shutdown after every child service (the agents) stopped,
        # so nothing uses the database or Redis any more.
        await super().on_shutdown()
        for close in self.closers:
            try:
                await close()
            except Exception as exc:  # closing is best effort; the process ends anyway
                log.warning("closing %s failed: %s", close, exc)


def create_app(settings: Settings, lead_partitions: int) -> faust.App:
    """Build the App; `lead_partitions` is the scored-leads topic's partition count."""
    use_fetch_max_wait(settings.consumer_fetch_max_wait_ms)
    exactly_once = settings.processing_guarantee == "exactly_once"
    # Offsets are watched without transactions (which put control records
    # between a partition's records); skips are rewound by the fetch loop.
    watch = not exactly_once
    watched = (
        settings.topic_scored_leads,
        settings.topic_conversion_patterns,
        settings.topic_send_events,
    )
    rewinds = Rewinds(frozenset(watched), settings.transactional_inputs) if watch else None
    if not use_batched_drain(rewinds):
        rewinds = None  # faust's own fetch loop makes no rewinds: skips are only said
    app = AllocatorApp(
        settings.app_id,
        broker=_brokers(settings.kafka_bootstrap_servers),
        # TLS/SASL (ALLOCATOR_KAFKA_*) for faust's consumer, producers and admin client.
        broker_credentials=settings.kafka_broker_credentials(),
        store="memory://",
        # Our topics carry our own bytes (raw, set per topic below) so that a
        # record that is not JSON reaches the agent and then the DLQ.
        key_serializer="json",
        value_serializer="json",
        topic_partitions=lead_partitions,
        topic_replication_factor=settings.topic_replication_factor,
        broker_rebalance_timeout=settings.broker_rebalance_timeout,
        broker_session_timeout=settings.broker_session_timeout,
        broker_heartbeat_interval=settings.broker_heartbeat_interval,
        broker_commit_interval=(_NEVER if exactly_once else settings.broker_commit_interval),
        broker_commit_every=(int(_NEVER) if exactly_once else 10_000),
        producer_acks=settings.producer_acks,
        producer_linger_ms=settings.producer_linger_ms,
        producer_max_batch_size=settings.producer_max_batch_size,
        web_port=settings.web_port,
        datadir=str(settings.data_dir / f"{settings.app_id}-data"),
        consumer_auto_offset_reset="earliest",
        processing_guarantee=settings.processing_guarantee,
    )
    if settings.redis_url.startswith("memory://"):
        log.warning(
            "quota counters are in this process's memory (ALLOCATOR_REDIS_URL=%s): "
            "run one worker only",
            settings.redis_url,
        )
    metrics = Metrics()
    database = Database(settings.database_url)
    quota = TimedQuota(
        open_quota_store(
            settings.redis_url, settings.quota_key_prefix, settings.quota_retention_days
        ),
        metrics,
    )
    app.closers += [quota.close, database.close]
    directory = ClientDirectory(database.load_snapshot, ttl=settings.resource_cache_seconds)
    decider = BatchDecider(directory, quota, settings.schedule())

    raw: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}
    # The topics whose agents commit through `Commits`: pinned on arrival.
    leads_topic = PinnedTopic(app, topics=[settings.topic_scored_leads], **raw)
    patterns_topic = PinnedTopic(app, topics=[settings.topic_conversion_patterns], **raw)
    send_events_topic = PinnedTopic(app, topics=[settings.topic_send_events], **raw)
    fanout_topic = app.topic(
        f"{settings.app_id}-pattern-fanout", partitions=lead_partitions, internal=True, **raw
    )
    feed = PatternFeed(database.load_patterns)

    @app.on_partitions_assigned.connect
    async def on_assigned(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        feed.reassigned()  # the next lead batch first merges the database's patterns
        for commits in app.commits:
            commits.reassigned()
        if rewinds is not None:
            rewinds.reassigned()

    def send(
        topic: str, key: bytes | None, value: bytes, partition: int | None, source: Any
    ) -> Any:
        # exactly_once: faust runs one Kafka transaction per consumed partition
        # ("<app id>-<partition group>-<partition>") and commits that
        # partition's offsets in it; a record must join its *source*
        # partition's transaction, not the one its own key would pick.
        transactional_id = None
        if exactly_once:
            group = app.assignor.group_for_topic(source.topic)
            transactional_id = f"{app.conf.id}-{group}-{source.partition}"
        return app.producer.send(
            topic, key, value, partition, None, None, transactional_id=transactional_id
        )

    batches = BatchSender(app.producer)

    async def send_many(
        topic: str, records: Sequence[tuple[bytes, bytes, Any]]
    ) -> Sequence[Awaitable[Any]]:
        if exactly_once:  # each record joins its source partition's transaction
            return [await send(topic, key, value, None, tp) for key, value, tp in records]
        return [batches.send(topic, [(key, value) for key, value, _ in records])]

    dead_letters = DeadLetters(send, settings.topic_dlq, metrics)
    # exactly_once: a batch's records must be sent inside its turn of the lock
    # (between_batches below), so its work is not left to run in the background.
    allocator = LeadAllocator(
        decider,
        feed,
        send_many,
        settings.topic_allocations,
        dead_letters,
        metrics,
        pipelined=not exactly_once,
    )
    fan_out = PatternFanOut(
        database, send, fanout_topic.get_topic_name(), lead_partitions, dead_letters, metrics
    )
    feedback = FeedbackAgent(
        FeedbackApplier(directory, quota),
        send,
        settings.topic_lead_cancellations,
        settings.topic_resource_health,
        dead_letters,
        metrics,
    )
    # Outlive faust's restarts of a crashed agent, so that the restart cannot
    # go on past the batch that failed.
    # exactly_once: committing a partition's transaction commits every record
    # sent in it, so a commit must never fall inside a lead batch (allocations
    # sent, the batch's offsets not yet acked). Lead batches run whole under a
    # lock, one at a time, and every commit faust makes (its timer, every N
    # acks, the wait on a rebalance or a stop) takes the same lock. Pattern
    # batches run outside it: a copy sent twice changes nothing, and a pattern
    # waiting for the database must not hold up the leads.
    between_batches = asyncio.Lock() if exactly_once else None
    limit = 0 if exactly_once else 4

    def commits_of(name: str, exclusive: asyncio.Lock | None) -> Commits:
        skipped = metrics.skipped_offsets.labels(name)
        return Commits(name, None, limit, exclusive, watch, rewinds, skipped.inc)

    lead_commits = commits_of("allocate_leads", between_batches)
    pattern_commits = commits_of("fan_out_patterns", None)
    # Feedback batches run under the same lock as lead batches under
    # exactly_once: each sends records that its partition's commit must cover.
    feedback_commits = commits_of("apply_send_events", between_batches)

    if between_batches is not None:

        @app.task
        async def commit_between_batches() -> None:
            consumer = app.consumer
            commit = consumer.commit

            async def between(*args: Any, **kwargs: Any) -> Any:
                # A batch's acks happen as its agent returns from it, without
                # yielding to the loop, so once the lock is free every released
                # batch is committable and no record of a later one is sent yet.
                async with between_batches:
                    return await commit(*args, **kwargs)

            consumer.commit = between  # type: ignore[method-assign]  # every commit path

        @app.timer(settings.broker_commit_interval)
        async def commit_now_and_then() -> None:
            await app.consumer.commit()  # between batches (above)

    @app.task
    async def never_wait_for_a_stopped_agent() -> None:
        # A stopped agent's records are never acked (streams/commits.py): a
        # rebalance must not wait for them.
        Commits.never_wait_for_stopped(app.consumer, app.commits)

    @app.timer(settings.health_lapse_seconds)
    async def publish_lapsed_health() -> None:
        # A cooldown that ends, or a pause lifted by `resources load`, is a
        # change of state too. Each is claimed in Redis by one worker
        # (atomically), published, and then forgotten; if that worker dies in
        # between, another takes it again once the claim's lease is over.
        try:
            changes = await lapsed_health(directory, quota, datetime.now(UTC))
        except ServiceUnavailable as exc:
            log.warning("health lapses not read (%s); trying again later", exc)
            return
        for change in changes:
            metrics.health_changes.labels(change.channel.value, change.state).inc()
            delivery = await app.producer.send(
                settings.topic_resource_health,
                change.resource_id.encode(),
                change.model_dump_json().encode(),
                None,
                None,
                None,
                transactional_id=None,  # no input record to commit with
            )
            await delivery
        try:
            await forget_published_health(quota, changes)
        except ServiceUnavailable as exc:  # claimed again after the lease: a duplicate, not a loss
            log.warning("published health lapses not forgotten (%s)", exc)

    @app.agent(patterns_topic, name="fan_out_patterns")
    async def fan_out_patterns(stream: Any) -> None:
        await _run_batches(stream, pattern_commits, 100, 0.05, fan_out.persist_and_copy)

    @app.agent(fanout_topic, name="hold_patterns")
    async def hold_patterns(stream: Any) -> None:
        async for event in stream.events():
            message = event.message
            try:
                feed.hold(message.value)
            except InvalidRecord as exc:
                # Only fan_out_patterns writes here, after validating; anything
                # else is someone else's record on our internal topic: skip it.
                log.error(
                    "ignoring a foreign record on %s at offset %s: %s",
                    message.topic,
                    message.offset,
                    exc,
                )

    @app.agent(send_events_topic, name="apply_send_events")
    async def apply_send_events(stream: Any) -> None:
        await _run_batches(
            stream, feedback_commits, settings.batch_size, settings.batch_seconds, feedback.apply
        )

    @app.agent(leads_topic, name="allocate_leads")
    async def allocate_leads(stream: Any) -> None:
        await _run_batches(
            stream, lead_commits, settings.batch_size, settings.batch_seconds, allocator.decide
        )

    @app.task
    async def announce() -> None:
        # After faust has set up logging (-l), before the first batch.
        log.info("allocator worker: %s", settings.described())
        snapshot = await with_retry("load_clients", directory.snapshot, metrics)
        resources = sum(len(setup.resources) for setup in snapshot.values())
        log.info("loaded %d clients and %d resources", len(snapshot), resources)
        # What is alive now (modules, the app, faust's and aiokafka's
        # machinery) mostly lives as long as the worker: kept out of the cycle
        # collector, whose full collections walked it all again and were about
        # 10% of a worker's CPU in stream_bench (0.57 s of 5.6 s; 0.18 s
        # after). Frozen objects are still freed by reference counting when
        # dropped (the first clients snapshot at its reload); only one in a
        # reference cycle would be kept, a one-time cost. The agents may have
        # begun their first batch meanwhile: it does not matter when this runs.
        gc.freeze()

    app.commits += [lead_commits, pattern_commits, feedback_commits]
    register_pages(app, metrics, app.commits)
    return app


async def prepare(settings: Settings) -> dict[str, int]:
    """Before faust starts: the tables exist and the topics exist. (A missing table
    is not a transient failure, so no batch may run before the schema.)"""
    check_database_url(settings.database_url)
    async with Database(settings.database_url):  # its own engine: engines bind to a loop
        pass
    return await ensure_topics(settings)


def run_worker(argv: list[str]) -> int:
    """`allocator worker [faust worker options]`: make sure topics exist, then run faust."""
    settings = Settings()
    # (`allocator worker --help` is answered before this: streams/commands/worker.py)
    counts = run_to_end(prepare(settings))
    partitions = counts[settings.topic_scored_leads]
    app = create_app(settings, partitions)
    # faust's Kafka consumer runs in a thread of its own, and every fetch
    # passes between it and the agents' thread. Python hands the GIL to a
    # waiting thread every switch interval (5 ms by default), so while the
    # agents decide, a fetch's hand-over could wait that long. At 1 ms the
    # worker allocated 4.5% more leads a second on Kafka (medians of 4
    # alternated runs of 30,000 leads; a noisier 3 showed 22%).
    sys.setswitchinterval(0.001)
    sys.argv = ["allocator", "worker", *argv]
    app.main()
    return 0
