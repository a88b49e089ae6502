"""Replay throughput on a generated history.

    python bench/replay_bench.py [--leads 200000] [--rounds 3] [--workers N]
                                 [--feedback-leads 40000] [--profile-leads 20000]

Prints leads per second for the whole replay (read, validate, decide, write)
in one process and split by client across --workers processes (default: as
the replay, one per usable CPU up to 8, and at least 2; processes.py; Linux
only: elsewhere both runs use one process), next
to a baseline measured in the same process: only reading and validating the
same file. The replay's ratio to that baseline is what deciding costs on top
of parsing; the split run's ratio to the one-process run is what the split
gains (the sample's largest client has 60% of the leads, and one client's
leads are decided in one process). Both runs must write the same allocations
file, byte for byte, or the bench stops (the summary's and the report's
bytes are held by tests/unit/allocator/replay/test_shards.py). Each round
times all three, one after the other; every round is printed, then the best
of each (as timeit reports the best of its repeats: on a shared machine a
slower round says how busy it was, not how fast the code is). Rounds after
the first find the module-level caches (key names, zones, the entries of
exhausted channels) filled: a few thousand entries, against 200,000 leads.

Then, unless --feedback-leads is 0, the same two runs of a history with
send-events (the recorded round-2 history's generator, scaled; see
feedback_bench), which must write the same allocations, cancellations and
health records. Then, unless --profile-leads is 0, replays the first leads
of the 200,000-lead history (not the one with send-events) in one process
under cProfile and prints where a lead's time goes:
microseconds per lead by module (own time, profiler overhead included, so
compare shares, not the total, with the timed run), and the costliest
functions.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import importlib.util
import io
import json
import pstats
import random
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from allocator.replay.processes import workers as default_workers
from streams.cli import main
from streams.samples import SAMPLES_DIR, sample_leads, sample_patterns

ROOT = Path(__file__).resolve().parents[1]


def replay_args(leads: Path, patterns: Path, out: Path, workers: int = 1) -> list[str]:
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
        "--workers",
        str(workers),
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


def write_lines(path: Path, rows: Sequence[Any]) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def feedback_bench(count: int, rounds: int, workers: int, workdir: Path) -> None:
    """The replay with send-events, in one process and split: the recorded
    round-2 history's generator (tests/data/round2/make.py: three clients
    using every round-2 setting, send-events of every kind) scaled to
    `count` leads over the same three weeks. Its send-events are made from a
    replay without them, as make.py does. One client (acme: 55% of the leads,
    pacing, send windows, holidays) does most of the deciding, and it is
    decided in one process: the split gains little here."""
    spec = importlib.util.spec_from_file_location("round2", ROOT / "tests/data/round2/make.py")
    assert spec is not None and spec.loader is not None
    make = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make)
    make.LEADS = count  # type: ignore[attr-defined]
    rng = random.Random(15)
    files = {
        "clients": make.CLIENTS,
        "pools": make.POOLS,
        "resources": make.resources(),
        "patterns": make.patterns(),
        "leads": make.leads(rng),
    }
    setup: list[str] = []
    for name, rows in files.items():
        path = workdir / f"r2-{name}.jsonl"
        write_lines(path, rows)
        setup += [f"--{name}", str(path)]

    def run(processes: int, tag: str, *extra: str) -> float:
        out = ["--out", str(workdir / f"r2-{tag}-a.jsonl"), "--quiet"]
        start = time.perf_counter()
        # (without the lines naming each send-event that names no reserved send)
        with contextlib.redirect_stderr(io.StringIO()):
            code = main(["replay", *setup, *out, "--workers", str(processes), *extra])
        assert code == 0
        return time.perf_counter() - start

    run(1, "plain")
    plain = (workdir / "r2-plain-a.jsonl").read_text().splitlines()
    events = make.send_events(rng, [json.loads(line) for line in plain])
    sends = workdir / "r2-send-events.jsonl"
    write_lines(sends, events)
    split = f"{workers} processes"
    print(f"with send-events: {count:,} leads and {len(events):,} send-events (round 2's clients)")
    times: dict[str, list[float]] = {"one": [], "split": []}
    for round_ in range(1, rounds + 1):
        for tag, processes in (("one", 1), ("split", workers)):
            flags = ["--send-events", str(sends)]
            for kind in ("cancellations", "health"):
                flags += [f"--{kind}", str(workdir / f"r2-{tag}-{kind[0]}.jsonl")]
            times[tag].append(run(processes, tag, *flags))
        for name in ("a", "c", "h"):
            one = (workdir / f"r2-one-{name}.jsonl").read_bytes()
            assert one == (workdir / f"r2-split-{name}.jsonl").read_bytes(), f"{name} differs"
        print(
            f"  round {round_}: one process {count / times['one'][-1]:>8,.0f} leads/s,"
            f" {split} {count / times['split'][-1]:>8,.0f}"
        )
    best = {tag: count / min(seconds) for tag, seconds in times.items()}
    print(f"  replay, one process    {best['one']:>10,.0f} leads/s  (best of {rounds})")
    print(f"  replay, {split:<14} {best['split']:>10,.0f} leads/s")
    print(f"  {split} / one {best['split'] / best['one']:>10.2f}  (the same bytes written)")


def main_bench() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--leads", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds; the best is kept")
    parser.add_argument(
        "--workers",
        type=int,
        default=max(2, default_workers(None)),
        help="processes of the split run (default: the replay's default, at least 2)",
    )
    parser.add_argument(
        "--feedback-leads",
        type=int,
        default=40_000,
        help="leads of the run with send-events (0: none)",
    )
    parser.add_argument("--profile-leads", type=int, default=20_000)
    args = parser.parse_args()
    if args.rounds < 1 or args.workers < 2:
        parser.error("--rounds must be 1 or more, --workers 2 or more")
    workdir = Path(tempfile.mkdtemp(prefix="allocator-replay-bench-"))
    rows = sample_leads(max(args.leads, args.profile_leads), seed=42)
    leads = workdir / "leads.jsonl"
    write_lines(leads, rows[: args.leads])
    patterns = workdir / "patterns.jsonl"
    write_lines(patterns, sample_patterns())

    from allocator.replay.sources import from_file, parse_lead_data

    print(f"{args.leads:,} leads ({leads.stat().st_size / 1e6:.0f} MB of JSON Lines)")
    split = f"{args.workers} processes"
    times: dict[str, list[float]] = {"parse": [], "one": [], "split": []}
    for round_ in range(1, args.rounds + 1):
        start = time.perf_counter()
        parsed, _ = from_file(leads, parse_lead_data)
        times["parse"].append(time.perf_counter() - start)
        assert len(parsed) == args.leads
        del parsed
        for run, processes in (("one", 1), ("split", args.workers)):
            out = workdir / f"out-{run}.jsonl"
            start = time.perf_counter()
            code = main(replay_args(leads, patterns, out, processes))
            times[run].append(time.perf_counter() - start)
            assert code == 0
            assert out.read_bytes().count(b"\n") == args.leads
        same = (workdir / "out-one.jsonl").read_bytes() == (
            workdir / "out-split.jsonl"
        ).read_bytes()
        assert same, "the split replay wrote other bytes than the one-process replay"
        print(
            f"  round {round_}: read + validate {args.leads / times['parse'][-1]:>8,.0f} leads/s,"
            f" replay in one process {args.leads / times['one'][-1]:>8,.0f},"
            f" in {split} {args.leads / times['split'][-1]:>8,.0f}"
        )

    best = {run: min(seconds) for run, seconds in times.items()}
    rate = {run: args.leads / seconds for run, seconds in best.items()}
    for label, run in (
        ("read + validate only", "parse"),
        ("replay, one process", "one"),
        (f"replay, {split}", "split"),
    ):
        print(
            f"  {label:<22} {rate[run]:>10,.0f} leads/s  ({best[run]:.1f} s, best of {args.rounds})"
        )
    print(f"  one process / parse    {rate['one'] / rate['parse']:>10.2f}")
    print(f"  {split} / one {rate['split'] / rate['one']:>10.2f}  (the same bytes written)")
    deciding = (best["one"] - best["parse"]) / args.leads * 1e6
    print(
        f"  deciding and writing   {deciding:>10.1f} us/lead in one process (the bests' difference)"
    )
    print(f"  a million leads: about {1_000_000 / rate['split']:.0f} s in {split}")
    if args.feedback_leads:
        feedback_bench(args.feedback_leads, args.rounds, args.workers, workdir)
    if args.profile_leads:
        small = workdir / "profiled.jsonl"
        write_lines(small, rows[: args.profile_leads])
        profile(replay_args(small, patterns, workdir / "profiled-out.jsonl"), args.profile_leads)


if __name__ == "__main__":
    main_bench()
