"""A replay recorded on round 1's main (commit 5502d3c, tests/data/round1) holds
round 2 to Part 1's decisions: with none of round 2's fields set, every
allocation is the same, byte for byte, apart from the new `reason` of each
channel entry (CONTRACT.md Part 2) and sms and voice, whose default send
window (section 9) may move them."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

from streams.cli import main

RECORDED = Path(__file__).resolve().parents[3] / "data" / "round1"
# Channels whose decisions round 2 changes on purpose, with no new field set.
MOVED_ON_PURPOSE: frozenset[str] = frozenset({"sms", "voice"})


def _unzip(name: str, to: Path) -> Path:
    target = to / name.removesuffix(".gz")
    target.write_bytes(gzip.decompress((RECORDED / name).read_bytes()))
    return target


def _as_round1(line: str) -> dict[str, Any]:
    record: dict[str, Any] = json.loads(line)
    for entry in record["channels"]:
        entry.pop("reason", None)
    return record


def test_round_one_decisions_are_unchanged(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    args = ["replay", "--leads", str(_unzip("leads.jsonl.gz", tmp_path))]
    args += ["--patterns", str(_unzip("patterns.jsonl.gz", tmp_path))]
    args += ["--clients", str(RECORDED / "clients.jsonl")]
    args += ["--resources", str(RECORDED / "resources.jsonl"), "--out", str(out), "--quiet"]
    assert main(args) == 0
    recorded = gzip.decompress((RECORDED / "allocations.jsonl.gz").read_bytes()).decode()
    now = out.read_text().splitlines()
    then = recorded.splitlines()
    assert len(now) == len(then) == 4000
    changed = 0
    for new, old in zip(now, then, strict=True):
        a, b = _as_round1(new), json.loads(old)
        if a != b:
            kept = [e for e in a["channels"] if e["channel"] not in MOVED_ON_PURPOSE]
            was = [e for e in b["channels"] if e["channel"] not in MOVED_ON_PURPOSE]
            assert kept == was, f"{a['event_id']}: {kept} != {was}"
            assert {**a, "channels": []} == {**b, "channels": []}
            changed += 1
    if not MOVED_ON_PURPOSE:
        assert changed == 0
        # byte for byte: the same text once the reasons are taken out
        for new, old in zip(now, then, strict=True):
            assert json.dumps(_as_round1(new), separators=(",", ":"), ensure_ascii=False) == old
