"""Replay throughput on a generated history.

    python bench/replay_bench.py [--leads 200000]

Prints leads per second for the whole replay (read, validate, decide, write)
next to a baseline measured in the same process: only reading and validating
the same file. Their ratio is what deciding costs on top of parsing.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from streams.cli import main
from streams.samples import SAMPLES_DIR, sample_leads, sample_patterns


def main_bench() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--leads", type=int, default=200_000)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="allocator-replay-bench-"))
    leads = workdir / "leads.jsonl"
    with leads.open("w") as out:
        for row in sample_leads(args.leads, seed=42):
            out.write(json.dumps(row) + "\n")
    patterns = workdir / "patterns.jsonl"
    patterns.write_text("".join(json.dumps(p) + "\n" for p in sample_patterns()))

    from allocator.replay.sources import from_file, parse_lead_data

    start = time.perf_counter()
    parsed, _ = from_file(leads, parse_lead_data)
    parse_seconds = time.perf_counter() - start
    assert len(parsed) == args.leads

    start = time.perf_counter()
    code = main(
        [
            "replay",
            "--leads",
            str(leads),
            "--patterns",
            str(patterns),
            "--clients",
            str(SAMPLES_DIR / "clients.jsonl"),
            "--resources",
            str(SAMPLES_DIR / "resources.jsonl"),
            "--out",
            str(workdir / "out.jsonl"),
            "--quiet",
        ]
    )
    replay_seconds = time.perf_counter() - start
    assert code == 0
    written = sum(1 for _ in (workdir / "out.jsonl").open())
    assert written == args.leads

    parse_rate, replay_rate = args.leads / parse_seconds, args.leads / replay_seconds
    print(f"{args.leads:,} leads ({leads.stat().st_size / 1e6:.0f} MB of JSON Lines)")
    print(f"  read + validate only   {parse_rate:>10,.0f} leads/s  ({parse_seconds:.1f} s)")
    print(f"  full replay            {replay_rate:>10,.0f} leads/s  ({replay_seconds:.1f} s)")
    print(f"  replay / parse ratio   {replay_rate / parse_rate:>10.2f}")
    print(f"  a million leads: about {1_000_000 / replay_rate / 60:.1f} minutes")


if __name__ == "__main__":
    main_bench()
