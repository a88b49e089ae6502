"""Instructions a replayed lead costs, counted by valgrind (callgrind): a figure
that does not move with the machine's speed, where replay_bench.py's leads per
second spread by a third between rounds on a shared VM.

    python bench/replay_instructions.py [--small 4000] [--large 12000]

Runs `allocator replay` on replay_bench.py's history (the sample leads of seed
42) under `valgrind --tool=callgrind`, once on the first `--small` and once on
the first `--large` leads, and prints the difference of the two counts
divided by the difference in leads: what one more lead costs to read,
validate, decide, write and count in the summary, the process's start-up and
imports cancelling out. Then the same for reading and validating alone
(`from_file`): four processes in all, each a minute or less under valgrind
(valgrind must be on PATH).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from replay_bench import replay_args  # (bench/ is this script's own directory)

from streams.samples import sample_leads, sample_patterns

# The replay of a file, or only the reading of it, as a child process runs it.
_REPLAY = "import sys; from streams.cli import main; sys.exit(main(sys.argv[1:]))"
_READ = (
    "import sys; from allocator.replay.sources import from_file, parse_lead_data; "
    "good, bad = from_file(sys.argv[1], parse_lead_data); assert good and not bad"
)
_COLLECTED = re.compile(r"Collected : (\d+)")


def instructions(code: str, args: list[str], workdir: Path) -> int:
    """What the Python process running `code` with `args` executed, in all."""
    done = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={workdir}/callgrind.out",
            sys.executable,
            "-c",
            code,
            *args,
        ],
        capture_output=True,
        text=True,
        # Set iteration order (and so any work that depends on it) the same each run.
        env={**os.environ, "PYTHONHASHSEED": "0"},
        check=False,
    )
    found = _COLLECTED.search(done.stderr)
    if done.returncode != 0 or found is None:
        raise SystemExit(f"exit {done.returncode}, callgrind said:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--small", type=int, default=4_000)
    parser.add_argument("--large", type=int, default=12_000)
    args = parser.parse_args()
    if not 0 < args.small < args.large:
        parser.error("--small must be at least 1 and less than --large")
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not on PATH (Debian: apt install valgrind)")
    workdir = Path(tempfile.mkdtemp(prefix="allocator-replay-instructions-"))
    rows = sample_leads(args.large, seed=42)
    patterns = workdir / "patterns.jsonl"
    patterns.write_text("".join(json.dumps(p) + "\n" for p in sample_patterns()))
    counts: dict[str, dict[int, int]] = {"replay": {}, "read + validate only": {}}
    for size in (args.small, args.large):
        leads = workdir / f"leads-{size}.jsonl"
        leads.write_text("".join(json.dumps(row) + "\n" for row in rows[:size]))
        out = workdir / f"out-{size}.jsonl"
        counts["replay"][size] = instructions(_REPLAY, replay_args(leads, patterns, out), workdir)
        counts["read + validate only"][size] = instructions(_READ, [str(leads)], workdir)
    leads_apart = args.large - args.small
    print(f"instructions a lead ({args.large:,} leads less {args.small:,}, callgrind)")
    for name, by_size in counts.items():
        per_lead = (by_size[args.large] - by_size[args.small]) / leads_apart
        print(f"  {name:<22} {per_lead:>10,.0f}")


if __name__ == "__main__":
    main()
