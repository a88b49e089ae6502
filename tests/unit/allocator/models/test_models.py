import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from allocator.errors import InvalidRecord
from allocator.models import HowPattern, WhenPattern, parse_lead, parse_pattern

GOOD = {"lead_id": "L1", "client_id": "c1", "als_score": 72, "scored_at": "2026-11-26T10:00:00Z"}


def lead_bytes(**changes: object) -> bytes:
    data = {**GOOD, **changes}
    return json.dumps({k: v for k, v in data.items() if v is not ...}).encode()


def test_valid_lead_ignores_unknown_fields_and_derives_event_id() -> None:
    lead = parse_lead(lead_bytes(extra_field={"x": 1}))
    assert lead.als_score == 72
    assert lead.event_id and lead.event_id == parse_lead(lead_bytes()).event_id


def test_event_id_derivation_uses_the_instant_not_its_spelling() -> None:
    a = parse_lead(lead_bytes(scored_at="2026-11-26T10:00:00Z"))
    b = parse_lead(lead_bytes(scored_at="2026-11-26T05:00:00-05:00"))
    c = parse_lead(lead_bytes(scored_at="2026-11-26T10:00:01Z"))
    assert a.event_id == b.event_id != c.event_id


def test_given_event_id_is_kept() -> None:
    assert parse_lead(lead_bytes(event_id="ev-9")).event_id == "ev-9"


def test_integral_float_score_is_the_integer() -> None:
    assert parse_lead(lead_bytes(als_score=72.0)).als_score == 72


@pytest.mark.parametrize(
    ("raw", "code", "field"),
    [
        (lead_bytes(als_score=True), "invalid_field", "als_score"),
        (lead_bytes(als_score="72"), "invalid_field", "als_score"),
        (lead_bytes(als_score=72.5), "invalid_field", "als_score"),
        (lead_bytes(als_score=101), "out_of_range", "als_score"),
        (lead_bytes(als_score=-1), "out_of_range", "als_score"),
        (lead_bytes(als_score=...), "missing_field", "als_score"),
        (lead_bytes(lead_id=""), "invalid_field", "lead_id"),
        (lead_bytes(client_id=7), "invalid_field", "client_id"),
        (lead_bytes(scored_at="2026-11-26T10:00:00"), "invalid_timestamp", "scored_at"),
        (lead_bytes(scored_at="yesterday"), "invalid_timestamp", "scored_at"),
        (lead_bytes(scored_at=1764151200), "invalid_timestamp", "scored_at"),
        (lead_bytes(timezone="Mars/Olympus"), "unknown_timezone", "timezone"),
        (b"{not json", "invalid_json", None),
        (b"[1, 2]", "not_an_object", None),
        (b"\xff\xfe", "invalid_encoding", None),
    ],
)
def test_invalid_leads_name_field_and_code(raw: bytes, code: str, field: str | None) -> None:
    with pytest.raises(InvalidRecord) as caught:
        parse_lead(raw)
    assert caught.value.code == code
    assert caught.value.field == field
    if field:
        assert field in caught.value.message


def test_error_message_carries_the_bad_value() -> None:
    with pytest.raises(InvalidRecord) as caught:
        parse_lead(lead_bytes(als_score=72.5))
    assert "72.5" in caught.value.message and caught.value.value == 72.5


def pattern(**fields: object) -> bytes:
    return json.dumps(fields).encode()


def test_when_and_how_patterns_parse() -> None:
    w = parse_pattern(
        pattern(
            client_id="c",
            pattern_type="when",
            channel="sms",
            optimal_day=2,
            optimal_hour=14,
            confidence=0.7,
            updated_at="2026-01-01T00:00:00Z",
        )
    )
    h = parse_pattern(
        pattern(
            client_id="c",
            pattern_type="how",
            winning_sequence=["sms", "email"],
            confidence=0.7,
            updated_at="2026-01-01T00:00:00Z",
        )
    )
    assert isinstance(w, WhenPattern) and w.optimal_hour == 14
    assert isinstance(h, HowPattern) and [c.value for c in h.winning_sequence] == ["sms", "email"]


BASE_WHEN = dict(
    client_id="c",
    pattern_type="when",
    channel="sms",
    optimal_day=2,
    optimal_hour=14,
    confidence=0.7,
    updated_at="2026-01-01T00:00:00Z",
)
BASE_HOW = dict(
    client_id="c",
    pattern_type="how",
    winning_sequence=["email"],
    confidence=0.7,
    updated_at="2026-01-01T00:00:00Z",
)


@pytest.mark.parametrize(
    ("fields", "code", "field"),
    [
        ({**BASE_WHEN, "channel": "fax"}, "unknown_channel", "channel"),
        ({**BASE_WHEN, "optimal_day": 7}, "out_of_range", "optimal_day"),
        ({**BASE_WHEN, "optimal_hour": 24}, "out_of_range", "optimal_hour"),
        ({**BASE_WHEN, "confidence": 1.5}, "out_of_range", "confidence"),
        ({**BASE_WHEN, "pattern_type": "why"}, "unknown_pattern_type", "pattern_type"),
        ({k: v for k, v in BASE_WHEN.items() if k != "channel"}, "missing_field", "channel"),
        ({**BASE_HOW, "winning_sequence": []}, "invalid_field", "winning_sequence"),
        ({**BASE_HOW, "winning_sequence": ["sms", "sms"]}, "duplicate_channel", None),
        (
            {**BASE_HOW, "winning_sequence": ["email", "pigeon"]},
            "unknown_channel",
            "winning_sequence.1",
        ),
        ({**BASE_HOW, "channel": "email"}, "invalid_field", None),
        ({**BASE_HOW, "updated_at": "2026-01-01"}, "invalid_timestamp", "updated_at"),
    ],
)
def test_invalid_patterns(fields: dict[str, object], code: str, field: str | None) -> None:
    with pytest.raises(InvalidRecord) as caught:
        parse_pattern(json.dumps(fields).encode())
    assert (caught.value.code, caught.value.field) == (code, field)


@settings(max_examples=2000)
@given(st.lists(st.text(max_size=40), min_size=1, max_size=4))
def test_derived_id_is_rfc4122_uuid5(parts: list[str]) -> None:
    # Every version and variant digit the hash can give, any text (derived_id
    # sets them on the hex digest, not through uuid.UUID).
    import uuid

    from allocator.models.records import _ID_NAMESPACE, derived_id

    name = "".join(f"{len(p)}:{p}" for p in parts)
    assert derived_id(*parts) == str(uuid.uuid5(_ID_NAMESPACE, name))


def test_derived_ids_keep_their_parts_apart() -> None:
    from allocator.models.records import derived_id

    assert derived_id("a|b", "c") != derived_id("a", "b|c")
