"""A real consumer skipping records, through a real broker: records of a
partition deleted (as retention deletes them) while its worker was down. On
restart the consumer's committed offset is gone from the log and it starts at
the new log start; the worker says which offsets it never consumed, reads the
partition again from there twice (streams/offsets.py), accepts that they
hold nothing, allocates everything after, and commits past them."""

from __future__ import annotations

import json
import time

import pytest
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient

from streams.samples import sample_leads
from tests import services
from tests.integration.expect import assert_each_once
from tests.integration.pipeline import Pipeline

BEFORE, GONE, AFTER = 60, 50, 80


# Not on the embedded broker: Tansu 0.6 does not implement DeleteRecords
# (measured: the call ends with the broker's connection dropped, and the
# broker with it).
@pytest.mark.parametrize(
    "broker_kind", [k for k in services.broker_kinds() if k != "embedded"], indirect=True
)
async def test_records_deleted_while_a_worker_was_down_are_said_and_passed(
    sqlite_pipeline: Pipeline, broker_kind: str
) -> None:
    pipeline = sqlite_pipeline
    topic = pipeline.settings.topic_scored_leads
    rows = sample_leads(BEFORE + GONE + AFTER, seed=47)
    before, gone, after = rows[:BEFORE], rows[BEFORE : BEFORE + GONE], rows[BEFORE + GONE :]

    def produce(part: list[dict[str, object]]) -> None:
        records = [(str(r["lead_id"]).encode(), json.dumps(r).encode()) for r in part]
        pipeline.produce(topic, records, partition=0)  # offsets known: one partition

    worker = pipeline.start_worker()
    produce(before)
    pipeline.every_copy({str(r["event_id"]) for r in before}, 120)
    assert committed_at(pipeline, topic, BEFORE) == BEFORE
    worker.stop()

    produce(gone)
    produce(after)
    admin = AdminClient({"bootstrap.servers": pipeline.bootstrap, **pipeline.client_config})
    futures = admin.delete_records([TopicPartition(topic, 0, BEFORE + GONE)])
    for future in futures.values():
        assert future.result(timeout=30).low_watermark == BEFORE + GONE  # the new log start

    worker = pipeline.start_worker()
    wanted = {str(r["event_id"]) for r in after}
    every = pipeline.every_copy(wanted, 180)
    assert_each_once(every, wanted)  # the rewinds read them again: identical copies
    emitted = pipeline.read_json(pipeline.settings.topic_allocations, 10**6, 3)
    assert not {a["event_id"] for a in emitted} & {str(r["event_id"]) for r in gone}

    said = pipeline.worker_lines("were never consumed")
    assert len(said) == 1 and f"offsets {BEFORE}..{BEFORE + GONE - 1} of" in said[0], said
    accepted = pipeline.worker_lines("hold no records")
    assert len(accepted) == 1 and f"offsets {BEFORE}..{BEFORE + GONE - 1} of" in accepted[0]
    assert f'allocator_skipped_offsets_total{{agent="allocate_leads"}} {GONE}.0' in (
        worker.metrics()
    )
    end = BEFORE + GONE + AFTER
    assert committed_at(pipeline, topic, end) == end  # past the gap, not stalled at it
    print(f"{broker_kind}: offsets {BEFORE}..{BEFORE + GONE - 1} deleted; {said[0]}")


def committed_at(pipeline: Pipeline, topic: str, offset: int) -> int:
    """Partition 0's committed offset once it is `offset`, or after a minute."""
    deadline = time.monotonic() + 60
    while (now := pipeline.committed(topic).get(0, -1)) != offset and time.monotonic() < deadline:
        time.sleep(0.5)
    return now
