"""decode_object's orjson path (issue 15): it reads the same values, of the
same types, as the json path alone, or fails with the same code, on objects
json.dumps writes, on any bytes, and on what orjson would read differently
(duplicate keys, numbers past 64 bits or 100 characters, NaN, surrogates)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from allocator.errors import ErrorCode, InvalidRecord
from allocator.models import decode_object
from allocator.models.parsing import _JSON, _quick_object
from tests.json_values import same_values


def _json_way(raw: bytes) -> Any:
    """What decode_object answered before orjson: its checks, then json and its hooks."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return ErrorCode.INVALID_ENCODING
    try:
        data = _JSON.decode(text)
    except json.JSONDecodeError:
        return ErrorCode.INVALID_JSON
    except InvalidRecord as err:
        return err.code
    return data if isinstance(data, dict) else ErrorCode.NOT_AN_OBJECT


def _decoded(raw: bytes) -> Any:
    """decode_object's answer: the object, or the code of what is wrong."""
    try:
        return decode_object(raw)
    except InvalidRecord as err:
        return err.code


# Text as JSON may carry it: astral characters, and lone surrogates (st.text()
# leaves those out; json writes them as \ud800 escapes).
TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=8) | st.sampled_from(
    ["\ud800", "a\udfffb", "\U0001f600", "\x00", "\u2028"]
)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**63 - 2, max_value=2**64 + 2)
    | st.integers(min_value=-(2**63) - 2, max_value=-(2**63) + 2)
    | st.floats(allow_nan=True, allow_infinity=True)
    | TEXT
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=500)
@given(st.dictionaries(TEXT, VALUES, max_size=6), st.booleans())
def test_an_object_reads_as_the_json_way_reads_it(obj: dict[str, Any], ascii_only: bool) -> None:
    raw = json.dumps(obj, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    expected, got = _json_way(raw), _decoded(raw)
    assert same_values(got, expected), (raw, got, expected)


@given(
    st.binary(max_size=64) | VALUES.map(lambda v: json.dumps(v).encode("utf-8", "surrogatepass"))
)
def test_any_bytes_read_or_fail_as_the_json_way(raw: bytes) -> None:
    expected, got = _json_way(raw), _decoded(raw)
    assert same_values(got, expected), (raw, got, expected)


# A value as its JSON text: what VALUES holds, or a number literal past the bounds.
LITERALS = VALUES.map(json.dumps) | st.sampled_from(
    ["9" * 101, "1." + "0" * 120, "-" + "1" * 30, "[" + "2" * 150 + "]"]
)


@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), LITERALS), max_size=5))
def test_keys_given_twice_read_as_the_json_way(members: list[tuple[str, str]]) -> None:
    raw = ("{" + ", ".join(f'"{key}": {value}' for key, value in members) + "}").encode(
        "utf-8", "surrogatepass"
    )
    expected, got = _json_way(raw), _decoded(raw)
    assert same_values(got, expected), (raw, got, expected)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"n": 18446744073709551616}',  # past 64 bits: orjson reads a float
        b'{"n": -9223372036854775809}',
        b'{"n": 1e400}',  # orjson refuses; json reads inf
        b'{"n": NaN}',
        b'{"id": "\\ud800"}',  # orjson refuses a lone surrogate
        b'{"score": 0.5}',  # a float: the json way, for any float
        b'{"nested": {"a": 1}}',
        b'{"id": "\xff"}',  # not UTF-8
        # A key given twice: json's hooks read the value dropped.
        b'{"als_score": ' + b"9" * 101 + b', "als_score": 3}',
        b'{"x": 1.' + b"0" * 120 + b', "x": null}',
        b'{"x": [' + b"1" * 200 + b'], "x": 1}',
        b'{"a": 1, "a": 2}',
        b'{"id": "a,b"}',  # a comma in text: the json way, the same answer
    ],
)
def test_what_orjson_would_read_differently_goes_the_json_way(raw: bytes) -> None:
    assert _quick_object(raw) is None
    assert same_values(_decoded(raw), _json_way(raw))


def test_a_flat_lead_takes_the_orjson_way() -> None:
    raw = b'{"lead_id": "l-\xc3\xa9", "als_score": 3, "vip": true, "timezone": null}\n'
    assert _quick_object(raw) == {"lead_id": "l-é", "als_score": 3, "vip": True, "timezone": None}
    assert same_values(decode_object(raw), _json_way(raw))


def test_the_number_bound_still_holds() -> None:
    # 101 digits: past MAX_NUMBER_CHARS, as before, whichever way it went.
    with pytest.raises(InvalidRecord) as caught:
        decode_object(b'{"n": ' + b"9" * 101 + b"}")
    assert caught.value.code is ErrorCode.TOO_LARGE
    with pytest.raises(InvalidRecord) as caught:
        decode_object(b'{"n": ' + b"9" * 101 + b', "n": 3}')  # however it ends
    assert caught.value.code is ErrorCode.TOO_LARGE
