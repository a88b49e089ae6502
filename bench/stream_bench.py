"""End to end: N leads through broker, worker and Redis, next to a bare faust
forwarding agent measured in the same run, on the embedded broker and on
Apache Kafka.

    python bench/stream_bench.py [--broker embedded|kafka|both] [--leads 20000]
                                 [--paced 3000] [--rate R] [--rounds 3]

Throughput: N leads are produced before the worker starts; the rate is N over
the span from the first to the last output record. Latency: with the worker
running, leads are produced at a steady rate (by default half the allocator's
throughput measured just before, the same rate for every variant of a round)
and each output's timestamp is compared with its input's (both producer create
times on this machine).

The bare agents (bench/bare_forward.py): bare sends each record with faust's
send, bare-await also waits for each batch's deliveries, and bare-1ms is bare
with the worker's GIL switch interval (1 ms, where Python's default is 5 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from aiokafka import AIOKafkaProducer

from allocator.config import Settings
from streams.kafka_local import KafkaBroker
from streams.local import (
    ALLOCATOR_COMMAND,
    SHORT_GROUP_TIMINGS,
    EmbeddedBroker,
    forget_keys,
    prepare,
    read_topic,
    start_worker,
)
from streams.samples import sample_leads
from streams.topics import ensure_topics

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Result:
    name: str
    rate: float
    p50_ms: float
    p99_ms: float
    paced_at: float  # leads/s of the latency phase


@dataclass(frozen=True)
class Load:
    """What every variant is measured with: the broker, the leads and their pace."""

    bootstrap: str
    leads: int
    paced: int
    workdir: Path


async def produce(
    bootstrap: str, topic: str, rows: list[dict[str, object]], rate: float | None = None
) -> dict[bytes, int]:
    """Send rows keyed by lead_id; returns each key's create time (ms)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=2)
    await producer.start()
    sent: dict[bytes, int] = {}
    start = time.perf_counter()
    try:
        for i, row in enumerate(rows):
            key = str(row["lead_id"]).encode()
            now_ms = int(time.time() * 1000)
            await producer.send(topic, json.dumps(row).encode(), key=key, timestamp_ms=now_ms)
            sent[key] = now_ms
            if rate:
                ahead = (i + 1) / rate - (time.perf_counter() - start)
                if ahead > 0:
                    await asyncio.sleep(ahead)
        await producer.flush()
    finally:
        await producer.stop()
    return sent


async def consume(bootstrap: str, topic: str, want: int, seconds: float) -> dict[bytes, int]:
    """key -> output create time (ms) of the first `want` records."""
    # Poll once a second: the figures come from record timestamps, and a busy
    # reader would take CPU from the worker on a 2-core machine.
    records = await read_topic(bootstrap, topic, want, seconds, pause=1.0)
    seen: dict[bytes, int] = {}
    for record in records:
        if record.key is not None:
            seen.setdefault(record.key, record.timestamp)
    return seen


async def measure(
    name: str,
    cmd: list[str],
    env: dict[str, str],
    source: str,
    sink: str,
    load: Load,
    rate: float | None,
) -> Result:
    """Throughput over a backlog, then latency at `rate` (None: half that throughput)."""
    bootstrap, leads, paced = load.bootstrap, load.leads, load.paced
    backlog = sample_leads(leads, seed=1)
    for row in backlog:
        row["event_id"] = f"{name}-{row['event_id']}"
        row["lead_id"] = f"{name}-b-{row['lead_id']}"
    await produce(bootstrap, source, backlog)
    worker = start_worker(env, load.workdir / f"{name}.log", command=cmd)
    try:
        out = await consume(bootstrap, sink, leads, 300)
        assert len(out) >= leads, f"{name}: only {len(out)} of {leads} outputs"
        span_ms = max(out.values()) - min(out.values())
        throughput = leads / max(span_ms / 1000, 1e-3)
        rate = rate or throughput / 2

        live = sample_leads(paced, seed=2)
        for row in live:
            row["event_id"] = f"{name}-p-{row['event_id']}"
            row["lead_id"] = f"{name}-p-{row['lead_id']}"
        sent = await produce(bootstrap, source, live, rate)
        out = await consume(bootstrap, sink, leads + paced, 120)
        latencies = sorted(out[k] - t for k, t in sent.items() if k in out)
        assert len(latencies) == paced, f"{name}: {len(latencies)} of {paced} paced outputs"
    finally:
        worker.stop()
    p99 = latencies[int(0.99 * (len(latencies) - 1))]
    return Result(name, throughput, statistics.median(latencies), p99, rate)


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--broker", choices=["embedded", "kafka", "both"], default="both")
    parser.add_argument("--leads", type=int, default=20000)
    parser.add_argument("--paced", type=int, default=3000)
    parser.add_argument(
        "--rate", type=float, default=None, help="paced leads/s (default: half the throughput)"
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="interleaved rounds per variant; medians are reported"
    )
    args = parser.parse_args()
    kinds = ["embedded", "kafka"] if args.broker == "both" else [args.broker]
    for kind in kinds:
        with broker_of(kind) as bootstrap:
            await bench_on(kind, bootstrap, args)


@contextlib.contextmanager
def broker_of(kind: str) -> Iterator[str]:
    if kind == "embedded":
        with EmbeddedBroker() as embedded:
            yield embedded.bootstrap
    else:
        with KafkaBroker() as kafka:
            yield kafka.bootstrap


async def bench_on(kind: str, bootstrap: str, args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="allocator-bench-"))
    run = uuid.uuid4().hex[:8]
    redis_url = "redis://127.0.0.1:6379/0"
    base = {**os.environ, **SHORT_GROUP_TIMINGS, "ALLOCATOR_KAFKA_BOOTSTRAP_SERVERS": bootstrap}

    def allocator_env(tag: str) -> dict[str, str]:
        """A worker of its own group and topics, on the shared database and Redis."""
        return {
            **base,
            "ALLOCATOR_APP_ID": f"{tag}-{run}",
            "ALLOCATOR_DATABASE_URL": f"sqlite+aiosqlite:///{workdir}/allocator.db",
            "ALLOCATOR_REDIS_URL": redis_url,
            "ALLOCATOR_QUOTA_KEY_PREFIX": f"bench:{run}:{tag}:",
            "ALLOCATOR_TOPIC_SCORED_LEADS": f"{tag}-in-{run}",
            "ALLOCATOR_TOPIC_ALLOCATIONS": f"{tag}-out-{run}",
            "ALLOCATOR_TOPIC_CONVERSION_PATTERNS": f"patterns-{run}",
            "ALLOCATOR_TOPIC_DLQ": f"dlq-{run}",
        }

    settings = Settings.from_environment(allocator_env("bench"))
    await prepare(settings)
    load = Load(bootstrap, args.leads, args.paced, workdir)
    bare_cmd = [sys.executable, str(ROOT / "bench" / "bare_forward.py")]
    rounds: dict[str, list[Result]] = {
        "allocator": [],
        "bare": [],
        "bare-await": [],
        "bare-1ms": [],
    }
    for n in range(args.rounds):
        # The allocator first: half its throughput is this round's paced rate.
        tag = f"allocator-{n}"
        env = allocator_env(tag)
        round_settings = Settings.from_environment(env)
        await ensure_topics(round_settings)
        allocator = await measure(
            tag,
            list(ALLOCATOR_COMMAND),
            env,
            round_settings.topic_scored_leads,
            round_settings.topic_allocations,
            load,
            args.rate,
        )
        rounds["allocator"].append(allocator)
        # bare-1ms: bare with the worker's GIL switch interval (streams/app.py
        # run_worker). The bare variants take turns going first, round by
        # round, so that none always runs on the warmest (or the most tired) VM.
        bares = [("bare", "0", ""), ("bare-await", "1", ""), ("bare-1ms", "0", "0.001")]
        shift = n % len(bares)
        for name, wait, switch in bares[shift:] + bares[:shift]:
            tag = f"{name}-{n}"
            env = {
                **base,
                "BENCH_AWAIT": wait,
                "BENCH_SWITCH_INTERVAL": switch,
                "BENCH_APP_ID": f"{tag}-{run}",
                "BENCH_SOURCE": f"{tag}-in-{run}",
                "BENCH_SINK": f"{tag}-out-{run}",
            }
            source, sink = env["BENCH_SOURCE"], env["BENCH_SINK"]
            await ensure_topics(settings, [source, sink])
            rounds[name].append(
                await measure(tag, bare_cmd, env, source, sink, load, allocator.paced_at)
            )
    forget_keys(redis_url, f"bench:{run}:")
    paced_at = statistics.median(r.paced_at for r in rounds["allocator"])
    print(
        f"\n{kind} broker: {args.leads} leads backlog; latency over {args.paced} leads paced "
        f"at {paced_at:,.0f} leads/s; median of {args.rounds} interleaved rounds"
    )
    print(f"{'':14}{'records/s':>12}{'p50 ms':>10}{'p99 ms':>10}   each round's records/s")
    medians = {}
    for name, results in rounds.items():
        r = Result(
            name,
            statistics.median(x.rate for x in results),
            statistics.median(x.p50_ms for x in results),
            statistics.median(x.p99_ms for x in results),
            statistics.median(x.paced_at for x in results),
        )
        medians[name] = r
        each = " ".join(f"{x.rate:,.0f}" for x in results)
        print(f"{r.name:14}{r.rate:>12,.0f}{r.p50_ms:>10.1f}{r.p99_ms:>10.1f}   {each}")
    bare, bare_await, alloc = medians["bare"], medians["bare-await"], medians["allocator"]
    print(f"allocator / bare throughput:       {alloc.rate / bare.rate:.2f}")
    print(f"allocator / bare-await throughput: {alloc.rate / bare_await.rate:.2f}")
    print(f"allocator / bare-1ms throughput:   {alloc.rate / medians['bare-1ms'].rate:.2f}")
    print(f"allocator / bare p99 latency:      {alloc.p99_ms / max(bare.p99_ms, 0.1):.2f}")


if __name__ == "__main__":
    asyncio.run(main())
