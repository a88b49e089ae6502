"""Replay sources: file records with their bad lines, topic records already read
(no broker), the event-time merge of leads and patterns, and --from/--to bounds."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from allocator.models import HowPattern, ScoredLead, WhenPattern, parse_pattern_data
from allocator.replay.sources import (
    Bound,
    History,
    RawRecord,
    from_file,
    parse_lead_data,
    parse_records,
)
from tests.factories import how, lead, when


def lead_line(lead_id: str, scored_at: str = "2026-11-26T12:00:00Z") -> str:
    return json.dumps(
        {"lead_id": lead_id, "client_id": "acme", "als_score": 50, "scored_at": scored_at}
    )


def test_file_records_keep_input_order_and_bad_lines_are_named_and_skipped(
    tmp_path: Path,
) -> None:
    path = tmp_path / "leads.jsonl"
    lines = [
        lead_line("a", "2026-11-26T15:00:00Z"),
        "not json",
        "",  # blank lines are not records, but they are counted as lines
        lead_line("b", "2026-11-26T09:00:00Z"),
        '{"lead_id": "c", "client_id": "acme", "als_score": 50}',
        '{"lead_id": "d", "client_id": "acme", "als_score": 500, '
        '"scored_at": "2026-11-26T12:00:00Z"}',
        lead_line("e"),
    ]
    path.write_text("\n".join(lines) + "\n")

    leads, rejected = from_file(path, parse_lead_data)

    # Input order, not time order: the file's order is what the output keeps.
    assert [one.lead_id for one in leads] == ["a", "b", "e"]
    assert [(r.source, r.where, r.error.code) for r in rejected] == [
        (str(path), "line 2", "invalid_json"),
        (str(path), "line 5", "missing_field"),
        (str(path), "line 6", "out_of_range"),
    ]
    assert rejected[1].describe() == (
        f"{path} line 5: [missing_field] scored_at: required field is missing"
    )
    assert rejected[2].error.field == "als_score" and rejected[2].error.value == 500


def test_pattern_files_read_both_kinds_and_reject_an_unknown_kind(tmp_path: Path) -> None:
    path = tmp_path / "patterns.jsonl"
    rows = [
        {
            "client_id": "acme",
            "pattern_type": "how",
            "winning_sequence": ["voice", "email"],
            "confidence": 0.8,
            "updated_at": "2026-11-26T10:00:00Z",
        },
        {"client_id": "acme", "pattern_type": "why", "updated_at": "2026-11-26T10:00:00Z"},
        {
            "client_id": "acme",
            "pattern_type": "when",
            "channel": "email",
            "optimal_day": 1,
            "optimal_hour": 8,
            "confidence": 0.7,
            "updated_at": "2026-11-26T11:00:00Z",
        },
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))

    patterns, rejected = from_file(path, parse_pattern_data)

    assert [type(p) for p in patterns] == [HowPattern, WhenPattern]
    assert [(r.where, r.error.code, r.error.field) for r in rejected] == [
        ("line 2", "unknown_pattern_type", "pattern_type")
    ]


def test_topic_records_name_partition_and_offset_of_a_bad_one() -> None:
    records: list[RawRecord] = [
        (0, 4, 1000, lead_line("a").encode()),
        (1, 7, 1001, b'{"lead_id": "x"'),
        (0, 5, 1002, None),  # a tombstone
        (2, 0, 1003, lead_line("b").encode()),
    ]

    leads, rejected = parse_records("scored-leads", records, parse_lead_data)

    assert [one.lead_id for one in leads] == ["a", "b"]
    assert [(r.source, r.where, r.error.code) for r in rejected] == [
        ("scored-leads", "partition 1 offset 7", "invalid_json"),
        ("scored-leads", "partition 0 offset 5", "empty_value"),
    ]


def event_ids(history: History) -> list[str]:
    names = []
    for index, event in history.in_event_time():
        if isinstance(event, ScoredLead):
            names.append(f"lead {event.lead_id} #{index}")
        else:
            names.append(f"{event.pattern_type} {event.client_id} #{index}")
    return names


def test_leads_and_patterns_merge_by_event_time() -> None:
    history = History(
        leads=[
            lead(lead_id="late", scored_at="2026-11-26T15:00:00+00:00"),
            lead(lead_id="early", scored_at="2026-11-26T08:00:00+00:00"),
            # 10:30 in New York is 15:30 UTC: times compare as instants, not as text
            lead(lead_id="ny", scored_at="2026-11-26T10:30:00-05:00"),
        ],
        patterns=[
            how(["email"], updated_at="2026-11-26T12:00:00Z", client_id="p-noon"),
            when("email", 1, 9, updated_at="2026-11-26T07:00:00Z", client_id="p-seven"),
        ],
        rejected=[],
    )
    assert event_ids(history) == [
        "when p-seven #1",
        "lead early #1",
        "how p-noon #0",
        "lead late #0",
        "lead ny #2",
    ]


def test_ties_a_pattern_before_leads_of_its_instant_then_input_order() -> None:
    noon = "2026-11-26T12:00:00+00:00"
    history = History(
        leads=[
            lead(lead_id="l0", scored_at=noon),
            lead(lead_id="l1", scored_at="2026-11-26T11:59:59+00:00"),
            lead(lead_id="l2", scored_at=noon),
            lead(lead_id="l3", scored_at=noon),
        ],
        patterns=[
            when("email", 1, 9, updated_at=noon, client_id="p0"),
            how(["email"], updated_at=noon, client_id="p1"),
        ],
        rejected=[],
    )
    assert event_ids(history) == [
        "lead l1 #1",
        "when p0 #0",
        "how p1 #1",
        "lead l0 #0",
        "lead l2 #2",
        "lead l3 #3",
    ]


def test_an_empty_history_has_no_events() -> None:
    assert History([], [], []).in_event_time() == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, None),
        ("0", Bound(offset=0)),
        ("1200", Bound(offset=1200)),
        ("2026-11-26T13:00:00Z", Bound(at=datetime(2026, 11, 26, 13, tzinfo=UTC))),
        (
            "2026-11-26T08:00:00-05:00",
            Bound(at=datetime(2026, 11, 26, 13, tzinfo=UTC)),  # equal instants compare equal
        ),
    ],
)
def test_bounds_are_offsets_or_times_with_an_offset(text: str | None, expected: Bound) -> None:
    assert Bound.parse(text) == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("yesterday", "neither an offset nor an RFC 3339 time"),
        ("-5", "neither an offset nor an RFC 3339 time"),
        ("²", "neither an offset nor an RFC 3339 time"),  # a digit to isdigit(), not to int()
        ("2026-11-26T13:00:00", "the time has no UTC offset"),
        ("2026-11-26", "the time has no UTC offset"),
    ],
)
def test_a_bad_bound_says_what_is_wrong(text: str, problem: str) -> None:
    with pytest.raises(ValueError) as caught:
        Bound.parse(text)
    assert str(caught.value) == problem
