"""Replay against real services: the live counters stay untouched, and a topic
replay over the embedded broker equals the file replay of the same records."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis as redis_sync
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from allocator.replay.sources import Bound, read_topic
from streams.cli import main
from tests.replay_data import count_split_runs, replay_args, write_history

LIVE_KEYS = [
    "ratelimit:email:mail.acme.io:daily:2026-11-26",
    "ratelimit:linkedin:acme-seat-1:daily:2026-11-27",
    "ratelimit:email:globex.de:daily:2026-11-27",
]


def snapshot_live(client: redis_sync.Redis) -> dict[str, object]:
    keys = [*LIVE_KEYS, *client.keys("ratelimit:*"), *client.keys("allocator:reservation:*")]
    return {k: client.get(k) for k in sorted(set(map(str, keys)))}


@pytest.mark.parametrize("mode", ["memory", "redis-namespace"])
def test_replay_never_touches_live_counters(
    mode: str, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = redis_sync.Redis.from_url(redis_url, decode_responses=True)
    # live counters as a running worker would have them
    for key in LIVE_KEYS:
        client.set(key, 7, ex=600)
    before = snapshot_live(client)
    namespace = f"t{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("ALLOCATOR_REDIS_URL", redis_url)
    merged = count_split_runs(monkeypatch)  # split, except with counters in Redis
    paths = write_history(tmp_path, bad=False)
    extra = ["--redis-namespace", namespace] if mode == "redis-namespace" else []
    try:
        assert main(replay_args(paths, tmp_path / "out.jsonl", *extra)) == 0
        assert snapshot_live(client) == before
        replay_keys = client.keys(f"replay:{namespace}:*")
        assert bool(replay_keys) == (mode == "redis-namespace")
        # the same decisions either way
        assert main(replay_args(paths, tmp_path / "memory.jsonl")) == 0
        assert (tmp_path / "out.jsonl").read_bytes() == (tmp_path / "memory.jsonl").read_bytes()
        assert merged == ([2, 2] if mode == "memory" else [2])
    finally:
        for key in [*LIVE_KEYS, *client.keys(f"replay:{namespace}:*")]:
            client.delete(key)
        client.close()


def test_topic_replay_equals_file_replay(
    broker_bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = write_history(tmp_path, leads=600, bad=False, pattern_time="2026-11-26T16:00:00+00:00")
    run = uuid.uuid4().hex[:8]
    leads_topic, patterns_topic = f"replay-leads-{run}", f"replay-patterns-{run}"
    admin = AdminClient({"bootstrap.servers": broker_bootstrap})
    for future in admin.create_topics(
        [NewTopic(leads_topic, 4, 1), NewTopic(patterns_topic, 1, 1)]
    ).values():
        future.result(30)
    # Record times follow the file's order, so "input order" is the same for both.
    base_ms = int(datetime(2026, 11, 26, tzinfo=UTC).timestamp() * 1000)
    producer = Producer({"bootstrap.servers": broker_bootstrap})
    lead_lines = paths["leads"].read_text().splitlines()
    for i, line in enumerate(lead_lines):
        producer.produce(
            leads_topic, key=json.loads(line)["lead_id"], value=line, timestamp=base_ms + i
        )
    for i, line in enumerate(paths["patterns"].read_text().splitlines()):
        producer.produce(
            patterns_topic, key=json.loads(line)["client_id"], value=line, timestamp=base_ms + i
        )
    assert producer.flush(30) == 0
    monkeypatch.setenv("ALLOCATOR_KAFKA_BOOTSTRAP_SERVERS", broker_bootstrap)

    assert main(replay_args(paths, tmp_path / "file.jsonl")) == 0
    topic_args = [
        "replay",
        "--leads-topic",
        leads_topic,
        "--patterns-topic",
        patterns_topic,
        "--clients",
        str(paths["clients"]),
        "--resources",
        str(paths["resources"]),
        "--out",
        str(tmp_path / "topic.jsonl"),
        "--quiet",
    ]
    assert main(topic_args) == 0
    assert (tmp_path / "topic.jsonl").read_bytes() == (tmp_path / "file.jsonl").read_bytes()

    # A window by record time: exactly the leads produced in it.
    start = datetime.fromtimestamp((base_ms + 100) / 1000, UTC).isoformat()
    end = datetime.fromtimestamp((base_ms + 200) / 1000, UTC).isoformat()
    window = tmp_path / "window.jsonl"
    assert (
        main([*topic_args[:-3], "--out", str(window), "--quiet", "--from", start, "--to", end]) == 0
    )
    got = [json.loads(x)["event_id"] for x in window.read_text().splitlines()]
    assert got == [json.loads(x)["event_id"] for x in lead_lines[100:200]]


async def test_a_topic_is_read_to_its_true_end(broker_bootstrap: str, broker_kind: str) -> None:
    """Kafka: a transaction's commit marker takes the last offset of each
    partition and no consumer is given it; the reader ends there (it used to
    wait for its idle limit, and would now call that a stall, an error).
    Tansu, which has no transactions: it reports the end of a partition as
    its last batch's first offset + 1, and the reader still returns every
    record of that batch."""
    topic = f"replay-end-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": broker_bootstrap})
    for future in admin.create_topics([NewTopic(topic, 2, 1)]).values():
        future.result(30)
    config = {"bootstrap.servers": broker_bootstrap, "linger.ms": 50}
    if broker_kind != "embedded":
        config["transactional.id"] = f"tx-{topic}"
    producer = Producer(config)
    if broker_kind != "embedded":
        producer.init_transactions(30)
        producer.begin_transaction()
    for i in range(40):
        producer.produce(topic, key=f"k{i}", value=json.dumps({"n": i}))
        if i % 10 == 9:
            producer.flush(30)  # batches of several records
    if broker_kind != "embedded":
        producer.commit_transaction(30)
    assert producer.flush(30) == 0
    records = await read_topic(broker_bootstrap, topic, None, None, idle_ms=5_000)
    assert sorted(json.loads(r[3])["n"] for r in records) == list(range(40))


async def test_a_time_window_holds_records_whose_times_are_out_of_order(
    broker_bootstrap: str,
) -> None:
    """Record times are the producers': a record inside the window may come
    after one past its end (a producer's own times, or a batch retried after
    a newer one). The window holds every record inside it, in time order."""
    topic = f"replay-order-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": broker_bootstrap})
    for future in admin.create_topics([NewTopic(topic, 1, 1)]).values():
        future.result(30)
    base_ms = int(datetime(2026, 11, 26, tzinfo=UTC).timestamp() * 1000)
    times = [50, 120, 300, 150, 90, 199, 200, 170]  # ms after base, in offset order
    producer = Producer({"bootstrap.servers": broker_bootstrap})
    for n, at in enumerate(times):
        producer.produce(topic, key=f"k{n}", value=json.dumps({"n": n}), timestamp=base_ms + at)
        producer.flush(30)  # one batch each, in this order
    start = Bound(at=datetime.fromtimestamp((base_ms + 100) / 1000, UTC))
    end = Bound(at=datetime.fromtimestamp((base_ms + 200) / 1000, UTC))
    records = await read_topic(broker_bootstrap, topic, start, end, idle_ms=5_000)
    assert [r[2] - base_ms for r in records] == [120, 150, 170, 199]
