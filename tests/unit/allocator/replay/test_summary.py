"""The replay summary's figures, what it says a replay read and skipped, and the
statuses every report counts."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

import allocator.batch
import allocator.replay.summary
from allocator.batch import BatchDecider, event_time
from allocator.decision import Decision, Schedule
from allocator.directory import ClientDirectory, build_setup, build_snapshot, unknown_client
from allocator.errors import InvalidRecord
from allocator.feedback import Applied
from allocator.models import Client, Resource
from allocator.patterns import NO_PATTERNS
from allocator.quota import MemoryQuotaStore
from allocator.replay import command
from allocator.replay.options import ReplayOptions
from allocator.replay.rules import Rules
from allocator.replay.runner import ReplayRun, replay, send_changes
from allocator.replay.sources import Bound, History, Rejected, parse_send_event_data
from allocator.replay.summary import (
    REASONS,
    SKIPPED_LISTED,
    Comparison,
    DayChange,
    InputSource,
    ReasonChange,
    ReasonCount,
    Summary,
)
from allocator.tiers import DISPLAY_ORDER
from streams.cli import main
from streams.metrics import Metrics
from streams.samples import SAMPLES_DIR
from tests.factories import client, how, lead, resource
from tests.replay_data import BAD_LINES, replay_args, write_history


def test_balance_is_mean_spread_across_equal_limit_resources() -> None:
    summary = Summary({"name": "t"})
    summary.limits = {
        ("c", "linkedin", "a"): 17,
        ("c", "linkedin", "b"): 17,
        ("c", "linkedin", "solo"): 5,
    }
    summary.usage.update(
        {
            ("c", "linkedin", "a", "2026-11-27"): 3,
            ("c", "linkedin", "b", "2026-11-27"): 2,
            ("c", "linkedin", "a", "2026-11-30"): 4,  # b unused that day: spread 4
            ("c", "linkedin", "solo", "2026-11-27"): 5,  # no peer with its limit: not counted
        }
    )
    assert summary.balance() == 2.5  # (1 + 4) / 2


def test_capacity_needed_is_the_busiest_day_against_capacity() -> None:
    summary = Summary({"name": "t"})
    summary.capacity = {("c", "email"): 70, ("c", "direct_mail"): None}
    summary.demand.update(
        {
            ("c", "email", "2026-11-27"): 40,
            ("c", "email", "2026-11-30"): 95,
            ("c", "direct_mail", "2026-11-27"): 500,
        }
    )
    rows = {r["channel"]: r for r in summary.capacity_needed()}
    assert rows["email"] == {
        "client_id": "c",
        "channel": "email",
        "peak_day": "2026-11-30",
        "peak_demand": 95,
        "daily_capacity": 70,
        "shortfall": 25,
    }
    assert rows["direct_mail"]["shortfall"] == 0  # unlimited


async def test_metrics_and_the_replay_summary_count_the_same_statuses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # One email domain with room for one send a day, for three hot leads of the
    # same instant: the first is sent that day, the other two on later days.
    snapshot = build_snapshot([client()], [resource("email", "d1", limit=1)])
    engine = BatchDecider(
        ClientDirectory.fixed(snapshot), MemoryQuotaStore(), decided_at=event_time
    )
    leads = [lead(90, lead_id=f"l{i}") for i in range(3)]
    decisions = await engine.decide_detailed(leads, lambda _: NO_PATTERNS)
    assert all(isinstance(d, Decision) for d in decisions)
    expected = {("hot", "email", "allocated"): 1, ("hot", "email", "deferred"): 2}
    expected |= {("hot", c, "no_resource"): 3 for c in ("linkedin", "voice", "sms", "direct_mail")}

    summary = Summary({"name": "t"})
    for one, decision in zip(leads, decisions, strict=True):
        assert isinstance(decision, Decision)
        summary.add(decision, one, snapshot["acme"])
    assert dict(summary.entries) == expected
    # The same leads again, the memo starting over after every shape: the
    # tallies are counted before it forgets them.
    monkeypatch.setattr(allocator.replay.summary, "MEMO_SHAPES", 1)
    again = Summary({"name": "t"})
    for _ in range(3):
        for one, decision in zip(leads, decisions, strict=True):
            assert isinstance(decision, Decision)
            again.add(decision, one, snapshot["acme"])
    assert dict(again.entries) == {key: 3 * n for key, n in expected.items()}
    assert summary.to_json()["statuses"] == {
        "allocated": 1,
        "deferred": 2,
        "exhausted": 0,
        "no_resource": 12,
        "suppressed": 0,
    }

    metrics = Metrics()
    metrics.record_batch([d for d in decisions if isinstance(d, Decision)])
    counted = {
        (s.labels["tier"], s.labels["channel"], s.labels["status"]): int(s.value)
        for family in metrics.registry.collect()
        if family.name == "allocator_channel_allocations"
        for s in family.samples
        if s.name.endswith("_total")
    }
    assert counted == expected

    # every entry with a reason, by channel and code, as the decisions say
    reasons = Counter(
        (entry.channel.value, entry.reason.code)
        for d in decisions
        if isinstance(d, Decision)
        for entry in d.allocation.channels
        if entry.reason is not None
    )
    assert reasons[("email", "deferred_full")] == 2
    assert counted_by(metrics, "allocator_channel_reasons") == dict(reasons)
    assert counted_by(metrics, "allocator_leads") == {("hot",): 3}


def counted_by(metrics: Metrics, name: str) -> dict[tuple[str, ...], int]:
    """A counter's totals by label values."""
    return {
        tuple(s.labels.values()): int(s.value)
        for f in metrics.registry.collect()
        if f.name == name
        for s in f.samples
        if s.name.endswith("_total")
    }


async def test_metrics_count_each_tier_and_status_as_the_decisions_say() -> None:
    # Leads of three tiers for two sends a day on one domain: some sent on
    # their day, some later, each counted under its own tier.
    snapshot = build_snapshot([client()], [resource("email", "d1", limit=2)])
    engine = BatchDecider(
        ClientDirectory.fixed(snapshot), MemoryQuotaStore(), decided_at=event_time
    )
    leads = [lead(score, lead_id=f"l{i}") for i, score in enumerate((90, 90, 65, 65, 40, 90))]
    decisions = [
        d
        for d in await engine.decide_detailed(leads, lambda _: NO_PATTERNS)
        if isinstance(d, Decision)
    ]
    assert len(decisions) == len(leads)
    metrics = Metrics()
    metrics.record_batch(decisions)

    # counted here entry by entry, as record_batch did before issue 15
    tiers: Counter[tuple[str, ...]] = Counter()
    statuses: Counter[tuple[str, ...]] = Counter()
    for d in decisions:
        tiers[(d.allocation.als_tier.value,)] += 1
        for entry, steps in zip(d.allocation.channels, d.deferrals, strict=True):
            status = "deferred" if steps else entry.status
            statuses[(d.allocation.als_tier.value, entry.channel.value, status)] += 1
    assert len(tiers) == 3
    assert {k[2] for k in statuses if k[1] == "email"} >= {"allocated", "deferred"}
    assert counted_by(metrics, "allocator_leads") == dict(tiers)
    assert counted_by(metrics, "allocator_channel_allocations") == dict(statuses)


def test_tiers_are_shown_best_first() -> None:
    assert [t.value for t in DISPLAY_ORDER] == ["hot", "warm", "cool", "cold", "unqualified"]


# --- what a replay read and skipped -------------------------------------------


def rejected(source: str, line: int) -> Rejected:
    return Rejected(source, f"line {line}", InvalidRecord("invalid_json", None, "x", "not JSON"))


def test_read_notes_the_history_span_counts_and_every_reject() -> None:
    history = History(
        leads=[
            lead(50, lead_id="b", scored_at="2026-11-27T08:00:00+00:00"),
            lead(50, lead_id="a", scored_at="2026-11-26T23:30:00-05:00"),  # 04:30Z on the 27th
            lead(50, lead_id="c", scored_at="2026-11-26T09:15:00+00:00"),
        ],
        patterns=[how(["email"])],
        rejected=[rejected("leads.jsonl", 2), rejected("patterns.jsonl", 7)],
    )
    summary = Summary({"name": "t"})
    summary.read(history)
    inputs = summary.result().inputs
    assert (inputs.leads_read, inputs.patterns_read) == (3, 1)
    # the earliest and latest instants, each as it was written
    assert inputs.first_scored_at == "2026-11-26T09:15:00+00:00"
    assert inputs.last_scored_at == "2026-11-27T08:00:00+00:00"
    assert [(s.source, s.where, s.code) for s in inputs.skipped] == [
        ("leads.jsonl", "line 2", "invalid_json"),
        ("patterns.jsonl", "line 7", "invalid_json"),
    ]
    assert inputs.skipped_total == 2 and summary.result().invalid_by_code == {"invalid_json": 2}


def test_skipped_records_are_listed_up_to_a_bound_and_all_counted() -> None:
    summary = Summary({"name": "t"})
    summary.read(History([], [], [rejected("big.jsonl", n) for n in range(1, 251)]))
    inputs = summary.result().inputs
    assert len(inputs.skipped) == SKIPPED_LISTED == 100
    assert inputs.skipped[-1].where == "line 100"
    assert inputs.skipped_total == 250
    assert summary.result().invalid_by_code == {"invalid_json": 250}
    assert (inputs.first_scored_at, inputs.last_scored_at) == (None, None)


async def test_a_replay_counts_per_client_and_day_and_names_its_sources(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # acme has one email domain with room for one send a day; umbrella is not
    # among the clients given; lead "odd" fails its rules (simulated).
    planned = allocator.batch._planned

    def failing(one: Any, *args: Any) -> Any:
        if one.lead_id == "odd":
            raise OverflowError("date value out of range")
        return planned(one, *args)

    monkeypatch.setattr(allocator.batch, "_planned", failing)
    at = "2026-11-26T12:00:00+00:00"  # a Thursday: email goes out on Friday the 27th
    history = History(
        leads=[
            lead(30, lead_id="a1", scored_at=at),
            lead(30, lead_id="a2", scored_at=at),
            lead(30, lead_id="u1", client_id="umbrella", scored_at=at),
            lead(30, lead_id="odd", scored_at=at),
        ],
        patterns=[],
        rejected=[],
    )
    sources = (InputSource("leads", "file", "h.jsonl", 4), InputSource("clients", "file", "c", 1))
    run = await replay(
        history,
        [client()],
        [resource("email", "d1", limit=1)],
        Rules(),
        Schedule(),
        MemoryQuotaStore(),
        sources=sources,
    )
    result = run.summary.result()
    assert result.leads == 3 and result.leads_by_client == {"acme": 2, "umbrella": 1}
    assert result.unknown_clients == ("umbrella",)
    # cold leads ask for email only: acme's first on Friday, its second deferred
    # to Monday the 30th (the next weekday); umbrella has no resource, so no
    # day was asked for and its entry counts on the day it was scored
    assert [asdict(d) for d in result.per_client_day] == [
        {
            "client_id": "acme",
            "day": "2026-11-27",
            "channel": "email",
            "status": "allocated",
            "count": 1,
        },
        {
            "client_id": "acme",
            "day": "2026-11-30",
            "channel": "email",
            "status": "deferred",
            "count": 1,
        },
        {
            "client_id": "umbrella",
            "day": "2026-11-26",
            "channel": "email",
            "status": "no_resource",
            "count": 1,
        },
    ]
    # per_day is the same days summed over clients
    assert [(d.day, d.status, d.count) for d in result.per_day] == [
        ("2026-11-26", "no_resource", 1),
        ("2026-11-27", "allocated", 1),
        ("2026-11-30", "deferred", 1),
    ]
    assert result.inputs.sources == sources
    (odd,) = result.inputs.skipped
    assert (odd.source, odd.where, odd.code) == ("h.jsonl", "lead odd", "undecidable")
    assert result.invalid_by_code == {"undecidable": 1}


def test_the_command_reports_its_inputs_and_keeps_its_output(tmp_path: Path) -> None:
    paths = write_history(tmp_path, leads=400)  # every one of BAD_LINES
    assert main(replay_args(paths, tmp_path / "plain.jsonl")) == 0
    report = tmp_path / "r"
    assert main(replay_args(paths, tmp_path / "out.jsonl", "--report", str(report))) == 0
    # a report never changes the allocations written
    assert (tmp_path / "out.jsonl").read_bytes() == (tmp_path / "plain.jsonl").read_bytes()

    inputs = json.loads((report / "summary.json").read_text())["inputs"]
    lines = paths["leads"].read_text().splitlines()
    valid = []
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row.get("als_score"), int) and "scored_at" in row:
            valid.append(datetime.fromisoformat(row["scored_at"]))
    assert inputs["leads_read"] == len(valid) == 400
    patterns = len(paths["patterns"].read_text().splitlines())
    assert datetime.fromisoformat(inputs["first_scored_at"]) == min(valid)
    assert datetime.fromisoformat(inputs["last_scored_at"]) == max(valid)
    assert [
        (s["kind"], s["origin"], s["name"], s["records"], s["skipped"]) for s in inputs["sources"]
    ] == [
        ("leads", "file", str(paths["leads"]), 400, 3),
        ("patterns", "file", str(paths["patterns"]), patterns, 0),
        ("clients", "file", str(paths["clients"]), 3, 0),
        ("resources", "file", str(paths["resources"]), 13, 0),
    ]
    # the bad lines, by their line numbers in the file (tests/replay_data.py)
    expected = [index + 1 + n for n, index in enumerate(sorted(BAD_LINES))]
    assert [(s["where"], s["code"]) for s in inputs["skipped_listed"]] == [
        (f"line {expected[0]}", "invalid_field"),
        (f"line {expected[1]}", "invalid_json"),
        (f"line {expected[2]}", "missing_field"),
    ]


def test_a_topic_source_says_its_window() -> None:
    options = ReplayOptions(
        out=Path("out.jsonl"),
        leads_topic="scored-leads",
        patterns_topic="patterns",
        start=Bound(offset=1200),
        end=Bound.parse("2026-11-27T00:00:00Z"),
    )
    history = History([lead(50)], [], [])
    leads, patterns, clients, resources = command._sources(options, history, [client()], [])
    assert (leads.origin, leads.name, leads.records) == ("topic", "scored-leads", 1)
    assert leads.window == (
        "from offset 1200 up to (not including) record time 2026-11-27T00:00:00+00:00"
    )
    # patterns are read from the topic's start whatever --from says
    assert patterns.window == (
        "from the start up to (not including) record time 2026-11-27T00:00:00+00:00"
    )
    assert (clients.origin, clients.name, clients.records) == (
        "database",
        "ALLOCATOR_DATABASE_URL",
        1,
    )
    assert resources.records == 0


def test_a_send_events_topic_says_the_window_of_the_leads() -> None:
    options = ReplayOptions(
        out=Path("out.jsonl"),
        leads_topic="scored-leads",
        send_events_topic="send-events",
        start=Bound(offset=1200),
    )
    history = History([lead(50)], [], [], [parse_send_event_data(STOP)])
    leads, sends, _, _ = command._sources(options, history, [client()], [])
    assert (sends.kind, sends.origin, sends.name, sends.records) == (
        "send-events",
        "topic",
        "send-events",
        1,
    )
    assert sends.window == leads.window == "from offset 1200 to the end"


STOP = {
    "event_id": "s-1",
    "kind": "replied",
    "client_id": "acme",
    "lead_id": "l-1",
    "occurred_at": "2026-11-24T03:00:00Z",
}


def test_feedback_is_counted_on_the_clients_local_day() -> None:
    # 03:00 UTC on Tuesday is still Monday evening in New York.
    summary = Summary({"name": "t"})
    event = parse_send_event_data(STOP)
    summary.add_feedback(
        Applied(event, (), (), 0),
        build_setup(Client(client_id="acme", timezone="America/New_York"), []),
    )
    summary.add_feedback(Applied(event, (), (), 2), unknown_client("acme"))  # UTC
    days = summary.feedback().per_day
    assert [(d.day, d.send_events, d.refunds) for d in days] == [
        ("2026-11-23", 1, 0),
        ("2026-11-24", 1, 2),
    ]
    assert summary.feedback().refunds_by_kind == {
        "failed": 0,
        "replied": 2,
        "meeting_booked": 0,
        "unsubscribed": 0,
    }


# --- reasons (CONTRACT.md section 11) -----------------------------------------


def warming_domain(every_days: int) -> Resource:
    return Resource.model_validate(
        {
            "client_id": "acme",
            "channel": "email",
            "resource_id": "d1",
            "daily_limit": 28,
            "warmup": {"start": "2026-11-26", "initial": 1, "step": 1, "every_days": every_days},
        }
    )


THURSDAY_8 = "2026-11-26T08:00:00+00:00"  # before email's default 09:00


async def warmup_run(every_days: int, keep: bool = False) -> ReplayRun:
    # three cold leads (email only) on Thursday the 26th, one domain warming up
    # from that day: 1 send on Thursday, then 1 more a day (every_days 1)
    history = History([lead(30, lead_id=f"l{i}", scored_at=THURSDAY_8) for i in range(3)], [], [])
    return await replay(
        history,
        [client()],
        [warming_domain(every_days)],
        Rules(name=f"every {every_days}"),
        Schedule(),
        MemoryQuotaStore(),
        keep_outcomes=keep,
    )


async def test_a_replay_counts_its_entries_by_reason() -> None:
    result = (await warmup_run(1)).summary.result()
    # Thursday takes 1; Friday's cap of 2 takes the other two
    assert list(result.reasons) == list(REASONS)
    assert {r: n for r, n in result.reasons.items() if n} == {"none": 1, "deferred_warmup": 2}
    assert result.by_reason == (
        ReasonCount("acme", "email", "deferred_warmup", 2),
        ReasonCount("acme", "email", "none", 1),
    )
    written = result.to_json()
    assert written["reasons"]["deferred_warmup"] == 2
    assert written["by_reason"][1] == {
        "client_id": "acme",
        "channel": "email",
        "reason": "none",
        "count": 1,
    }
    # every entry has one reason: they add up to the entries
    assert sum(result.reasons.values()) == result.channel_entries
    assert result.sends_per_day() == Counter(
        {("2026-11-26", "email"): 1, ("2026-11-27", "email"): 2}
    )


async def test_send_changes_count_the_entries_whose_reason_changed() -> None:
    base, slower = await warmup_run(1, keep=True), await warmup_run(3, keep=True)
    # every 3 days: 1 on Thursday and Friday, 1 deferred to Monday (cap 1 + 1)
    changes = send_changes(base, slower)
    assert (changes.moved_in_time, changes.another_reason) == (1, 0)
    assert changes.reason_changes == ()
    no_warmup = await replay(
        History([lead(30, lead_id=f"l{i}", scored_at=THURSDAY_8) for i in range(3)], [], []),
        [client()],
        [resource("email", "d1", limit=28)],
        Rules(),
        Schedule(),
        MemoryQuotaStore(),
        keep_outcomes=True,
    )
    # without a warm-up all three go on Thursday; with it two wait for Friday
    changes = send_changes(no_warmup, base)
    assert (changes.moved_in_time, changes.another_reason) == (2, 2)
    assert changes.reason_changes == (ReasonChange("email", "none", "deferred_warmup", 2),)
    assert changes.to_json()["entries_with_another_reason"] == 2

    comparison = Comparison(no_warmup.summary.result(), base.summary.result(), changes)
    assert comparison.reasons() == ["none", "deferred_warmup"]
    assert comparison.day_changes() == (
        DayChange("2026-11-26", "email", 3, 1),
        DayChange("2026-11-27", "email", 0, 2),
    )
    written = comparison.to_json()
    assert written["reasons"]["variant"]["deferred_warmup"] == 2
    assert written["reason_changes"] == [
        {"channel": "email", "baseline": "none", "variant": "deferred_warmup", "count": 2}
    ]
    assert written["sends_per_day_changed"][0] == {
        "day": "2026-11-26",
        "channel": "email",
        "baseline": 3,
        "variant": 1,
        "change": -2,
    }


def test_a_summary_from_before_reasons_counts_none() -> None:
    summary = Summary({"name": "t"}).result()
    assert summary.reason_count("deferred_weekly") == 0
    assert set(summary.reasons.values()) == {0}


def paced_clients(directory: Path, gap_seconds: int) -> Path:
    """The sample clients, each pacing its email sends `gap_seconds` apart."""
    rows = [json.loads(line) for line in (SAMPLES_DIR / "clients.jsonl").read_text().splitlines()]
    for row in rows:
        row["pacing"] = {"email": {"gap_seconds": gap_seconds}}
    path = directory / "clients.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def email_minutes(summary: dict[str, Any]) -> dict[int, set[int]]:
    """hour -> the minutes of it with an email send, from summary.json."""
    minutes: dict[int, set[int]] = {}
    for m in summary["send_minutes"]:
        if m["channel"] == "email":
            minutes.setdefault(m["hour"], set()).add(m["minute"])
    return minutes


def test_pacing_spreads_the_sends_of_a_slot_over_the_minutes_after_it(tmp_path: Path) -> None:
    paths = write_history(tmp_path, leads=300, bad=False)
    run_args = replay_args(paths, tmp_path / "plain.jsonl", "--report", str(tmp_path / "plain"))
    assert main(run_args) == 0
    plain = json.loads((tmp_path / "plain" / "summary.json").read_text())
    # without pacing every send goes out on the hour its schedule or pattern gave
    assert email_minutes(plain) and all(m == {0} for m in email_minutes(plain).values())

    paths["clients"] = paced_clients(tmp_path, 300)
    for run in ("a", "b"):
        args = replay_args(paths, tmp_path / f"{run}.jsonl", "--report", str(tmp_path / run))
        assert main(args) == 0
    written = (tmp_path / "a" / "summary.json").read_bytes()
    assert written == (tmp_path / "b" / "summary.json").read_bytes()  # jitter is no chance
    paced = json.loads(written)
    minutes = email_minutes(paced)
    # the sends of one hour spread over its minutes: more than one 10-minute bin
    assert any(len({m // 10 for m in within}) > 1 for within in minutes.values())
    # every send counted once, at its minute: as many as the hours count
    assert sum(m["count"] for m in paced["send_minutes"]) == sum(
        t["count"] for t in paced["send_times"]
    )


def test_a_tallied_counter_cannot_be_set_and_reads_from_the_class() -> None:
    summary = Summary({"name": "t"})
    with pytest.raises(AttributeError, match=r"counted by Summary\.add"):
        summary.tiers = Counter({"A": 1})
    assert hasattr(Summary, "tiers")  # the descriptor, from the class
