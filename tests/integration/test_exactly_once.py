"""processing_guarantee=exactly_once: on Apache Kafka a read_committed consumer
sees every allocation exactly once, even across a SIGKILL; on the embedded
broker (no transactions) the worker refuses to start rather than pretend."""

from __future__ import annotations

from collections import Counter

from streams.samples import sample_leads
from tests.integration.pipeline import Pipeline

LEADS = 3000


async def test_exactly_once_across_a_sigkill(sqlite_pipeline: Pipeline, broker_kind: str) -> None:
    pipeline = sqlite_pipeline
    settings = pipeline.settings
    pipeline.extra_env["ALLOCATOR_PROCESSING_GUARANTEE"] = "exactly_once"
    if broker_kind == "embedded":
        worker = pipeline.start_worker(wait=False)
        assert worker.process.wait(120) != 0  # Tansu fails InitProducerId (test_broker_facts)
        return

    worker = pipeline.start_worker()
    rows = sample_leads(LEADS, seed=51)
    pipeline.produce_json(settings.topic_scored_leads, rows, "lead_id")
    pipeline.read(settings.topic_allocations, 300, 90)  # mid-stream (uncommitted ones count)...
    worker.kill()  # ...SIGKILL: open transactions are aborted by the next producer
    before = len(pipeline.read(settings.topic_allocations, 10**6, 2, committed_only=True))
    assert before < LEADS, "the worker finished before it was killed"

    pipeline.start_worker()
    seen = pipeline.read_json(settings.topic_allocations, LEADS, 180, committed_only=True)
    counts = Counter(a["event_id"] for a in seen)
    assert set(counts) == {r["event_id"] for r in rows}
    duplicates = {event: n for event, n in counts.items() if n > 1}
    assert not duplicates, f"{len(duplicates)} events seen more than once"
    everything = pipeline.read(settings.topic_allocations, 10**6, 3)  # aborted ones too
    print(
        f"exactly_once: killed with {before} of {LEADS} committed; read_committed saw each "
        f"of {len(counts)} once; {len(everything) - len(seen)} records of aborted transactions"
    )
