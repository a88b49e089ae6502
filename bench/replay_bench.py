"""Replay throughput on a generated history.

    python bench/replay_bench.py [--leads 200000] [--rounds 3] [--profile-leads 20000]

Prints leads per second for the whole replay (read, validate, decide, write)
next to a baseline measured in the same process: only reading and validating
the same file. Their ratio is what deciding costs on top of parsing. Each
round times both, one after the other; every round is printed, then the best
of each (as timeit reports the best of its repeats: on a shared machine a
slower round says how busy it was, not how fast the code is). Rounds after
the first find the module-level caches (key names, zones, the entries of
exhausted channels) filled: a few thousand entries, against 200,000 leads.

Then, unless --profile-leads is 0, replays the first leads of the same
history under cProfile and prints where a lead's time goes: microseconds per
lead by module (own time, profiler overhead included, so compare shares, not
the total, with the timed run), and the costliest functions.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from streams.cli import main
from streams.samples import SAMPLES_DIR, sample_leads, sample_patterns

ROOT = Path(__file__).resolve().parents[1]


def replay_args(leads: Path, patterns: Path, out: Path) -> list[str]:
    return [
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
        str(out),
        "--quiet",
    ]


def _where(filename: str) -> str:
    """A module's short name: allocator/quota/rules.py, pydantic, json, builtins..."""
    if filename.startswith(("~", "<")):
        return "builtins (C)"
    path = Path(filename)
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        pass
    parts = path.parts
    if "site-packages" in parts:
        return parts[parts.index("site-packages") + 1].split(".")[0]
    return path.stem if path.suffix else filename


def profile(args: list[str], leads: int) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    assert main(args) == 0
    profiler.disable()
    stats = pstats.Stats(profiler)
    by_module: dict[str, float] = defaultdict(float)
    total = 0.0
    rows = stats.stats  # type: ignore[attr-defined]
    for (filename, _, _), (_, _, tottime, _, _) in rows.items():
        by_module[_where(filename)] += tottime
        total += tottime
    print(f"where a lead's time goes (cProfile, {leads:,} leads, {total:.1f} s in all):")
    print(f"  {'module (own time)':<44} {'us/lead':>8} {'share':>6}")
    for module, seconds in sorted(by_module.items(), key=lambda kv: -kv[1])[:12]:
        print(f"  {module:<44} {seconds / leads * 1e6:>8.1f} {seconds / total:>6.0%}")
    print(f"  {'function (own time)':<44} {'us/lead':>8} {'calls/lead':>10}")
    top = sorted(rows.items(), key=lambda kv: -kv[1][2])[:12]
    for (filename, line, name), (_, calls, tottime, _, _) in top:
        where = name if filename == "~" else f"{_where(filename)}:{line}({name})"
        where = where[-44:]
        print(f"  {where:<44} {tottime / leads * 1e6:>8.1f} {calls / leads:>10.1f}")


def main_bench() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--leads", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds; the best is kept")
    parser.add_argument("--profile-leads", type=int, default=20_000)
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be 1 or more")
    workdir = Path(tempfile.mkdtemp(prefix="allocator-replay-bench-"))
    rows = sample_leads(max(args.leads, args.profile_leads), seed=42)
    leads = workdir / "leads.jsonl"
    leads.write_text("".join(json.dumps(row) + "\n" for row in rows[: args.leads]))
    patterns = workdir / "patterns.jsonl"
    patterns.write_text("".join(json.dumps(p) + "\n" for p in sample_patterns()))

    from allocator.replay.sources import from_file, parse_lead_data

    print(f"{args.leads:,} leads ({leads.stat().st_size / 1e6:.0f} MB of JSON Lines)")
    parse_times, replay_times = [], []
    for round_ in range(1, args.rounds + 1):
        start = time.perf_counter()
        parsed, _ = from_file(leads, parse_lead_data)
        parse_times.append(time.perf_counter() - start)
        assert len(parsed) == args.leads
        del parsed

        start = time.perf_counter()
        code = main(replay_args(leads, patterns, workdir / "out.jsonl"))
        replay_times.append(time.perf_counter() - start)
        assert code == 0
        written = sum(1 for _ in (workdir / "out.jsonl").open())
        assert written == args.leads
        print(
            f"  round {round_}: read + validate {args.leads / parse_times[-1]:>8,.0f} leads/s,"
            f" full replay {args.leads / replay_times[-1]:>8,.0f} leads/s"
        )

    parse_seconds, replay_seconds = min(parse_times), min(replay_times)
    parse_rate, replay_rate = args.leads / parse_seconds, args.leads / replay_seconds
    for label, rate, seconds in (
        ("read + validate only", parse_rate, parse_seconds),
        ("full replay", replay_rate, replay_seconds),
    ):
        print(f"  {label:<22} {rate:>10,.0f} leads/s  ({seconds:.1f} s, best of {args.rounds})")
    print(f"  replay / parse ratio   {replay_rate / parse_rate:>10.2f}")
    deciding = (replay_seconds - parse_seconds) / args.leads * 1e6
    print(f"  deciding and writing   {deciding:>10.1f} us/lead  (the two bests' difference)")
    print(f"  a million leads: about {1_000_000 / replay_rate:.0f} s")
    if args.profile_leads:
        small = workdir / "profiled.jsonl"
        small.write_text("".join(json.dumps(row) + "\n" for row in rows[: args.profile_leads]))
        profile(replay_args(small, patterns, workdir / "profiled-out.jsonl"), args.profile_leads)


if __name__ == "__main__":
    main_bench()
