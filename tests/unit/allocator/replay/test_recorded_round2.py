"""A replay recorded before the speed work of issue 15 (commit f0d2a0f,
tests/data/round2, written by its make.py) holds every later change to the
same bytes: three clients using every round-2 setting, 4,000 leads over three
weeks across Christmas and New Year, and 1,850 send-events of every kind.
The allocations, the cancellations and the health records must come out
identical, line for line."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from streams.cli import main

RECORDED = Path(__file__).resolve().parents[3] / "data" / "round2"


def _unzip(name: str, to: Path) -> Path:
    target = to / name.removesuffix(".gz")
    target.write_bytes(gzip.decompress((RECORDED / name).read_bytes()))
    return target


def _recorded(name: str) -> list[str]:
    return gzip.decompress((RECORDED / f"{name}.jsonl.gz").read_bytes()).decode().splitlines()


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("round2")
    args = ["replay", "--leads", str(_unzip("leads.jsonl.gz", work))]
    args += ["--send-events", str(_unzip("send-events.jsonl.gz", work))]
    for name in ("patterns", "clients", "resources", "pools"):
        args += [f"--{name}", str(RECORDED / f"{name}.jsonl")]
    args += ["--out", str(work / "allocations.jsonl")]
    args += ["--cancellations", str(work / "cancellations.jsonl")]
    args += ["--health", str(work / "health.jsonl"), "--quiet"]
    assert main(args) == 0
    return work


@pytest.mark.parametrize("name", ["allocations", "cancellations", "health"])
def test_round_two_outputs_are_unchanged(replayed: Path, name: str) -> None:
    now = (replayed / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()
    then = _recorded(name)
    assert len(now) == len(then) > 0
    for n, (new, old) in enumerate(zip(now, then, strict=True), start=1):
        assert new == old, f"{name} line {n} differs"
