"""Prometheus metrics of the worker (exposed at /metrics by streams.web)."""

from __future__ import annotations

from collections import Counter as TallyCounter
from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from allocator.channels import reported_status
from allocator.decision import Decision
from allocator.feedback import Applied


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.allocations = Counter(
            "allocator_channel_allocations",
            "Channel entries of emitted allocations; status deferred = allocated on a later day",
            ["tier", "channel", "status"],
            registry=self.registry,
        )
        self.reasons = Counter(
            "allocator_channel_reasons",
            "Channel entries not at their first slot, by channel and reason code "
            "(CONTRACT.md section 11: deferred_full, deferred_weekly, ...)",
            ["channel", "code"],
            registry=self.registry,
        )
        self.send_events = Counter(
            "allocator_send_events",
            "Send-events applied, by kind (CONTRACT.md section 10; dead letters not counted)",
            ["kind"],
            registry=self.registry,
        )
        self.cancellations = Counter(
            "allocator_cancellations",
            "Sends cancelled because their lead stopped, by channel and reason",
            ["channel", "reason"],
            registry=self.registry,
        )
        self.refunds = Counter(
            "allocator_refunds",
            "Sends whose counts were given back (failed or cancelled)",
            registry=self.registry,
        )
        self.health_changes = Counter(
            "allocator_resource_health_changes",
            "Changes of a resource's health, by channel and new state",
            ["channel", "state"],
            registry=self.registry,
        )
        self.leads = Counter(
            "allocator_leads", "Allocations emitted, by tier", ["tier"], registry=self.registry
        )
        self.dead_letters = Counter(
            "allocator_dead_letters",
            "Input records sent to the DLQ",
            ["source_topic", "error_code"],
            registry=self.registry,
        )
        self.unknown_client_leads = Counter(
            "allocator_unknown_client_leads",
            "Leads whose client is not in the database (decided with no resources)",
            registry=self.registry,
        )
        self.reservation_seconds = Histogram(
            "allocator_reservation_seconds",
            "Time of one batched quota reservation round trip",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "allocator_batch_leads",
            "Leads decided per batch",
            buckets=(1, 10, 50, 100, 250, 500, 1000),
            registry=self.registry,
        )
        self.retries = Counter(
            "allocator_transient_failures",
            "Redis or database failures retried with backoff",
            ["operation"],
            registry=self.registry,
        )
        self.skipped_offsets = Counter(
            "allocator_skipped_offsets",
            "Offsets found skipped by an agent, which had the partition read again from "
            "the first of them; counted as the gap opens (streams/offsets.py)",
            ["agent"],
            registry=self.registry,
        )
        self.consumer_lag = Gauge(
            "allocator_consumer_lag",
            "Records behind the high watermark, per assigned partition",
            ["topic", "partition"],
            registry=self.registry,
        )

    def record_feedback(self, applied: Sequence[Applied]) -> None:
        for one in applied:
            self.send_events.labels(one.event.kind).inc()
            if one.refunded:
                self.refunds.inc(one.refunded)
            for c in one.cancellations:
                self.cancellations.labels(c.channel.value, c.reason).inc()
            for h in one.health:
                self.health_changes.labels(h.channel.value, h.state).inc()

    def record_batch(self, decisions: Sequence[Decision]) -> None:
        # Counted per batch, then one increment per label set: labels() costs
        # more than the counting. Tallied as the entries' own values (one
        # C-level Counter pass), turned into label text once per distinct
        # set: enum values and the reported status per entry cost more.
        leads = TallyCounter([decision.allocation.als_tier for decision in decisions])
        entries = TallyCounter(
            [
                (
                    decision.allocation.als_tier,
                    entry.channel,
                    entry.status,
                    steps,
                    None if entry.reason is None else entry.reason.code,
                )
                for decision in decisions
                for entry, steps in zip(
                    decision.allocation.channels, decision.deferrals, strict=True
                )
            ]
        )
        for tier, count in leads.items():
            self.leads.labels(tier.value).inc(count)
        statuses: TallyCounter[tuple[str, str, str]] = TallyCounter()
        reasons: TallyCounter[tuple[str, str]] = TallyCounter()
        for (tier, channel, status, steps, code), count in entries.items():
            statuses[(tier.value, channel.value, reported_status(status, steps))] += count
            if code is not None:
                reasons[(channel.value, code)] += count
        for labels, count in statuses.items():
            self.allocations.labels(*labels).inc(count)
        for (name, code), count in reasons.items():
            self.reasons.labels(name, code).inc(count)
        self.batch_size.observe(len(decisions))
