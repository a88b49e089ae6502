"""Instructions Redis executes per reservation, counted by valgrind (callgrind):
a figure that does not move with the machine's speed, where quota_bench.py's
reservations per second move by a third between runs on a shared VM.

    python bench/quota_instructions.py [--leads 5000] [--batch 500]

Starts its own redis-server under `valgrind --tool=callgrind` on a free port
(valgrind and redis-server must be on PATH), reserves the same leads as
quota_bench.py's three batched cases through RedisQuotaStore.reserve, and
prints per lead the instructions the Redis process ran for them (the script,
the commands it calls, reading the call off the socket, writing the answer),
with each case's ratio to the day counters only. The client's own work is not
counted: it runs in this process, beside Redis, and quota_bench.py times both.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis.exceptions
from quota_bench import ROOMY_DAY, ROUND2, bench_requests  # (bench/ is this script's own directory)
from redis import Redis

from allocator.quota import LeadRequest
from allocator.quota.redis_store import RedisQuotaStore
from streams.broker import free_port


class CountedRedis:
    """A redis-server under callgrind, counting only between zero() and total()."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self._dir = directory
        self._process = subprocess.Popen(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={directory}/callgrind.out",
                "redis-server",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                # Redis's timer (expiry sampling, stats) runs hz times a second
                # whatever the load: at its least, under valgrind's slowness it
                # adds ~200 instructions a lead rather than ~2,000.
                "--hz",
                "1",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = Redis(port=self.port, retry=None)
        try:
            for _ in range(600):  # valgrind starts Redis in some seconds
                try:
                    client.ping()
                    break
                except redis.exceptions.ConnectionError:
                    time.sleep(0.1)
            else:
                raise SystemExit("redis-server under valgrind did not answer within a minute")
        except BaseException:
            self.stop()
            raise
        finally:
            client.close()

    def _control(self, *args: str) -> None:
        subprocess.run(
            ["callgrind_control", *args, str(self._process.pid)], check=True, capture_output=True
        )

    def zero(self) -> None:
        self._control("-z")

    def total(self) -> int:
        """Instructions since zero(), from a dump made now."""
        before = set(self._dir.iterdir())
        self._control("-d")
        for _ in range(200):  # the dump may still be being written: until its total is there
            for made in set(self._dir.iterdir()) - before:
                for line in made.read_text().splitlines():
                    if line.startswith(("summary:", "totals:")):
                        made.unlink()
                        return int(line.split()[1])
            time.sleep(0.05)
        raise RuntimeError("callgrind wrote no dump with a total within 10 s")

    def stop(self) -> None:
        self._process.terminate()
        self._process.wait(timeout=60)


async def _reserve(
    counted: CountedRedis, prefix: str, requests: list[LeadRequest], batch: int
) -> None:
    store = RedisQuotaStore.from_url(f"redis://127.0.0.1:{counted.port}/0", prefix=prefix)
    await store.reserve(requests[:batch])  # the script loaded, the connection made: not counted
    counted.zero()
    for i in range(batch, len(requests), batch):
        await store.reserve(requests[i : i + batch])
    await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--leads", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    for tool in ("valgrind", "callgrind_control", "redis-server"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not on PATH (Debian: apt install valgrind redis-server)")
    cases = {
        "day counters only": bench_requests(args.leads + args.batch, ROOMY_DAY),
        "round 2's counters": bench_requests(args.leads + args.batch, ROUND2, caps=True),
        "... and lead id, as the worker": bench_requests(
            args.leads + args.batch, ROUND2, caps=True, lead_info=True
        ),
    }
    with tempfile.TemporaryDirectory() as directory:
        counted = CountedRedis(Path(directory))
        try:
            per_lead: dict[str, float] = {}
            for n, (name, requests) in enumerate(cases.items()):
                asyncio.run(_reserve(counted, f"c{n}:", requests, args.batch))
                per_lead[name] = counted.total() / args.leads
        finally:
            counted.stop()
    base = per_lead["day counters only"]
    print(f"{args.leads} reservations over 5 resources, batches of {args.batch}, in Redis:")
    for name, value in per_lead.items():
        print(f"  {name:<32} {value:>9,.0f} instructions a lead  {value / base:>5.2f}x")


if __name__ == "__main__":
    main()
