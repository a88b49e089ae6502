"""Fuzzing the input boundary: any value ends as a record or an InvalidRecord, and
any record that parses can be decided.

Three kinds of input: (a) arbitrary bytes and JSON-like text; (b) valid
records with fields replaced by nasty values (huge and long numbers, NaN,
deep nesting, lone surrogates, long strings, extreme timestamps, odd zone
names, bools, nulls); (c) every record that parses is planned, reserved (the
farthest deferral day) and completed into an allocation, which must serialise.
The only exception allowed anywhere is an InvalidRecord whose code is an
ErrorCode, and its dead letter must stay small.

FUZZ_EXAMPLES sets how many inputs the file runs in all (default 100,000, about
forty seconds on two cores); `make fuzz` runs millions.
"""

from __future__ import annotations

import json
import os
import zoneinfo
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.dialects import sqlite

from allocator.decision import Plan, Schedule, complete, plan_lead
from allocator.directory import ClientSetup, build_setup
from allocator.errors import MESSAGE_CHARS, ErrorCode, InvalidRecord
from allocator.models import (
    KINDS,
    Client,
    ConversionPattern,
    Resource,
    ScoredLead,
    dead_letter,
    decode_object,
    parse_lead,
    parse_pattern,
    parse_send_event,
    validate,
)
from allocator.patterns import PatternSet
from allocator.quota.base import Reservation, held_name
from allocator.store.schema import UtcTimestamp

T = TypeVar("T")

# Inputs (raw values parsed) of the whole file; each test runs its share of them.
TOTAL = int(os.environ.get("FUZZ_EXAMPLES", "100000"))


def fuzz(share: float, batch: int) -> settings:
    """Settings for a test that runs `share` of the TOTAL inputs, `batch` per example."""
    return settings(
        max_examples=max(1, round(TOTAL * share / batch)),
        deadline=None,  # the first zone lookups and the scan of a 64 KiB value are slow
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
        ],
    )


FAILED_AT = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
SCHEDULE = Schedule()


# --- what may come out -------------------------------------------------------


def parsed(parse: Callable[[bytes], T], raw: bytes) -> T | None:
    """The record, or None when the value is invalid for a stated reason; anything else fails."""
    try:
        return parse(raw)
    except InvalidRecord as error:
        assert isinstance(error.code, ErrorCode)
        assert error.message and len(error.message) <= MESSAGE_CHARS
        letter = dead_letter("scored-leads", 0, 7, b"key", raw, error, FAILED_AT)
        assert len(letter.model_dump_json()) < 32 * 1024
        return None


def decide(lead: ScoredLead, setup: ClientSetup, patterns: PatternSet) -> None:
    """Plan, reserve and complete as the worker does; the quota answers with the last
    day of each channel (the farthest slot), and the plan goes through its held form."""
    lead_plan = plan_lead(lead, setup, patterns, SCHEDULE)
    request = lead_plan.request()
    plan = lead_plan.plan
    picks: list[Reservation | None] = []
    if request is not None:
        # what the Redis store sends: the hold key and the plan as UTF-8 JSON
        json.dumps([held_name(request), request.plan]).encode("utf-8")
        plan = Plan.decode(request.plan)
        picks = [
            Reservation(len(ask.days) - 1, ask.resources[-1].resource_id) for ask in request.asks
        ]
    decision = complete(lead, plan, picks, lead.scored_at)
    decision.allocation.to_json().encode("utf-8")


_DIALECT = sqlite.dialect()


def stored(instant: datetime) -> None:
    """The timestamp as the database stores it (in UTC): year 1 at +01:00 overflowed here."""
    UtcTimestamp().process_bind_param(instant, _DIALECT)


def everything(client: Client) -> ClientSetup:
    """The client with one resource on every channel, so every channel is planned."""
    resources = [
        Resource(client_id=client.client_id, channel=channel, resource_id=f"r-{channel}")
        for channel in ("email", "linkedin", "voice", "sms", "direct_mail")
    ]
    return build_setup(client, resources)


SETUPS = [
    everything(Client(client_id="c1")),
    everything(Client(client_id="c1", timezone="Pacific/Kiritimati", max_defer_days=30)),
    everything(Client(client_id="c1", timezone="Pacific/Niue", max_defer_days=0)),
    everything(Client(client_id="c1", timezone="Australia/Lord_Howe", max_defer_days=7)),
    everything(Client(client_id="c1", timezone="America/St_Johns", max_defer_days=30)),
    everything(Client(client_id="c1", timezone="Africa/Monrovia", max_defer_days=3)),
]


def pattern_set(*patterns: ConversionPattern) -> PatternSet:
    result = PatternSet()
    for pattern in patterns:
        result = result.with_pattern(pattern)
    return result


# --- valid records, as JSON fields --------------------------------------------

LEAD = {
    "event_id": "ev-1",
    "lead_id": "L1",
    "client_id": "c1",
    "als_score": 90,
    "scored_at": "2026-11-26T10:00:00Z",
    "timezone": "America/New_York",
}
LEAD_DERIVED = {k: v for k, v in LEAD.items() if k != "event_id"}  # the event id is derived
WHEN = {
    "client_id": "c1",
    "pattern_type": "when",
    "channel": "sms",
    "optimal_day": 6,
    "optimal_hour": 23,
    "confidence": 0.9,
    "updated_at": "2026-01-01T00:00:00Z",
}
HOW = {
    "client_id": "c1",
    "pattern_type": "how",
    "winning_sequence": ["direct_mail", "sms", "email"],
    "confidence": 0.9,
    "updated_at": "2026-01-01T00:00:00Z",
}
CLIENT = {"client_id": "c1", "timezone": "Asia/Kathmandu", "max_defer_days": 30}
RESOURCE = {"client_id": "c1", "channel": "email", "resource_id": "d1", "daily_limit": 5}

# Patterns that move every send: a HOW over all channels, WHEN on late Sunday and Monday.
EDGE_PATTERNS = [
    parse_pattern(json.dumps(HOW).encode()),
    parse_pattern(json.dumps(WHEN).encode()),
    parse_pattern(json.dumps({**WHEN, "channel": "email", "optimal_day": 0}).encode()),
]

# Leads at the edges of time, to decide each parsed pattern with.
EDGE_LEADS = [
    validate(ScoredLead, {**LEAD, "scored_at": at, "timezone": zone})
    for at, zone in [
        ("1970-01-01T00:00:00Z", "Pacific/Kiritimati"),
        ("8999-12-31T23:59:59.999999Z", "Pacific/Niue"),
        ("8999-12-31T00:00:00+14:00", None),
        ("2026-03-08T02:30:00-05:00", "America/New_York"),  # a DST gap
        ("1970-01-01T00:00:00Z", "Africa/Monrovia"),  # local mean time, -00:44:30
    ]
]


# --- nasty values, as JSON text -----------------------------------------------

ODD_ZONES = [
    "America",
    "Europe",
    "A" * 300,
    "Europe/" + "B" * 300,
    "../../etc/passwd",
    "/usr/share/zoneinfo/UTC",
    "Etc/../UTC",
    "UTC\x00",
    "\ud800",
    "America/",
    "tzdata.zi",
    "zone1970.tab",
    "posixrules",
    "Factory",
    "right/UTC",
    "Etc/GMT+14",
    "Etc/GMT-12",
    "utc",
    "",
    " ",
]
ZONES = sorted(zoneinfo.available_timezones())


def as_json(values: st.SearchStrategy[Any]) -> st.SearchStrategy[str]:
    """JSON text of the values, with non-ASCII escaped or written out (lone surrogates too)."""
    return st.tuples(values, st.booleans()).map(lambda v: json.dumps(v[0], ensure_ascii=v[1]))


years = st.one_of(
    st.sampled_from([1, 2, 1969, 1970, 1971, 2026, 8999, 9000, 9998, 9999]),
    st.integers(1, 9999),
)
offsets = st.one_of(
    st.sampled_from(["Z", "z", "+00:00", "-00:00", "+14:00", "-12:00", "+23:59", "-23:59"]),
    st.sampled_from(["", "+24:00", "+01:00:30", "-00:00:00.5", "+0530", "+05", "UTC"]),
    st.integers(-24 * 60 + 1, 24 * 60 - 1).map(
        lambda m: ("+" if m >= 0 else "-") + f"{abs(m) // 60:02d}:{abs(m) % 60:02d}"
    ),
)
# Month, day and time of day, valid and not (Feb 30, hour 24, second 60, a
# seven-digit fraction, a comma); few draws, so that time values stay cheap.
_DAY_TIMES = [
    f"{month:02d}-{day:02d}{sep}{time}"
    for month, day in [(1, 1), (2, 28), (2, 29), (2, 30), (3, 8), (6, 30), (11, 2), (12, 31)]
    for sep in ["T", " "]
    for time in [
        "00:00:00",
        "02:30:00",
        "23:59:59.999999",
        "24:00:00",
        "23:59:60",
        "12:00",
        "12",
        "10:00:00.1234567",
        "10:00:00,5",
    ]
]
timestamps_text = st.builds(
    lambda year, day_time, offset: f"{year:04d}-{day_time}{offset}",
    years,
    st.sampled_from(_DAY_TIMES),
    offsets,
)


# Wall times in real zones: their offsets include the odd ones of history
# (Amsterdam's +00:19:32 before 1937) and of today (+05:45, -03:30, +14:00).
def _wall_time(year: int, month: int, hour: int, name: str) -> str:
    return datetime(year, month, 1, hour, tzinfo=ZoneInfo(name)).isoformat()


timestamps_in_zones = st.builds(
    _wall_time, years, st.integers(1, 12), st.integers(0, 23), st.sampled_from(ZONES)
)


def nested(depth: int, open_: str = "[", close: str = "]", leaf: str = "1") -> str:
    return open_ * depth + leaf + close * depth


numbers = st.one_of(
    as_json(st.integers()),
    as_json(st.floats()),
    st.integers(1, 6_000).map(lambda n: "9" * n),
    st.integers(1, 400).map(lambda n: "-0." + "1" * n),
    st.sampled_from(
        [
            "NaN",
            "Infinity",
            "-Infinity",
            "1e999",
            "-1e999",
            "1e-999",
            "-0",
            "-0.0",
            "72.0",
            "72.5",
            "1E2",
            "1e2",
            "100.0000000001",
            "4.9e-324",
            "1.7976931348623157e308",
            "9007199254740993",
            "-1",
            "101",
            "0",
            "0.6",
            "0.60000000000000001",
            "1",
            "1.0",
            "6",
            "7",
            "23",
            "24",
            "30",
            "31",
            "2147483648",
            "1e9",
        ]
    ),
)
texts = st.one_of(
    as_json(st.text(max_size=40)),
    as_json(st.sampled_from(["nan", "inf", "Infinity", "72", "", " ", "\x00", "true", "null"])),
    as_json(st.integers(0xD800, 0xDFFF).map(chr)),
    as_json(st.integers(0xD800, 0xDFFF).map(lambda c: "ab" + chr(c) + "cd")),
    as_json(st.sampled_from([255, 256, 257, 1_000, 70_000]).map(lambda n: "x" * n)),
    as_json(st.sampled_from([63, 64, 65, 300]).map(lambda n: "é" * n)),
    as_json(st.sampled_from(["a\x00b", "\u2028", "\ufeff", "\U0001f600", "[{", '"\\'])),
)
channels = st.one_of(
    as_json(st.sampled_from(["email", "linkedin", "voice", "sms", "direct_mail", "fax"])),
    as_json(st.lists(st.sampled_from(["email", "sms", "voice", "linkedin", "pigeon"]))),
    as_json(st.sampled_from(["when", "how", "why", "WHEN", "email_domain", "mail_vendor"])),
)
# The bounds of time and just past them, with and without event_id to derive from.
EDGE_TIMES = [
    "0001-01-01T00:00:00+01:00",
    "0001-01-01T00:00:00-23:59",
    "9999-12-31T23:30:00-01:00",
    "9999-12-31T23:59:59.999999Z",
    "9999-12-31T23:00:00Z",
    "9000-01-01T00:00:00+23:59",
    "8999-12-31T23:59:59.999999Z",
    "8999-12-31T23:59:59.999999-23:59",
    "8999-12-31T00:00:00+14:00",
    "8999-12-29T12:00:00-12:00",
    "1970-01-01T00:00:00Z",
    "1970-01-01T00:00:00+14:00",
    "1970-01-01T13:59:00+14:00",
    "1969-12-31T23:59:59.999999Z",
    "1969-12-31T10:00:00-14:00",
]
times = st.one_of(
    as_json(timestamps_text),
    as_json(timestamps_in_zones),
    as_json(st.sampled_from(EDGE_TIMES)),
)
zones = st.one_of(as_json(st.sampled_from(ODD_ZONES)), as_json(st.sampled_from(ZONES)))
shapes = st.one_of(
    st.sampled_from(["true", "false", "null", "[]", "{}", '[""]', '{"": null}']),
    st.sampled_from([1, 31, 32, 33, 100, 1_000, 40_000]).map(nested),
    st.sampled_from([1, 31, 32, 33, 1_000]).map(lambda n: nested(n, '{"a":', "}")),
    as_json(
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
            lambda inner: (
                st.lists(inner, max_size=4)
                | st.dictionaries(st.text(max_size=5), inner, max_size=4)
            ),
            max_leaves=8,
        )
    ),
)
nasty = st.one_of(numbers, texts, channels, times, zones, shapes)

# What each field is most often changed to: values of its own kind, near its
# bounds, where a check is likeliest to be wrong.
OWN_KIND = {
    "event_id": texts,
    "lead_id": texts,
    "client_id": texts,
    "resource_id": texts,
    "als_score": numbers,
    "optimal_day": numbers,
    "optimal_hour": numbers,
    "confidence": numbers,
    "max_defer_days": numbers,
    "daily_limit": numbers,
    "scored_at": times,
    "updated_at": times,
    "timezone": zones,
    "channel": channels,
    "winning_sequence": channels,
    "pattern_type": channels,
    "resource_type": channels,
    "kind": st.sampled_from([*KINDS, "opened", "", "SENT"]).map(json.dumps) | channels,
    "allocation_id": texts,
    "occurred_at": times,
    "retry_after": times,
}


_DROP = "drop"  # a mutation that removes the field
# Mostly one field changed, so that the error is about that field; sometimes more.
_MUTATIONS = st.sampled_from([1, 1, 1, 2, 3])


def mutated(base: dict[str, Any]) -> st.SearchStrategy[bytes]:
    """`base` as JSON text with some fields replaced by nasty values, dropped or added."""
    # Strategies are made once here: one made per draw costs more than the draw.
    names = [*base, "extra", "\ud800", "channel", "event_id", "timezone", "resource_type"]
    change = st.sampled_from(names).flatmap(lambda name: _CHANGES[name])

    @st.composite
    def draw_record(draw: st.DrawFn) -> bytes:
        fields = {key: json.dumps(value) for key, value in base.items()}
        for _ in range(draw(_MUTATIONS)):
            name, value = draw(change)
            if value is _DROP:
                fields.pop(name, None)
            else:
                fields[name] = value
        text = "{" + ", ".join(f"{json.dumps(k)}: {v}" for k, v in fields.items()) + "}"
        return text.encode("utf-8", "surrogatepass")

    return draw_record()


def _change(name: str) -> st.SearchStrategy[tuple[str, str]]:
    values = st.one_of(st.just(_DROP), OWN_KIND[name], OWN_KIND[name], nasty)
    return values.map(lambda value: (name, value))


_CHANGES = {
    name: _change(name) if name in OWN_KIND else nasty.map(lambda v, n=name: (n, v))
    for name in [*OWN_KIND, "extra", "\ud800"]
}


json_like_text = st.text(
    alphabet=st.sampled_from(list('{}[]":,.-+0123456789eEtrufalsnNI\\ u\x00é\ud800')),
    max_size=200,
).map(lambda text: text.encode("utf-8", "surrogatepass"))


def batches(values: st.SearchStrategy[T], size: int) -> st.SearchStrategy[list[T]]:
    # Several inputs per example: hypothesis spends most of an example on its own
    # bookkeeping, so a batch runs many more inputs in the same time.
    return st.lists(values, min_size=size, max_size=size)


PATTERN_SETS = [PatternSet(), pattern_set(*EDGE_PATTERNS)]


# --- (a) arbitrary bytes ------------------------------------------------------

BYTES_BATCH = 16


@fuzz(0.40, BYTES_BATCH)
@given(batches(st.binary(max_size=300) | json_like_text, BYTES_BATCH))
def test_any_bytes_parse_or_fail_with_a_code(values: list[bytes]) -> None:
    for raw in values:
        lead = parsed(parse_lead, raw)
        if lead is not None:
            decide(lead, SETUPS[0], PatternSet())
        parsed(parse_pattern, raw)
        event = parsed(parse_send_event, raw)
        if event is not None:
            event.model_dump_json().encode("utf-8")


# --- (b) and (c): near-valid records, decided ---------------------------------

RECORD_BATCH = 8


@fuzz(0.25, RECORD_BATCH)
@given(
    batches(mutated(LEAD) | mutated(LEAD_DERIVED), RECORD_BATCH),
    st.sampled_from(SETUPS),
    st.sampled_from(PATTERN_SETS),
)
def test_near_valid_leads_parse_or_fail_and_parsed_ones_decide(
    values: list[bytes], setup: ClientSetup, patterns: PatternSet
) -> None:
    for raw in values:
        lead = parsed(parse_lead, raw)
        if lead is not None:
            stored(lead.scored_at)
            decide(lead, setup, patterns)


@fuzz(0.20, RECORD_BATCH)
@given(
    batches(mutated(WHEN) | mutated(HOW), RECORD_BATCH),
    st.sampled_from(SETUPS),
    st.sampled_from(EDGE_LEADS),
)
def test_near_valid_patterns_parse_or_fail_and_parsed_ones_decide(
    values: list[bytes], setup: ClientSetup, lead: ScoredLead
) -> None:
    for raw in values:
        pattern = parsed(parse_pattern, raw)
        if pattern is not None:
            pattern.model_dump_json().encode("utf-8")  # as it is held in memory and files
            stored(pattern.updated_at)
            decide(lead, setup, pattern_set(pattern))


SEND_EVENTS = [
    {
        "event_id": "fb-1",
        "kind": kind,
        "client_id": "c1",
        "lead_id": "L1",
        "allocation_id": "a-1",
        "channel": "email",
        "resource_id": "r1",
        "occurred_at": "2026-11-27T10:00:00Z",
        **({"retry_after": "2026-11-27T11:00:00Z"} if kind == "throttled" else {}),
    }
    for kind in KINDS
]


@fuzz(0.10, RECORD_BATCH)
@given(batches(st.one_of(*(mutated(e) for e in SEND_EVENTS)), RECORD_BATCH))
def test_near_valid_send_events_parse_or_fail_with_a_code(values: list[bytes]) -> None:
    for raw in values:
        event = parsed(parse_send_event, raw)
        if event is not None:
            event.model_dump_json().encode("utf-8")
            stored(event.occurred_at)


def parse_client(raw: bytes) -> Client:
    return validate(Client, decode_object(raw))  # as files are loaded (allocator/files.py)


def parse_resource(raw: bytes) -> Resource:
    return validate(Resource, decode_object(raw))


@fuzz(0.15, RECORD_BATCH)
@given(
    batches(mutated(CLIENT), RECORD_BATCH // 2),
    batches(mutated(RESOURCE), RECORD_BATCH // 2),
    st.sampled_from(EDGE_LEADS),
)
def test_near_valid_clients_and_resources_validate_or_fail_and_decide(
    clients: list[bytes], resources: list[bytes], lead: ScoredLead
) -> None:
    valid = [r for r in (parsed(parse_resource, raw) for raw in resources) if r is not None]
    for raw in clients:
        client = parsed(parse_client, raw)
        if client is not None:
            decide(lead, build_setup(client, valid), PATTERN_SETS[1])
