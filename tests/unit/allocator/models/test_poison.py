"""Poison records: each ends as one InvalidRecord with a stable code, never as a crash.

Every case here escaped parsing (or misbehaved) before the input bounds existed;
the expectations are written out by hand, not computed with the bounds.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from allocator.channels import Channel, ResourceType
from allocator.errors import InvalidRecord
from allocator.models import (
    ChannelAllocation,
    Client,
    Resource,
    parse_lead,
    parse_pattern,
    validate,
)

LEAD: dict[str, Any] = {
    "lead_id": "L1",
    "client_id": "c1",
    "als_score": 72,
    "scored_at": "2026-11-26T10:00:00Z",
}
WHEN: dict[str, Any] = {
    "client_id": "c1",
    "pattern_type": "when",
    "channel": "sms",
    "optimal_day": 2,
    "optimal_hour": 14,
    "confidence": 0.7,
    "updated_at": "2026-01-01T00:00:00Z",
}
HOW: dict[str, Any] = {
    "client_id": "c1",
    "pattern_type": "how",
    "winning_sequence": ["email"],
    "confidence": 0.7,
    "updated_at": "2026-01-01T00:00:00Z",
}
CLIENT: dict[str, Any] = {"client_id": "c1", "timezone": "UTC", "max_defer_days": 3}
RESOURCE: dict[str, Any] = {"client_id": "c1", "channel": "email", "resource_id": "d1"}


def lead_bytes(**changes: Any) -> bytes:
    return json.dumps({**LEAD, **changes}).encode()


def rejected(parse: Any, raw: Any) -> InvalidRecord:
    with pytest.raises(InvalidRecord) as caught:
        parse(raw)
    return caught.value


# --- 1. nesting depth --------------------------------------------------------


@pytest.mark.parametrize("parse", [parse_lead, parse_pattern])
def test_deeply_nested_json_is_too_deep(parse: Any) -> None:
    assert rejected(parse, b"[" * 100_000).code == "too_deep"  # nesting is checked first
    assert rejected(parse, b"[]" * 50_000).code == "too_large"  # many brackets, none deep
    assert rejected(parse, "[" * 100_000).code == "too_deep"  # text, as from a file
    assert rejected(parse, b'{"x": ' + b"[" * 5_000 + b"]" * 5_000 + b"}").code == "too_deep"


def test_nesting_bound_is_32_levels() -> None:
    # The record object is level 1; an extra field nested 31 more levels is fine.
    ok = json.dumps(LEAD)[:-1] + ', "x": ' + "[" * 31 + "]" * 31 + "}"
    assert parse_lead(ok.encode()).lead_id == "L1"
    deep = json.dumps(LEAD)[:-1] + ', "x": ' + "[" * 32 + "]" * 32 + "}"
    error = rejected(parse_lead, deep.encode())
    assert error.code == "too_deep" and "32" in error.message


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    raw = lead_bytes(lead_id="[{" * 100, note='\\"[[[' * 50)
    assert parse_lead(raw).lead_id == "[{" * 100


# --- 2. number literals ------------------------------------------------------


def test_integer_over_python_digit_limit_is_rejected() -> None:
    raw = json.dumps(LEAD).replace("72", "7" * 5_000).encode()
    assert rejected(parse_lead, raw).code == "too_large"


def test_number_literal_bound_is_100_characters() -> None:
    at_bound = json.dumps(LEAD).replace("72", "1" * 100).encode()
    error = rejected(parse_lead, at_bound)
    assert (error.code, error.field) == ("out_of_range", "als_score")
    over = json.dumps(LEAD).replace("72", "1" * 101).encode()
    assert rejected(parse_lead, over).code == "too_large"
    long_float = json.dumps(WHEN).replace("0.7", "0." + "7" * 200).encode()
    assert rejected(parse_pattern, long_float).code == "too_large"


# --- 3. record size ----------------------------------------------------------


def test_record_over_64_kib_is_too_large() -> None:
    base = json.dumps(LEAD).encode()
    at_bound = base[:-1] + b" " * (65_536 - len(base)) + b"}"
    assert len(at_bound) == 65_536 and parse_lead(at_bound).lead_id == "L1"
    error = rejected(parse_lead, at_bound + b" ")
    assert error.code == "too_large" and "65536" in error.message
    assert rejected(parse_pattern, b" " * 1_000_000).code == "too_large"


def test_text_record_is_bounded_in_utf8_bytes() -> None:
    # JSON Lines files hand text to the parser: the bound counts its UTF-8 bytes.
    text = json.dumps(LEAD)[:-1] + ', "x": "' + "é" * 40_000 + '"}'
    assert rejected(parse_lead, text).code == "too_large"


# --- 4. timestamps -----------------------------------------------------------


@pytest.mark.parametrize(
    "scored_at",
    [
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:30:00-01:00",
        "9999-12-31T23:00:00Z",
        "1969-12-31T23:59:59Z",
        "1970-01-01T00:30:00+01:00",
        "9000-01-01T00:00:00Z",
    ],
)
def test_timestamps_outside_1970_to_9000_are_out_of_range(scored_at: str) -> None:
    error = rejected(parse_lead, lead_bytes(scored_at=scored_at))
    assert (error.code, error.field) == ("out_of_range", "scored_at")
    assert scored_at in error.message


@pytest.mark.parametrize("scored_at", ["1970-01-01T00:00:00Z", "8999-12-31T23:59:59.999999Z"])
def test_timestamps_at_the_bounds_parse(scored_at: str) -> None:
    assert parse_lead(lead_bytes(scored_at=scored_at)).event_id


@pytest.mark.parametrize("base", [WHEN, HOW])
def test_pattern_updated_at_is_bounded(base: dict[str, Any]) -> None:
    raw = json.dumps({**base, "updated_at": "0001-01-01T00:00:00Z"}).encode()
    error = rejected(parse_pattern, raw)
    assert (error.code, error.field) == ("out_of_range", "updated_at")


def test_sub_minute_offsets_are_not_rfc3339() -> None:
    error = rejected(parse_lead, lead_bytes(scored_at="2026-11-26T10:00:00+01:00:30"))
    assert (error.code, error.field) == ("invalid_timestamp", "scored_at")


def test_an_output_time_may_keep_a_zones_local_mean_time() -> None:
    # Monrovia kept -00:44:30 until 1972: a send there in 1970 is written with it.
    send_at = datetime(1970, 1, 6, 9, tzinfo=ZoneInfo("Africa/Monrovia"))
    entry = ChannelAllocation(
        channel=Channel.EMAIL,
        status="allocated",
        resource_type=ResourceType.EMAIL_DOMAIN,
        resource_id="d1",
        send_at=send_at,
        timing_source="default",
        usage_day="1970-01-06",
    )
    assert json.loads(entry.to_json())["send_at"] == "1970-01-06T09:00:00-00:44:30"


# --- 5. time zones -----------------------------------------------------------

ODD_ZONES = [
    "America",  # a directory of the zone database: IsADirectoryError
    "A" * 300,  # a file name too long for the file system: OSError
    "Europe/" + "B" * 300,
    "../../etc/passwd",
    "/usr/share/zoneinfo/UTC",
    "Etc/../UTC",
    "UTC\x00",
    "\ud800",
    "America/",
    "tzdata.zi",
    "",
    42,
]


@pytest.mark.parametrize("name", ODD_ZONES)
def test_odd_zone_names_are_unknown_timezones(name: Any) -> None:
    error = rejected(parse_lead, lead_bytes(timezone=name))
    assert (error.code, error.field) == ("unknown_timezone", "timezone")
    assert len(error.message) < 200
    with pytest.raises(InvalidRecord) as caught:
        validate(Client, {**CLIENT, "timezone": name})
    assert caught.value.code == "unknown_timezone"


# --- 6. lone surrogates in text fields ---------------------------------------

SURROGATE = "ab\ud800cd"
TEXT_FIELDS = [
    (parse_lead, LEAD, "lead_id"),
    (parse_lead, LEAD, "client_id"),
    (parse_lead, {**LEAD, "event_id": "ev-1"}, "lead_id"),
    (parse_lead, {**LEAD, "event_id": "ev-1"}, "event_id"),
    (parse_pattern, WHEN, "client_id"),
    (parse_pattern, HOW, "client_id"),
]


@pytest.mark.parametrize(("parse", "base", "field"), TEXT_FIELDS)
def test_lone_surrogate_in_a_text_field_is_invalid(
    parse: Any, base: dict[str, Any], field: str
) -> None:
    raw = json.dumps({**base, field: SURROGATE}).encode()  # ensure_ascii: "\ud800" escape
    error = rejected(parse, raw)
    assert (error.code, error.field) == ("invalid_field", field)
    assert "not valid Unicode" in error.message


@pytest.mark.parametrize(
    ("model", "base", "field"),
    [
        (Client, CLIENT, "client_id"),
        (Resource, RESOURCE, "client_id"),
        (Resource, RESOURCE, "resource_id"),
    ],
)
def test_lone_surrogate_in_clients_and_resources_is_invalid(
    model: Any, base: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidRecord) as caught:
        validate(model, {**base, field: SURROGATE})
    assert (caught.value.code, caught.value.field) == ("invalid_field", field)


def test_surrogates_in_unknown_fields_are_ignored() -> None:
    raw = json.dumps({**LEAD, "\ud800": "\udfff", "note": SURROGATE}).encode()
    assert parse_lead(raw).lead_id == "L1"


def test_nul_in_an_id_is_invalid() -> None:
    # PostgreSQL text cannot hold U+0000: such an id would fail on save, not here.
    error = rejected(parse_lead, lead_bytes(client_id="ac\x00me"))
    assert (error.code, error.field) == ("invalid_field", "client_id")


# --- 7. text lengths ---------------------------------------------------------


def test_ids_are_at_most_256_characters() -> None:
    assert len(parse_lead(lead_bytes(lead_id="x" * 256)).lead_id) == 256
    error = rejected(parse_lead, lead_bytes(lead_id="y" * 257))
    assert (error.code, error.field) == ("too_large", "lead_id")
    assert "256" in error.message and "y" * 20 in error.message
    assert len(error.message) < 250  # the value is shown cut


def test_messages_show_values_cut() -> None:
    error = rejected(parse_lead, lead_bytes(als_score="9" * 50_000))
    assert error.code == "invalid_field" and len(error.message) < 250
    error = rejected(parse_lead, lead_bytes(scored_at="2026" * 10_000))
    assert error.code == "invalid_timestamp" and len(error.message) < 250


# --- 8. max_defer_days -------------------------------------------------------


def test_max_defer_days_is_at_most_30() -> None:
    assert validate(Client, {**CLIENT, "max_defer_days": 30}).max_defer_days == 30
    with pytest.raises(InvalidRecord) as caught:
        validate(Client, {**CLIENT, "max_defer_days": 31})
    assert (caught.value.code, caught.value.field) == ("out_of_range", "max_defer_days")
    assert caught.value.message == "max_defer_days: must be in 0..30, got 31"


# --- 9. range messages -------------------------------------------------------


def test_range_messages_read_well() -> None:
    with pytest.raises(InvalidRecord) as caught:
        validate(Resource, {**RESOURCE, "daily_limit": -5})
    assert caught.value.message == "daily_limit: must be in 0..1000000, got -5"
    with pytest.raises(InvalidRecord) as caught:  # the database column is 32 bits
        validate(Resource, {**RESOURCE, "daily_limit": 3_000_000_000})
    assert caught.value.code == "out_of_range"
    assert rejected(parse_lead, lead_bytes(als_score=101)).message == (
        "als_score: must be in 0..100, got 101"
    )


# --- 10. dead letters --------------------------------------------------------

FAILED_AT = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


def letter_for(raw: bytes | None, key: bytes | None = b"lead-1") -> dict[str, Any]:
    from allocator.models import dead_letter

    try:
        parse_lead(raw)
    except InvalidRecord as error:
        letter = dead_letter("scored-leads", 2, 1187, key, raw, error, FAILED_AT)
    else:
        raise AssertionError("expected an invalid record")
    encoded = letter.model_dump_json().encode()
    assert len(encoded) < 64 * 1024
    data: dict[str, Any] = json.loads(encoded)
    return data


def test_dead_letter_of_a_huge_record_stays_small() -> None:
    raw = b'{"lead_id": "' + b"z" * 1_000_000 + b'"}'
    data = letter_for(raw)
    assert data["error_code"] == "too_large"
    assert data["raw_value"] == raw[:4096].decode()
    assert data["raw_length"] == len(raw)
    assert data["raw_sha256"] == hashlib.sha256(raw).hexdigest()
    assert len(data["error"]) <= 300
    assert (data["source_topic"], data["partition"], data["offset"]) == ("scored-leads", 2, 1187)
    assert data["key"] == "lead-1" and data["failed_at"].startswith("2026-11-26T10:00:00")


def test_dead_letter_cuts_text_at_a_character_boundary() -> None:
    raw = b"{" + "é".encode() * 3_000  # 6001 bytes; byte 4096 splits an é
    data = letter_for(raw)
    assert data["raw_value"] == "{" + "é" * 2_047  # 4095 bytes: the split é is left out
    assert data["raw_length"] == 6_001


def test_dead_letter_of_non_utf8_is_base64_of_the_prefix() -> None:
    raw = b"\xff" * 10_000
    data = letter_for(raw, key=b"\xfe" * 5_000)
    assert data["error_code"] == "invalid_encoding"
    assert base64.b64decode(data["raw_value"]) == b"\xff" * 4096
    assert base64.b64decode(data["key"]) == b"\xfe" * 1024
    assert data["raw_sha256"] == hashlib.sha256(raw).hexdigest()


def test_dead_letter_of_small_record_keeps_it_whole() -> None:
    raw = lead_bytes(als_score="72")
    data = letter_for(raw, key=None)
    assert data["raw_value"] == raw.decode() and data["raw_length"] == len(raw)
    assert data["key"] is None and data["error"] == "als_score: must be an integer, got '72'"


def test_dead_letter_of_a_tombstone() -> None:
    data = letter_for(None)
    assert data["error_code"] == "empty_value"
    assert (data["raw_value"], data["raw_length"], data["raw_sha256"]) == ("", 0, None)


# --- 11. error codes ---------------------------------------------------------


def test_error_codes_are_an_enum() -> None:
    from allocator.errors import ErrorCode

    error = rejected(parse_lead, lead_bytes(als_score=101))
    assert error.code is ErrorCode.OUT_OF_RANGE and error.code == "out_of_range"
    assert {c.value for c in ErrorCode} >= {
        "missing_field",
        "invalid_field",
        "out_of_range",
        "unknown_channel",
        "unknown_timezone",
        "invalid_timestamp",
        "duplicate_channel",
        "unknown_pattern_type",
        "empty_value",
        "invalid_encoding",
        "invalid_json",
        "not_an_object",
        "too_large",
        "too_deep",
        "undecidable",
    }
    with pytest.raises(ValueError, match="not_a_code"):
        InvalidRecord("not_a_code", None, None, "x")


@pytest.mark.parametrize(
    "stamp",
    ["20261126T120000+0000", "2026-W48-4T12:00Z", "2026-11-26T12:00Z", "2026-330T12:00:00Z"],
)
def test_iso_forms_that_are_not_rfc_3339_are_refused(stamp: str) -> None:
    err = rejected(parse_lead, lead_bytes(scored_at=stamp))
    assert (err.code, err.field) == ("invalid_timestamp", "scored_at")
