"""A replay split by client across processes (shards.py, processes.py)
writes what one process writes, byte for byte: the allocations, summary.json,
the report and the comparison; the split keeps clients sharing a resource
together (and must: apart, the bytes differ); a shard that fails or dies
fails the replay, naming it."""

from __future__ import annotations

import gzip
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import allocator.batch
from allocator.config import Settings
from allocator.files import load_all
from allocator.models import (
    Client,
    Pool,
    Resource,
    ScoredLead,
    SendEvent,
    parse_pattern_data,
    validate,
)
from allocator.quota import MemoryQuotaStore
from allocator.replay import shards
from allocator.replay.processes import Forked, ShardJob
from allocator.replay.rules import Rules
from allocator.replay.runner import ReplayRun, replay
from allocator.replay.shards import MIN_LEADS, Shard, plan_shards
from allocator.replay.sources import History, from_file, parse_lead_data, parse_send_event_data
from allocator.running import run_to_end
from streams.cli import main
from tests.replay_data import count_split_runs, replay_args, write_history

ROUND2 = Path(__file__).resolve().parents[3] / "data" / "round2"


def _round2(tmp_path: Path, share: bool = False) -> list[str]:
    """Arguments replaying the recorded round-2 history (every round-2 setting,
    three clients) without its send-events; `share`: globex lists initech's
    mail domain too."""
    leads = tmp_path / "leads.jsonl"
    leads.write_bytes(gzip.decompress((ROUND2 / "leads.jsonl.gz").read_bytes()))
    resources = tmp_path / "resources.jsonl"
    rows = (ROUND2 / "resources.jsonl").read_text()
    if share:
        shared = {"client_id": "globex", "channel": "email", "resource_id": "initech.jp"}
        rows += json.dumps({**shared, "daily_limit": 40}) + "\n"
    resources.write_text(rows)
    args = ["replay", "--leads", str(leads), "--resources", str(resources)]
    for name in ("patterns", "clients", "pools"):
        args += [f"--{name}", str(ROUND2 / f"{name}.jsonl")]
    return [*args, "--quiet"]


@pytest.fixture
def merged(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    return count_split_runs(monkeypatch)


def _outputs(tmp_path: Path, args: list[str], workers: int, name: str) -> dict[str, bytes]:
    out, report = tmp_path / f"{name}.jsonl", tmp_path / name
    assert main([*args, "--out", str(out), "--report", str(report), "--workers", str(workers)]) == 0
    found = {"allocations": out.read_bytes()}
    for page in sorted(report.iterdir()):
        found[page.name] = page.read_bytes()
    return found


def _history(path: Path) -> History:
    leads, rejected = from_file(path, parse_lead_data)
    return History(leads, [], rejected)


@pytest.mark.parametrize("share", [False, True], ids=["apart", "sharing a resource"])
def test_a_split_replay_writes_what_one_process_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, merged: list[int], share: bool
) -> None:
    monkeypatch.setattr(shards, "MIN_LEADS", 0)  # 4,000 leads: split them anyway
    args = _round2(tmp_path, share)
    resources = [
        Resource.model_validate_json(line) for line in Path(args[4]).read_text().splitlines()
    ]
    planned = plan_shards(_history(Path(args[2])), resources, 3)
    together = {"globex", "initech"} <= planned[1].clients  # acme has most leads: shard 0
    assert together == share  # initech.jp shared: one shard; else apart among three
    one = _outputs(tmp_path, args, 1, "one")
    assert merged == []
    split = _outputs(tmp_path, args, 3, "split")
    assert merged == [len(planned)] and len(planned) > 1
    assert set(one) == {"allocations", "index.html", "summary.json"}
    assert one["allocations"].count(b"\n") == 4000
    for name, written in one.items():
        assert split[name] == written, f"{name} differs"


def test_undecidable_leads_unknown_clients_and_a_comparison_come_out_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, merged: list[int]
) -> None:
    monkeypatch.setattr(shards, "MIN_LEADS", 0)
    planned = allocator.batch._planned

    def failing(lead: Any, *args: Any) -> Any:
        # Leads of two clients, in two shards, whose rules fail (as in
        # test_command's undecidable test): listed in the history's order.
        if lead.lead_id in ("lead-00103", "lead-00007", "lead-00290"):
            raise OverflowError("date value out of range")
        return planned(lead, *args)

    monkeypatch.setattr(allocator.batch, "_planned", failing)
    paths = write_history(tmp_path, leads=400)  # with bad lines; umbrella has no setup
    rules = tmp_path / "variant.json"
    rules.write_text(json.dumps({"name": "tight", "type_limits": {"email_domain": 3}}))
    args = replay_args(paths, tmp_path / "unused.jsonl", "--compare", str(rules))
    one = _outputs(tmp_path, args, 1, "one")
    split = _outputs(tmp_path, args, 4, "split")
    assert merged == [4, 4]  # the baseline and the variant, each split in four
    summary = json.loads(one["summary.json"])
    assert summary["invalid_by_code"]["undecidable"] == 3
    assert summary["unknown_clients"] == ["umbrella"]
    assert "compare.json" in one
    for name, written in one.items():
        assert split[name] == written, f"{name} differs"


def test_clients_go_to_the_shard_with_the_fewest_leads_largest_first(tmp_path: Path) -> None:
    paths = write_history(tmp_path, leads=MIN_LEADS, bad=False)
    history = _history(paths["leads"])
    counts = {c: sum(lead.client_id == c for lead in history.leads) for c in ("acme", "globex")}
    planned = plan_shards(history, [], 2)
    assert [sorted(s.clients) for s in planned] == [["acme"], ["globex", "initech", "umbrella"]]
    assert len(planned[0].leads) == counts["acme"] > len(planned[1].leads) > counts["globex"]
    assert sorted(i for s in planned for i in s.leads) == list(range(MIN_LEADS))
    assert len(plan_shards(history, [], 8)) == 4  # no more shards than clients


def test_no_split_for_small_histories_or_one_worker(tmp_path: Path) -> None:
    paths = write_history(tmp_path, leads=MIN_LEADS, bad=False)
    history = _history(paths["leads"])
    assert len(plan_shards(history, [], 1)) == 1
    small = History(history.leads[:-1], [], [])
    assert len(plan_shards(small, [], 2)) == 1


def _round2_send_events(tmp_path: Path) -> list[SendEvent]:
    path = tmp_path / "send-events.jsonl"
    path.write_bytes(gzip.decompress((ROUND2 / "send-events.jsonl.gz").read_bytes()))
    return from_file(path, parse_send_event_data)[0]


def test_a_client_with_send_events_and_no_leads_has_a_shard(tmp_path: Path) -> None:
    # Its send-events name no send of this history: its shard says so.
    paths = write_history(tmp_path, leads=MIN_LEADS, bad=False)
    events = [e.model_copy(update={"client_id": "hooli"}) for e in _round2_send_events(tmp_path)]
    history = History(_history(paths["leads"]).leads, [], [], send_events=events[:900])
    planned = plan_shards(history, [], 8)
    assert len(planned) == 5 and any("hooli" in s.clients for s in planned)
    assert [s.leads for s in planned if "hooli" in s.clients] == [[]]


def test_a_split_replay_with_send_events_writes_the_recorded_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The recorded round-2 history (test_recorded_round2.py), 1,850
    # send-events of every kind among them: lapsed health, cancellations,
    # refunds, stops and send-events naming no reserved send, split in three.
    merged = count_split_runs(monkeypatch)
    events = tmp_path / "send-events.jsonl"
    events.write_bytes(gzip.decompress((ROUND2 / "send-events.jsonl.gz").read_bytes()))
    args = [*_round2(tmp_path), "--send-events", str(events)]
    written: dict[int, dict[str, bytes]] = {}
    told: dict[int, str] = {}
    for workers in (1, 3):
        out = tmp_path / str(workers)
        more = ["--cancellations", f"{out}-c.jsonl", "--health", f"{out}-h.jsonl"]
        written[workers] = _outputs(tmp_path, [*args, *more], workers, str(workers))
        for name in ("c", "h"):
            written[workers][name] = Path(f"{out}-{name}.jsonl").read_bytes()
        told[workers] = capsys.readouterr().err.replace(f"/{workers}/", "/")
    assert merged == [3]
    for name, recorded in (("allocations", "allocations"), ("c", "cancellations"), ("h", "health")):
        assert written[3][name] == gzip.decompress((ROUND2 / f"{recorded}.jsonl.gz").read_bytes())
    for name, one in written[1].items():
        assert written[3][name] == one, f"{name} differs"
    assert "unknown_send" in told[1] and told[3] == told[1]  # the records skipped, in order


@pytest.mark.parametrize("how", ["raises", "dies"])
def test_a_shard_that_fails_fails_the_replay_naming_it(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    how: str,
) -> None:
    monkeypatch.setattr(shards, "MIN_LEADS", 0)
    planned = allocator.batch._planned
    parent = os.getpid()

    def failing(lead: Any, *args: Any) -> Any:
        if lead.client_id == "globex" and os.getpid() != parent:  # shard 1, forked
            if how == "dies":
                os._exit(7)
            raise KeyboardInterrupt  # past the per-lead handler, as a bug in the loop would be
        return planned(lead, *args)

    monkeypatch.setattr(allocator.batch, "_planned", failing)
    paths = write_history(tmp_path, leads=200, bad=False)
    assert main([*replay_args(paths, tmp_path / "out.jsonl"), "--workers", "2"]) == 1
    err = capsys.readouterr().err
    if how == "dies":
        assert "replay shard 1 ended without an answer (exit code 7)" in err
    else:
        assert "replay shard 1 failed: KeyboardInterrupt" in err
    assert not (tmp_path / "out.jsonl").exists()


def test_clients_sharing_a_resource_decided_apart_would_write_other_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, merged: list[int]
) -> None:
    # The control of the test above: with every client a group of its own,
    # globex and initech count initech.jp's sends in two processes.
    monkeypatch.setattr(shards, "MIN_LEADS", 0)
    group = shards._client_groups
    monkeypatch.setattr(shards, "_client_groups", lambda leads, resources: group(leads, []))
    args = _round2(tmp_path, share=True)
    one = _outputs(tmp_path, args, 1, "one")
    split = _outputs(tmp_path, args, 3, "split")
    assert merged == [3]
    assert split["allocations"] != one["allocations"]


def _setup(path: Path, model: Any) -> Any:
    return load_all(path, lambda data: validate(model, data))


def test_a_forked_run_is_one_process_run_lead_by_lead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Below the command: the run's lines, outcomes (what --compare reads, put
    # back by lead), undecidable leads and summary, against replay() itself.
    monkeypatch.setattr(shards, "MIN_LEADS", 0)
    leads = tmp_path / "leads.jsonl"
    leads.write_bytes(gzip.decompress((ROUND2 / "leads.jsonl.gz").read_bytes()))
    found, rejected = from_file(leads, parse_lead_data)
    patterns, _ = from_file(ROUND2 / "patterns.jsonl", parse_pattern_data)
    history = History(found, patterns, rejected)
    clients = _setup(ROUND2 / "clients.jsonl", Client)
    resources = _setup(ROUND2 / "resources.jsonl", Resource)
    pools = _setup(ROUND2 / "pools.jsonl", Pool)
    schedule = Settings().schedule()
    store = MemoryQuotaStore()
    one = run_to_end(
        replay(
            history, clients, resources, Rules(), schedule, store, keep_outcomes=True, pools=pools
        )
    )
    planned = plan_shards(History(found, [], []), resources, 3)
    assert len(planned) == 3 and max(planned[1].leads) > min(planned[0].leads)  # interleaved
    job = ShardJob(history, clients, resources, Rules(), schedule, True, (), tuple(pools))
    counted: list[int] = []
    with Forked(job, planned) as forked:
        split = forked.finish(counted.append)
    assert sum(counted) == len(found)  # the progress bar saw every lead
    assert (split.processes, one.processes) == (3, 1)
    assert split.lines == one.lines and len(one.lines) == len(found)
    assert split.outcomes == one.outcomes
    assert split.undecidable == one.undecidable
    assert split.summary.to_json() == one.summary.to_json()


def _lead(client: str, n: int) -> ScoredLead:
    data = {"lead_id": f"{client}-{n}", "client_id": client, "als_score": 50}
    return validate(ScoredLead, {**data, "scored_at": "2026-11-26T10:00:00Z"})


def test_the_largest_shard_comes_first(monkeypatch: pytest.MonkeyPatch) -> None:
    # It is decided in the process that read the history.
    monkeypatch.setattr(shards, "MIN_LEADS", 0)
    leads = [_lead(c, n) for c, size in (("a", 10), ("b", 9), ("c", 9)) for n in range(size)]
    planned = plan_shards(History(leads, [], []), [], 2)
    assert [sorted(s.clients) for s in planned] == [["b", "c"], ["a"]]
    assert [len(s.leads) for s in planned] == [18, 10]
    assert len(plan_shards(History([], [], []), [], 2)) == 1


def test_another_clients_health_changes_no_reason_in_one_process_or_split() -> None:
    # a's day 1 is blocked by its pool (3 a day), then by its rolling week (10)
    # once later days' sends fill it: the reason changes while the day stays
    # blocked. A memo of full days that kept the pool's reason answered
    # differently whether b had health recorded (which switches the memo off)
    # or not: in one process with b's auth_failed, or in a's shard without it.
    clients = [
        validate(Client, {"client_id": c, "timezone": "UTC", "max_defer_days": 3}) for c in "ab"
    ]
    email = {"channel": "email", "daily_limit": 100}
    resources = [
        validate(Resource, {**email, "client_id": "a", "resource_id": "r", "weekly_limit": 10}),
        validate(Resource, {**email, "client_id": "b", "resource_id": "s"}),
    ]
    resources[0] = resources[0].model_copy(update={"pool_id": "p"})
    pools = [
        validate(Pool, {"client_id": "a", "channel": "email", "pool_id": "p", "daily_limit": 3})
    ]
    start = datetime(2026, 12, 14, 6, 0, tzinfo=UTC)

    def lead(client: str, n: int, at: datetime) -> ScoredLead:
        data = {"event_id": f"{client}-{n}", "lead_id": f"{client}-l{n}", "client_id": client}
        return validate(ScoredLead, {**data, "als_score": 90, "scored_at": at.isoformat()})

    later = (lead("a", n, start + timedelta(hours=2, minutes=n)) for n in range(20))
    leads = [lead("b", 0, start), *later]
    schedule = Settings().schedule()

    def one_process(events: list[SendEvent]) -> ReplayRun:
        history = History(leads, [], [], events)
        store = MemoryQuotaStore()
        return run_to_end(
            replay(history, clients, resources, Rules(), schedule, store, pools=pools)
        )

    quiet = one_process([])
    b = json.loads(quiet.lines[0])
    event = {"event_id": "e1", "kind": "auth_failed", "client_id": "b", "lead_id": "b-l0"}
    event |= {"allocation_id": b["allocation_id"], "channel": "email", "resource_id": "s"}
    event["occurred_at"] = (start + timedelta(minutes=30)).isoformat()
    events = [validate(SendEvent, event)]
    paused = one_process(events)
    assert paused.health and paused.lines[1:] == quiet.lines[1:]
    assert sum("weekly limit" in line for line in paused.lines) == 10
    history = History(leads, [], [], events)
    job = ShardJob(history, clients, resources, Rules(), schedule, False, (), tuple(pools))
    planned = [Shard(frozenset("a"), list(range(1, 21))), Shard(frozenset("b"), [0])]
    with Forked(job, planned) as forked:
        assert forked.finish().lines == paused.lines


def test_two_shards_lapses_in_one_batch_and_their_skips_come_in_one_process_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # zeta has more leads, so its shard is the first; alpha's records come
    # first all the same where one process lists them first: both resources'
    # cooldowns end before the same send-event (lapsed health, by client),
    # and at one instant a send-event naming no reserved send comes before
    # an undecidable lead (send-events before leads), which another
    # undecidable lead of the other shard precedes.
    planned_lead = allocator.batch._planned

    def failing(lead: Any, *args: Any) -> Any:
        if lead.lead_id in ("alpha-early", "zeta-late"):
            raise OverflowError("date value out of range")
        return planned_lead(lead, *args)

    monkeypatch.setattr(allocator.batch, "_planned", failing)
    names = ("alpha", "zeta")
    clients = [validate(Client, {"client_id": c, "timezone": "UTC"}) for c in names]
    resources = [
        validate(Resource, {"client_id": c, "channel": "email", "resource_id": f"{c}.io"})
        for c in names
    ]
    start = datetime(2026, 12, 14, 6, 0, tzinfo=UTC)  # a Monday

    def lead(client: str, name: str, at: datetime) -> ScoredLead:
        data = {"event_id": name, "lead_id": name, "client_id": client, "als_score": 90}
        return validate(ScoredLead, {**data, "scored_at": at.isoformat()})

    leads = [lead("alpha", "alpha-early", start - timedelta(minutes=1))]
    leads += [lead("zeta", f"zeta-{n}", start + timedelta(minutes=n)) for n in range(6)]
    leads += [lead("alpha", f"alpha-{n}", start + timedelta(minutes=n)) for n in range(3)]
    leads.append(lead("zeta", "zeta-late", start + timedelta(hours=5)))
    schedule, rules = Settings().schedule(), Rules()

    def one_process(events: list[SendEvent]) -> ReplayRun:
        history = History(leads, [], [], events)
        return run_to_end(replay(history, clients, resources, rules, schedule, MemoryQuotaStore()))

    sent: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
    for line in one_process([]).lines:
        allocation = json.loads(line)
        email = next(c for c in allocation["channels"] if c["channel"] == "email")
        sent.setdefault(allocation["client_id"], (allocation, email))

    def event(name: str, client: str, kind: str, at: datetime, **more: Any) -> SendEvent:
        allocation, email = sent[client]
        data = {"event_id": name, "kind": kind, "client_id": client, "channel": "email"}
        data |= {"lead_id": allocation["lead_id"], "allocation_id": allocation["allocation_id"]}
        data |= {"resource_id": email["resource_id"], "occurred_at": at.isoformat(), **more}
        return validate(SendEvent, data)

    cooled = (start + timedelta(hours=2)).isoformat()
    events = [
        event("t-alpha", "alpha", "throttled", start + timedelta(hours=1), retry_after=cooled),
        event("t-zeta", "zeta", "throttled", start + timedelta(hours=1), retry_after=cooled),
    ]
    events.append(event("s-zeta", "zeta", "sent", start + timedelta(hours=3)))  # both lapse here
    events.append(event("u-alpha", "alpha", "sent", start + timedelta(hours=5), resource_id="x"))
    one = one_process(events)
    history = History(leads, [], [], events)
    job = ShardJob(history, clients, resources, rules, schedule)
    planned = [
        Shard(frozenset({"zeta"}), [1, 2, 3, 4, 5, 6, 10]),
        Shard(frozenset({"alpha"}), [0, 7, 8, 9]),
    ]
    with Forked(job, planned) as forked:
        split = forked.finish()
    lapsed = [json.loads(h) for h in one.health if json.loads(h)["state"] == "active"]
    assert [h["client_id"] for h in lapsed] == ["alpha", "zeta"]
    skipped = one.summary.result().inputs.skipped
    assert [s.where for s in skipped] == ["lead alpha-early", "event u-alpha", "lead zeta-late"]
    assert (split.health, split.cancellations) == (one.health, one.cancellations)
    assert split.summary.to_json() == one.summary.to_json()
    assert split.undecidable == one.undecidable
    assert [r.describe() for r in split.rejected] == [r.describe() for r in one.rejected]
