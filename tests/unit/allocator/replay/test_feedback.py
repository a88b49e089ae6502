"""`allocator replay --send-events`: feedback from the dispatchers merged with the
leads by event time, through the same quota store as the decisions (CONTRACT.md
sections 10 and 12): a stop cancels the lead's later sends and suppresses its
next event, a failed send gives its count back, a throttled resource is skipped
until retry_after; a send-event naming no reserved send is skipped and reported
as a bad line is; what it produced is written byte-identical run after run.

Each history is replayed first without send-events; the send-events are then
written from the allocations it made, as a dispatcher would.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from allocator.decision import Schedule
from allocator.models import Client, ScoredLead, SendEvent
from allocator.quota import MemoryQuotaStore
from allocator.replay.rules import Rules
from allocator.replay.runner import replay
from allocator.replay.sources import (
    History,
    Origin,
    RawRecord,
    located_records,
    parse_send_event_data,
)
from streams.cli import main
from tests.factories import client, how, lead, resource
from tests.replay_data import (
    allocations,
    at,
    entry,
    lead_row,
    send_event,
    setup_args,
    write_lines,
    write_setup,
)
from tests.unit.allocator.replay.test_report import read

EMAIL = {"client_id": "acme", "channel": "email", "resource_id": "mail-1"}
SEAT = {"client_id": "acme", "channel": "linkedin", "resource_id": "seat-1"}
VOICE = {"client_id": "acme", "channel": "voice", "resource_id": "voice-1"}
WARM = 70  # email, linkedin, voice; default sends at 09:00, 10:00, 11:00 UTC
COLD = 25  # email only


def run(args: list[str]) -> None:
    assert main(args) == 0


def first_pass(
    tmp_path: Path,
    leads: list[dict[str, Any]],
    resources: list[dict[str, Any]],
    clients: list[dict[str, Any]] | None = None,
) -> tuple[dict[str, Path], dict[str, dict[str, Any]]]:
    """The setup's files, and the allocations a replay without send-events makes."""
    paths = write_setup(tmp_path, leads, resources, clients=clients)
    run(setup_args(paths, tmp_path / "first.jsonl"))
    return paths, allocations(tmp_path / "first.jsonl")


def with_feedback(
    tmp_path: Path, paths: dict[str, Path], events: list[dict[str, Any]] | Path, *extra: str
) -> dict[str, Path]:
    """Replays with `events` (or the file of them) as --send-events; the files
    it wrote, in `tmp_path`."""
    if not isinstance(events, Path):
        events = write_lines(tmp_path / "send-events.jsonl", events)
    written = {
        "send_events": events,
        "out": tmp_path / "out.jsonl",
        "cancellations": tmp_path / "cancellations.jsonl",
        "health": tmp_path / "health.jsonl",
        "report": tmp_path / "r",
    }
    run(
        setup_args(
            paths,
            written["out"],
            "--send-events",
            str(written["send_events"]),
            "--cancellations",
            str(written["cancellations"]),
            "--health",
            str(written["health"]),
            "--report",
            str(written["report"]),
            *extra,
        )
    )
    return written


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def summary_of(written: dict[str, Path]) -> dict[str, Any]:
    found: dict[str, Any] = json.loads((written["report"] / "summary.json").read_text())
    return found


# --- a stop -------------------------------------------------------------------


def stop_history(tmp_path: Path) -> tuple[dict[str, Path], dict[str, dict[str, Any]]]:
    """Lead A (warm) scored Monday 07:00: email 09:00, linkedin 10:00, voice 11:00.
    Lead A scored again on Tuesday, lead B (warm) on Monday after A."""
    leads = [
        lead_row("a-1", "A", at(0, "07:00"), WARM),
        lead_row("b-1", "B", at(0, "07:30"), WARM),
        lead_row("a-2", "A", at(1, "08:00"), WARM),
    ]
    return first_pass(tmp_path, leads, [EMAIL, SEAT, VOICE])


def test_a_reply_cancels_the_leads_later_sends_and_suppresses_its_next_event(
    tmp_path: Path,
) -> None:
    paths, first = stop_history(tmp_path)
    assert [e["status"] for e in first["a-2"]["channels"]] == ["allocated"] * 3
    a = first["a-1"]
    # The email went out at 09:00; A replied at 09:30, before linkedin and voice.
    events = [
        send_event("s-1", "sent", at(0, "09:00"), a, "email"),
        send_event("r-1", "replied", at(0, "09:30"), lead_id="A"),
    ]
    written = with_feedback(tmp_path, paths, events)

    assert lines(written["cancellations"]) == [
        {
            "allocation_id": a["allocation_id"],
            "event_id": "a-1",
            "lead_id": "A",
            "client_id": "acme",
            "channel": channel,
            "resource_id": entry(a, channel)["resource_id"],
            "send_at": entry(a, channel)["send_at"],
            "reason": "replied",
            "cancelled_at": at(0, "09:30"),
            "feedback_event_id": "r-1",
        }
        for channel in ("linkedin", "voice")
    ]
    out = allocations(written["out"])
    # Lead A's next event, within the 90 days of suppression: every channel suppressed.
    assert [
        (e["status"], e["resource_id"], e["reason"]["code"]) for e in out["a-2"]["channels"]
    ] == [("suppressed", None, "suppressed")] * 3
    # What was decided before the reply is as it was; B is not A.
    assert out["a-1"] == first["a-1"] and out["b-1"] == first["b-1"]
    assert lines(written["health"]) == []

    feedback = summary_of(written)["feedback"]
    assert feedback["send_events"] == 2
    assert feedback["cancellations"] == 2
    assert feedback["cancellations_by"] == [
        {"channel": "linkedin", "reason": "replied", "count": 1},
        {"channel": "voice", "reason": "replied", "count": 1},
    ]
    # A cancelled send's count is given back to its day.
    assert feedback["refunds"] == 2 and feedback["refunds_by_kind"]["replied"] == 2
    assert feedback["per_day"] == [
        {
            "day": "2026-11-23",
            "send_events": 2,
            "refunds": 2,
            "cancellations": 2,
            "health_changes": 0,
        }
    ]
    assert summary_of(written)["statuses"]["suppressed"] == 3


def test_a_stop_at_the_instant_a_lead_is_scored_suppresses_it(tmp_path: Path) -> None:
    # A send-event at a lead's scored_at comes first: what it does holds from then on.
    paths, _ = stop_history(tmp_path)
    events = [send_event("u-1", "unsubscribed", at(1, "08:00"), lead_id="A")]
    written = with_feedback(tmp_path, paths, events)
    out = allocations(written["out"])
    assert {e["status"] for e in out["a-2"]["channels"]} == {"suppressed"}
    # unsubscribed on Tuesday: Monday's sends had all gone out, nothing to cancel
    assert lines(written["cancellations"]) == []


# --- a refund -----------------------------------------------------------------


def test_a_failed_send_gives_its_count_back_and_a_later_lead_gets_the_slot(
    tmp_path: Path,
) -> None:
    # One mailbox with room for one send a day; two cold leads on Monday morning.
    leads = [
        lead_row("a-1", "A", at(0, "07:00"), COLD),
        lead_row("b-1", "B", at(0, "08:40"), COLD),
    ]
    paths, first = first_pass(tmp_path, leads, [{**EMAIL, "daily_limit": 1}])
    b = entry(first["b-1"], "email")
    assert (b["send_at"], b["reason"]["code"]) == (at(1, "09:00"), "deferred_full")

    # A's send failed before B was scored: its count is given back to Monday.
    events = [send_event("f-1", "failed", at(0, "08:30"), first["a-1"], "email")]
    written = with_feedback(tmp_path, paths, events)

    b = entry(allocations(written["out"])["b-1"], "email")
    assert (b["status"], b["resource_id"], b["send_at"], b["reason"]) == (
        "allocated",
        "mail-1",
        at(0, "09:00"),
        None,
    )
    feedback = summary_of(written)["feedback"]
    assert (feedback["refunds"], feedback["refunds_by_kind"]["failed"]) == (1, 1)
    assert feedback["cancellations"] == 0
    assert lines(written["cancellations"]) == [] and lines(written["health"]) == []


# --- resource health ----------------------------------------------------------


def test_a_throttled_resource_is_skipped_until_retry_after(tmp_path: Path) -> None:
    # A's Monday email is throttled at 08:00, retry after Tuesday 09:00. B, scored
    # after it, would send Monday 09:00: the mailbox is cooling then, and takes
    # B on Tuesday at 09:00, when it may send again (one deferral step).
    leads = [
        lead_row("a-1", "A", at(0, "07:00"), COLD),
        lead_row("b-1", "B", at(0, "08:10"), COLD),
    ]
    paths, first = first_pass(tmp_path, leads, [EMAIL])
    assert entry(first["b-1"], "email")["send_at"] == at(0, "09:00")
    events = [
        send_event(
            "t-1", "throttled", at(0, "08:00"), first["a-1"], "email", retry_after=at(1, "09:00")
        )
    ]
    written = with_feedback(tmp_path, paths, events)

    b = entry(allocations(written["out"])["b-1"], "email")
    assert (b["status"], b["send_at"], b["reason"]["code"]) == (
        "allocated",
        at(1, "09:00"),
        "deferred_health",
    )
    assert lines(written["health"]) == [
        {
            "client_id": "acme",
            "channel": "email",
            "resource_id": "mail-1",
            "state": "cooling",
            "until": at(1, "09:00"),
            "reason": "throttled",
            "changed_at": at(0, "08:00"),
            "feedback_event_id": "t-1",
        }
    ]
    summary = summary_of(written)
    feedback = summary["feedback"]
    assert feedback["health_changes"] == 1
    assert feedback["health_by_state"] == {"active": 0, "cooling": 1, "paused": 0}
    assert feedback["health_by"] == [{"state": "cooling", "cause": "throttled", "count": 1}]
    assert feedback["health_listed"] == [
        {
            "changed_at": at(0, "08:00"),
            "client_id": "acme",
            "channel": "email",
            "resource_id": "mail-1",
            "state": "cooling",
            "until": at(1, "09:00"),
            "reason": "throttled",
        }
    ]
    assert summary["reasons"]["deferred_health"] == 1


def test_a_cooldown_that_ends_is_a_record_too(tmp_path: Path) -> None:
    # As above, and a `sent` two days later: by then the cooldown has ended,
    # and the health file says so at the instant it ended.
    leads = [lead_row("a-1", "A", at(0, "07:00"), COLD)]
    paths, first = first_pass(tmp_path, leads, [EMAIL])
    events = [
        send_event(
            "t-1", "throttled", at(0, "08:00"), first["a-1"], "email", retry_after=at(1, "09:00")
        ),
        send_event("s-1", "sent", at(2, "09:00"), first["a-1"], "email"),
    ]
    written = with_feedback(tmp_path, paths, events)
    states = [(h["state"], h["changed_at"], h["reason"]) for h in lines(written["health"])]
    assert states == [
        ("cooling", at(0, "08:00"), "throttled"),
        ("active", at(1, "09:00"), "cooldown over"),
    ]
    assert summary_of(written)["feedback"]["health_by_state"]["active"] == 1


# --- bad send-events ----------------------------------------------------------


def test_a_send_event_naming_no_reserved_send_is_reported_like_a_bad_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths, first = stop_history(tmp_path)
    a = first["a-1"]
    events: list[Any] = [
        send_event("ok", "sent", at(0, "09:00"), a, "email"),
        send_event("no-such", "sent", at(0, "09:01"), a, "email", allocation_id="nope"),
        send_event("other", "bounced", at(0, "09:02"), a, "email", resource_id="mail-9"),
        send_event("no-sms", "failed", at(0, "09:03"), a, "email") | {"channel": "sms"},
        send_event("missing", "sent", at(0, "09:04"), lead_id="A"),  # no allocation_id
    ]
    written = {"send_events": tmp_path / "send-events.jsonl", "r": tmp_path / "r"}
    text = "".join(json.dumps(e) + "\n" for e in events)
    written["send_events"].write_text(text + "not json\n")
    run(
        setup_args(
            paths,
            tmp_path / "out.jsonl",
            "--send-events",
            str(written["send_events"]),
            "--report",
            str(written["r"]),
        )
    )
    source = str(written["send_events"])
    errors = capsys.readouterr().err.splitlines()
    # Parse errors are named before the replay, sends not reserved as it finds them.
    assert errors[:2] == [
        f"skipped {source} line 5: [missing_field] allocation_id: required for kind 'sent'",
        f"skipped {source} line 6: [invalid_json] value is not JSON: Expecting value: "
        "line 1 column 1 (char 0)",
    ]
    assert errors[2:5] == [
        f"skipped {source} line 2: [unknown_send] allocation_id: no email send of "
        "allocation nope was reserved for lead A",
        f"skipped {source} line 3: [unknown_send] resource_id: allocation "
        f"{a['allocation_id']} sends email through mail-1, not mail-9",
        f"skipped {source} line 4: [unknown_send] allocation_id: no sms send of "
        f"allocation {a['allocation_id']} was reserved for lead A",
    ]
    summary = json.loads((written["r"] / "summary.json").read_text())
    assert summary["invalid_records"] == 5
    assert summary["invalid_by_code"] == {
        "invalid_json": 1,
        "missing_field": 1,
        "unknown_send": 3,
    }
    assert summary["feedback"]["send_events"] == 1  # the good one, applied
    assert summary["feedback"]["by_kind"]["sent"] == 1
    sources = {s["kind"]: s for s in summary["inputs"]["sources"]}
    assert sources["send-events"] == {
        "kind": "send-events",
        "origin": "file",
        "name": source,
        "records": 1,
        "skipped": 5,
        "window": None,
    }
    assert summary["inputs"]["send_events_read"] == 4
    where = [(s["where"], s["code"]) for s in summary["inputs"]["skipped_listed"]]
    assert ("line 3", "unknown_send") in where and ("line 6", "invalid_json") in where


# --- determinism and batches --------------------------------------------------


def busy_history(tmp_path: Path) -> tuple[dict[str, Path], list[dict[str, Any]]]:
    """Two days of warm leads over two mailboxes, seats and numbers; send-events
    of every effect: sent, failed, bounced, complained, throttled, auth_failed,
    replied, meeting_booked, unsubscribed."""
    leads = [
        lead_row(f"e-{day}-{n}", f"L{n}", at(day, f"07:{n:02d}"), WARM)
        for day in range(3)
        for n in range(12)
    ]
    resources = [
        EMAIL,
        {**EMAIL, "resource_id": "mail-2"},
        SEAT,
        {**SEAT, "resource_id": "seat-2"},
        VOICE,
    ]
    clients = [{"client_id": "acme", "timezone": "UTC", "complaint_limit": 1}]
    paths, first = first_pass(tmp_path, leads, resources, clients)
    day0 = [first[f"e-0-{n}"] for n in range(12)]
    events = [
        send_event("ev-0", "sent", at(0, "09:00"), day0[0], "email"),
        send_event("ev-1", "failed", at(0, "08:59"), day0[1], "email"),
        send_event("ev-2", "bounced", at(0, "09:05"), day0[2], "email"),
        send_event("ev-3", "complained", at(0, "09:10"), day0[3], "email"),
        send_event(
            "ev-4", "throttled", at(0, "09:30"), day0[4], "linkedin", retry_after=at(1, "12:00")
        ),
        send_event("ev-5", "auth_failed", at(0, "09:40"), day0[5], "voice"),
        send_event("ev-6", "replied", at(0, "09:45"), lead_id="L6"),
        send_event("ev-7", "meeting_booked", at(0, "09:50"), lead_id="L7"),
        send_event("ev-8", "unsubscribed", at(0, "09:55"), lead_id="L8"),
        # the same stop again, another event id: nothing left to cancel
        send_event("ev-9", "replied", at(0, "10:30"), lead_id="L6"),
    ]
    return paths, events


def test_the_outputs_are_byte_identical_across_runs(tmp_path: Path) -> None:
    (tmp_path / "setup").mkdir()
    paths, events = busy_history(tmp_path / "setup")
    sends = write_lines(tmp_path / "setup" / "send-events.jsonl", events)
    runs = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        written = with_feedback(tmp_path / name, paths, sends)
        runs.append(
            [written[k].read_bytes() for k in ("out", "cancellations", "health")]
            + [(written["report"] / "summary.json").read_bytes()]
        )
    assert runs[0] == runs[1]
    out, cancellations, health, _ = runs[0]
    assert out and cancellations and health  # every output has something to compare
    summary = json.loads(runs[0][3])
    feedback = summary["feedback"]
    assert feedback["send_events"] == len(events)
    assert feedback["health_by_state"] == {"active": 0, "cooling": 2, "paused": 1}
    assert {(h["state"], h["cause"]) for h in feedback["health_by"]} == {
        ("cooling", "throttled"),
        ("cooling", "complained"),  # complaint_limit 1: one complaint cools the mailbox
        ("paused", "auth_failed"),
    }
    assert {c["reason"] for c in feedback["cancellations_by"]} == {
        "replied",
        "meeting_booked",
        "unsubscribed",
    }
    assert summary["statuses"]["suppressed"] == 3 * 2 * 3  # 3 leads, 2 later days, 3 channels


async def test_batches_of_any_size_give_the_same_replay() -> None:
    # One send-event at a time or all between two leads at once: the same answers.
    leads = [
        lead(70, lead_id=f"L{n}", scored_at=at(day, f"07:{n:02d}"), event_id=f"e-{day}-{n}")
        for day in range(2)
        for n in range(4)
    ]
    setup = ([client()], [resource("email", "m1", limit=2), resource("linkedin", "s1")])
    first = await replay(History(leads, [], []), *setup, Rules(), Schedule(), MemoryQuotaStore())
    made = {json.loads(line)["event_id"]: json.loads(line) for line in first.lines}
    rows = [
        send_event("f0", "failed", at(0, "08:00"), made["e-0-0"], "email"),
        send_event("f1", "failed", at(0, "08:00"), made["e-0-1"], "email"),
        send_event("r2", "replied", at(0, "09:30"), lead_id="L2"),
        send_event("t3", "throttled", at(0, "09:31"), made["e-0-3"], "linkedin"),
    ]
    history = History(leads, [], [], [parse_send_event_data(r) for r in rows])
    runs = []
    for size in (1, 2, 1000):
        one = await replay(
            history, *setup, Rules(), Schedule(), MemoryQuotaStore(), batch_size=size
        )
        runs.append((one.lines, one.cancellations, one.health, one.summary.to_json()))
    assert runs[0] == runs[1] == runs[2]
    assert runs[0][1] and runs[0][2]


async def test_a_replay_keeps_an_index_of_sends_only_for_what_reads_it() -> None:
    """A lead's index of sends is read by send-events and sticky senders alone:
    a replay of leads without either keeps none, and decides the same."""
    leads = [
        lead(70, lead_id=f"L{n}", scored_at=at(0, f"07:{n:02d}"), event_id=f"e-{n}")
        for n in range(3)
    ]
    resources = [resource("email", "m1", limit=2), resource("linkedin", "s1")]
    alone, with_events, sticky = MemoryQuotaStore(), MemoryQuotaStore(), MemoryQuotaStore()
    bare = await replay(History(leads, [], []), [client()], resources, Rules(), Schedule(), alone)
    assert bare.lines and not alone.index_sends and alone.state.sends == {}
    # a send-event (here one naming no reserved send) may read the index: kept
    event = parse_send_event_data(send_event("r9", "replied", at(1, "09:00"), lead_id="L9"))
    fed = await replay(
        History(leads, [], [], [event]), [client()], resources, Rules(), Schedule(), with_events
    )
    assert with_events.index_sends
    assert sum(1 for sends in with_events.state.sends.values() if sends) == 3
    assert fed.lines == bare.lines
    # a sticky sender reads it too
    keeps = Client(client_id="acme", sticky_days=3)
    await replay(History(leads, [], []), [keeps], resources, Rules(), Schedule(), sticky)
    assert sticky.index_sends and len(sticky.state.sends) == 3


# --- sources ------------------------------------------------------------------


def test_send_events_merge_between_patterns_and_leads_of_their_instant() -> None:
    noon = "2026-11-26T12:00:00+00:00"
    history = History(
        leads=[
            lead(lead_id="l0", scored_at=noon),
            lead(lead_id="l1", scored_at="2026-11-26T11:00:00Z"),
        ],
        patterns=[how(["email"], updated_at=noon)],
        rejected=[],
        send_events=[
            parse_send_event_data(send_event("s0", "replied", noon, lead_id="x")),
            parse_send_event_data(send_event("s1", "replied", "2026-11-26T10:00:00Z", lead_id="y")),
            parse_send_event_data(send_event("s2", "replied", noon, lead_id="z")),
        ],
    )

    def name(event: object) -> str:
        if isinstance(event, ScoredLead):
            return event.lead_id
        if isinstance(event, SendEvent):
            return event.event_id
        return "pattern"

    assert [(i, name(e)) for i, e in history.in_event_time()] == [
        (1, "s1"),
        (1, "l1"),
        (0, "pattern"),
        (0, "s0"),
        (2, "s2"),
        (0, "l0"),
    ]
    assert history.origin(2) == Origin("send-events", "event s2")  # built in code: no file


def test_topic_send_events_keep_their_partition_and_offset() -> None:
    good = json.dumps(send_event("s0", "replied", at(0, "09:00"), lead_id="A")).encode()
    records: list[RawRecord] = [
        (1, 40, 1000, good),
        (0, 7, 1001, b'{"event_id": "s1", "kind": "opened"}'),
        (2, 3, 1002, good.replace(b"s0", b"s2")),
    ]
    sends, origins, rejected = located_records("send-events", records, parse_send_event_data)
    assert [s.event_id for s in sends] == ["s0", "s2"]
    assert origins == [
        Origin("send-events", "partition 1 offset 40"),
        Origin("send-events", "partition 2 offset 3"),
    ]
    assert [(r.where, r.error.code, r.error.field) for r in rejected] == [
        ("partition 0 offset 7", "unknown_kind", "kind")
    ]


# --- what is shown ------------------------------------------------------------


def test_the_report_and_the_terminal_show_refunds_cancellations_and_health(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "setup").mkdir()
    paths, events = busy_history(tmp_path / "setup")
    write_lines(tmp_path / "send-events.jsonl", events)
    report = tmp_path / "r"
    args = setup_args(
        paths,
        tmp_path / "out.jsonl",
        "--send-events",
        str(tmp_path / "send-events.jsonl"),
        "--report",
        str(report),
    )
    assert main([a for a in args if a != "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "feedback from the dispatchers (send-events)" in out
    assert (
        "cancelled by channel and reason: linkedin replied 1, linkedin meeting_booked 1, "
        "linkedin unsubscribed 1, voice replied 1, voice meeting_booked 1, voice unsubscribed 1"
    ) in out
    assert (
        "health changes by state (cause): cooling (complained) 1, cooling (throttled) 1, "
        "paused (auth_failed) 1"
    ) in out

    page = read(report)
    assert "Feedback from the dispatchers: refunds, cancellations, resource health" in page.headings
    summary = json.loads((report / "summary.json").read_text())
    feedback = summary["feedback"]
    figures = {name: count for name, count in page.table_after("figure")[1:]}
    assert figures["send-events applied"] == str(len(events))
    assert figures["sends whose counts were given back (refunds)"] == str(feedback["refunds"])
    assert figures["reserved sends cancelled"] == str(feedback["cancellations"])
    assert figures["health changes to paused"] == "1"
    kinds = page.table_after("kind")
    assert kinds[0] == ["kind", "what it does", "send-events applied", "sends given back"]
    assert [row[0] for row in kinds[1:]] == [
        "sent",
        "failed",
        "bounced",
        "complained",
        "throttled",
        "auth_failed",
        "replied",
        "meeting_booked",
        "unsubscribed",
    ]
    assert page.table_after("channel") == [
        ["channel", "reason (the stop's kind)", "sends cancelled"],
        *(
            [channel, reason, "1"]
            for channel in ("linkedin", "voice")
            for reason in ("replied", "meeting_booked", "unsubscribed")
        ),
    ]
    health = page.table_after("state")
    assert health[1:] == [
        ["cooling", "complained", "1"],
        ["cooling", "throttled", "1"],
        ["paused", "auth_failed", "1"],
    ]
    listed = page.table_after("changed at")
    assert listed[-1][:5] == ["2026-11-23 09:40:00+00:00", "acme", "voice", "voice-1", "paused"]
    assert listed[-1][5] == "loaded again as active"
    per_day = page.table_after("day (client-local, of the event)")
    assert per_day[1] == [
        "2026-11-23",
        str(len(events)),
        str(feedback["refunds"]),
        str(feedback["cancellations"]),
        "3",
    ]
    assert page.chart_divs == 4  # tables, not charts


def test_without_send_events_the_report_says_so(tmp_path: Path) -> None:
    paths, _ = stop_history(tmp_path)
    run(setup_args(paths, tmp_path / "out.jsonl", "--report", str(tmp_path / "r")))
    page = read(tmp_path / "r")
    assert any("This replay was given no send-events" in p for p in page.paragraphs)
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["feedback"]["send_events"] == 0
    assert summary["inputs"]["send_events_read"] == 0
    assert "send-events" not in {s["kind"] for s in summary["inputs"]["sources"]}


# --- --compare: thresholds and the sticky sender --------------------------------


def rules_file(tmp_path: Path, content: dict[str, Any]) -> Path:
    path = tmp_path / "rules.json"
    path.write_text(json.dumps(content))
    return path


def compare(tmp_path: Path, args: list[str], rules: dict[str, Any]) -> dict[str, Any]:
    """Runs `args` with --compare `rules` and --report; compare.json."""
    report = tmp_path / "r"
    run([*args, "--compare", str(rules_file(tmp_path, rules)), "--report", str(report)])
    found: dict[str, Any] = json.loads((report / "compare.json").read_text())
    return found


TWO_MAILBOXES = [EMAIL, {**EMAIL, "resource_id": "mail-2"}]


def test_compare_sticky_days_keeps_a_leads_follow_up_on_its_mailbox(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Monday: X then Y, one to each mailbox. Tuesday: Y first, then X. Least
    # used alone hands Y mail-1 and X mail-2; sticky for 8 days, each keeps its own.
    leads = [
        lead_row("x-1", "X", at(0, "07:00"), COLD),
        lead_row("y-1", "Y", at(0, "07:01"), COLD),
        lead_row("y-2", "Y", at(1, "07:00"), COLD),
        lead_row("x-2", "X", at(1, "07:01"), COLD),
    ]
    paths, first = first_pass(tmp_path, leads, TWO_MAILBOXES)
    sticky = {"name": "sticky 8 days", "clients": {"acme": {"sticky_days": 8}}}
    mailboxes = {}
    history = History([lead(COLD, **row) for row in leads], [], [])
    setup = ([client()], [resource("email", "mail-1"), resource("email", "mail-2")])
    for rules in (Rules(), Rules.from_file(rules_file(tmp_path, sticky))):
        done = asyncio.run(replay(history, *setup, rules, Schedule(), MemoryQuotaStore()))
        made = [json.loads(line) for line in done.lines]
        mailboxes[rules.name] = {a["event_id"]: entry(a, "email")["resource_id"] for a in made}
    assert mailboxes["baseline"] == {
        "x-1": "mail-1",
        "y-1": "mail-2",
        "y-2": "mail-1",
        "x-2": "mail-2",
    }
    assert mailboxes["sticky 8 days"] == {
        "x-1": "mail-1",
        "y-1": "mail-2",
        "y-2": "mail-2",
        "x-2": "mail-1",
    }

    # The dispatcher's send-events name Tuesday's sends as the baseline made
    # them: the variant replays them too, and reserved those sends elsewhere.
    events = [
        send_event("sent-y", "sent", at(1, "09:00"), first["y-2"], "email"),
        send_event("sent-x", "sent", at(1, "09:00"), first["x-2"], "email"),
    ]
    sends = write_lines(tmp_path / "send-events.jsonl", events)
    args = setup_args(paths, tmp_path / "out.jsonl", "--send-events", str(sends))
    capsys.readouterr()
    compared = compare(tmp_path, args, sticky)
    assert compared["variant"]["clients"] == {"acme": {"sticky_days": 8}}
    assert compared["sends_on_another_resource"] == 2
    assert compared["sends_moved_in_time"] == 0
    feedback = compared["feedback"]
    assert feedback["send_events_applied"] == {"baseline": 2, "variant": 0, "change": -2}
    assert feedback["send_events_naming_no_reserved_send"] == {
        "baseline": 0,
        "variant": 2,
        "change": 2,
    }
    assert capsys.readouterr().err.splitlines()[0] == (
        "under sticky 8 days: 2 send-events name no send it reserved "
        "(skipped; counted in the comparison)"
    )


def test_compare_complaint_limit_changes_which_mailbox_gets_the_next_days_sends(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Four cold leads on Monday spread over two mailboxes; a complaint about
    # one of mail-1's sends at 10:00. Under the default complaint_limit of 3
    # nothing cools; at 1, mail-1 cools for 24 hours and Tuesday's 09:00 sends
    # all go through mail-2.
    leads = [lead_row(f"m-{n}", f"M{n}", at(0, f"07:0{n}"), COLD) for n in range(4)]
    leads += [lead_row(f"t-{n}", f"T{n}", at(1, f"07:0{n}"), COLD) for n in range(4)]
    paths, first = first_pass(tmp_path, leads, TWO_MAILBOXES)
    assert entry(first["m-0"], "email")["resource_id"] == "mail-1"
    events = [send_event("c-1", "complained", at(0, "10:00"), first["m-0"], "email")]
    sends = write_lines(tmp_path / "send-events.jsonl", events)
    args = setup_args(paths, tmp_path / "out.jsonl", "--send-events", str(sends))
    strict = {"name": "one complaint", "clients": {"*": {"complaint_limit": 1}}}
    compared = compare(tmp_path, [a for a in args if a != "--quiet"], strict)

    feedback = compared["feedback"]
    assert feedback["health_changes"] == {"baseline": 0, "variant": 1, "change": 1}
    assert feedback["health_cooling"] == {"baseline": 0, "variant": 1, "change": 1}
    assert feedback["send_events_applied"] == {"baseline": 1, "variant": 1, "change": 0}
    assert compared["sends_on_another_resource"] == 2  # t-0 and t-2 leave mail-1
    # the baseline (summary.json) spreads both days over both mailboxes
    baseline = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert {(r["resource_id"], r["sends"]) for r in baseline["resources"]} == {
        ("mail-1", 4),
        ("mail-2", 4),
    }
    out = capsys.readouterr().out
    assert "feedback: baseline vs variant" in out
    assert any(
        line.split()
        == ["│", "health", "changes", "to", "cooling", "│", "0", "│", "1", "│", "+1", "│"]
        for line in out.splitlines()
    )
    page = read(tmp_path / "r")
    assert "Feedback: baseline and variant" in page.headings
    (table,) = [t for t in page.tables if t[0][:2] == ["figure", "baseline"]]
    rows = {row[0]: row[1:] for row in table[1:]}
    assert rows["resource health changes"] == ["0", "1", "+1"]
    assert page.chart_divs == 7
