"""The commands of the README's walkthrough, for running the worker by hand:
an embedded broker in the foreground, sample files, and sending and reading
records of a topic."""

from __future__ import annotations

import json
import shutil
import signal
import sys
from pathlib import Path

from aiokafka import AIOKafkaProducer

from allocator.config import Settings
from allocator.files import read_lines
from allocator.running import run_to_end
from streams.broker import EmbeddedBroker
from streams.commands.errors import USAGE, CommandError
from streams.local import read_topic
from streams.samples import SAMPLES_DIR, sample_leads, sample_patterns


def broker(port: int) -> int:
    """Run the embedded broker until Ctrl-C (or SIGTERM)."""
    with EmbeddedBroker(port=port) as running:
        print(f"embedded broker (Tansu) at {running.bootstrap}; for the other commands:")
        print(f"  export ALLOCATOR_KAFKA_BOOTSTRAP_SERVERS={running.bootstrap}")
        print("Ctrl-C stops it; it keeps its topics in memory only.", flush=True)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        try:
            assert running.process is not None
            running.process.wait()
        except KeyboardInterrupt:
            pass
    return 0


def samples(folder: Path, leads: int) -> int:
    """clients.jsonl, resources.jsonl, patterns.jsonl and leads.jsonl in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("clients.jsonl", "resources.jsonl"):
        shutil.copyfile(SAMPLES_DIR / name, folder / name)
    rows = {"patterns.jsonl": sample_patterns(), "leads.jsonl": sample_leads(leads)}
    for name, records in rows.items():
        (folder / name).write_text("".join(json.dumps(r) + "\n" for r in records))
    print(f"wrote clients, resources, patterns and {leads} leads to {folder}/")
    return 0


def send(path: Path, topic: str | None, settings: Settings) -> int:
    """Each JSON Lines record of the file to the topic (scored leads unless named),
    keyed as the contract keys it: lead_id, or client_id on the patterns topic."""
    topic = topic or settings.topic_scored_leads
    field = "client_id" if topic == settings.topic_conversion_patterns else "lead_id"
    records: list[tuple[bytes | None, bytes]] = []
    for _, line in read_lines(path):
        value = line.rstrip(b"\r\n")
        try:
            key = json.loads(value).get(field)
        except (ValueError, AttributeError):
            key = None  # sent as it is: a bad record is the worker's to dead-letter
        records.append((None if key is None else str(key).encode(), value))

    async def produce() -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            **settings.kafka_client_options(),
        )
        await producer.start()
        try:
            for key, value in records:
                await producer.send(topic, value, key=key)
            await producer.flush()
        finally:
            await producer.stop()

    run_to_end(produce())
    print(f"sent {len(records)} records of {path} to {topic}")
    return 0


def read(topic: str | None, limit: int, seconds: float, settings: Settings) -> int:
    """Up to `limit` records of the topic (allocations unless named), one JSON line each."""
    if limit < 1:
        raise CommandError(f"--limit {limit}: give 1 or more", USAGE)
    topic = topic or settings.topic_allocations
    found = run_to_end(
        read_topic(
            settings.kafka_bootstrap_servers,
            topic,
            limit,
            seconds,
            client_options=settings.kafka_client_options(),
        )
    )
    for record in found[:limit]:
        print(record.value.decode("utf-8", "replace"))
    print(f"{min(len(found), limit)} records of {topic}", file=sys.stderr)
    return 0
