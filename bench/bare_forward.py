"""The baseline: a bare faust agent that forwards every record, with the
allocator worker's batching. BENCH_AWAIT=1 also waits for each batch's
deliveries (the allocator's commit discipline); otherwise it relies on faust's
flush-before-commit, as in ../shared/guides/broker.md. BENCH_SWITCH_INTERVAL
sets Python's GIL switch interval, as the worker sets its own (1 ms; Python's
default is 5 ms). Environment: BENCH_*."""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from typing import Any

import faust

from streams.faust_adapt import use_fetch_max_wait

# The same consumer fetch wait as the allocator's workers, so that latency
# compares the agents, not the settings.
use_fetch_max_wait(int(os.environ.get("ALLOCATOR_CONSUMER_FETCH_MAX_WAIT_MS", "100")))

if os.environ.get("BENCH_SWITCH_INTERVAL"):
    sys.setswitchinterval(float(os.environ["BENCH_SWITCH_INTERVAL"]))

app = faust.App(
    os.environ["BENCH_APP_ID"],
    broker=f"kafka://{os.environ['ALLOCATOR_KAFKA_BOOTSTRAP_SERVERS']}",
    store="memory://",
    # faust's data folder, never the working directory (as the worker's ALLOCATOR_DATA_DIR)
    datadir=os.path.join(tempfile.gettempdir(), f"{os.environ['BENCH_APP_ID']}-data"),
    broker_rebalance_timeout=5.0,
    broker_session_timeout=6.0,
    broker_heartbeat_interval=1.0,
    consumer_auto_offset_reset="earliest",
)
source = app.topic(os.environ["BENCH_SOURCE"], key_serializer="raw", value_serializer="raw")
sink = os.environ["BENCH_SINK"]
await_deliveries = os.environ.get("BENCH_AWAIT") == "1"


@app.agent(source)
async def forward(stream: Any) -> None:
    async for events in stream.take_events(500, within=0.05):
        deliveries = [
            await app.producer.send(sink, e.message.key, e.message.value, None, None, None)
            for e in events
        ]
        if await_deliveries:
            await asyncio.gather(*deliveries)


@app.page("/ready")
async def ready(web: Any, request: Any) -> Any:
    ok = bool(app.consumer.assignment()) and not app.rebalancing
    return web.json({"ready": ok}, status=200 if ok else 503)


if __name__ == "__main__":
    app.main()
