"""The README's "Running it by hand", command by command, as a newcomer types it
(with the short group timings, so that the worker joins in seconds)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from streams.local import ALLOCATOR_COMMAND, SHORT_GROUP_TIMINGS, free_port, start_worker


def test_the_walkthrough_works_as_written(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        **SHORT_GROUP_TIMINGS,
        "ALLOCATOR_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{port}",
        "ALLOCATOR_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/allocator.db",
        "ALLOCATOR_REDIS_URL": "memory://",
        "ALLOCATOR_APP_ID": f"walk-{port}",
    }

    def allocator(*args: str) -> str:
        done = subprocess.run(
            [*ALLOCATOR_COMMAND, *args],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, (args, done.stderr)
        return done.stdout

    broker = subprocess.Popen(
        [*ALLOCATOR_COMMAND, "broker", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert broker.stdout is not None
        assert f"127.0.0.1:{port}" in broker.stdout.readline()  # it says where it listens
        allocator("samples", "samples")
        assert allocator("clients", "load", "samples/clients.jsonl").startswith("loaded 3 ")
        allocator("resources", "load", "samples/resources.jsonl")
        allocator("topics", "create")
        worker = start_worker(env, tmp_path / "worker.log")
        try:
            allocator("send", "samples/patterns.jsonl", "--topic", "conversion-patterns")
            time.sleep(2)  # patterns first, as the walkthrough's order has them
            allocator("send", "samples/leads.jsonl")
            lines = allocator("read", "--limit", "50", "--seconds", "60").splitlines()
            assert len(lines) == 50
            allocations = [json.loads(line) for line in lines]
            assert {a["lead_id"] for a in allocations} == {
                json.loads(row)["lead_id"]
                for row in (tmp_path / "samples" / "leads.jsonl").read_text().splitlines()
            }
            assert any(a["sequence_source"] == "pattern" for a in allocations)
            assert "0 dead letter" in allocator("dlq", "show")
        finally:
            worker.stop()
        allocator(
            "replay",
            "--leads",
            "samples/leads.jsonl",
            "--patterns",
            "samples/patterns.jsonl",
            "--clients",
            "samples/clients.jsonl",
            "--resources",
            "samples/resources.jsonl",
            "--out",
            "allocations.jsonl",
            "--report",
            "report/",
            "--quiet",
        )
        assert len((tmp_path / "allocations.jsonl").read_text().splitlines()) == 50
        assert (tmp_path / "report" / "index.html").exists()
    finally:
        broker.terminate()
        broker.wait(10)
