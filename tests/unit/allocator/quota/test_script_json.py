"""The quota script's JSON (redis_store _dumps/_loads): orjson where it can,
json where orjson refuses, and the same values either way."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from allocator.quota.redis_store import _dumps, _loads
from tests.json_values import same_values


def json_values(numbers: st.SearchStrategy[int]) -> st.SearchStrategy[Any]:
    """Text of any code point (lone surrogates, which st.text() leaves out, and
    astral ones on purpose), `numbers`, lists of those."""
    odd = st.sampled_from(["\ud800", "a\udfffb", "seat-\U0001f600", "é"])
    text = st.lists(st.text() | odd, max_size=3).map("".join)
    return st.recursive(
        numbers | text | st.booleans() | st.none(),
        lambda inner: st.lists(inner, max_size=5),
        max_leaves=20,
    )


# A call may hold any whole number (a limit past 64 bits too). An answer holds
# what Lua writes: its numbers are doubles, whole ones exact up to 2**53
# (orjson reads a number past 64 bits as a float, where json reads an int).
calls = json_values(st.integers())
answers = json_values(st.integers(-(2**53), 2**53))


@given(calls)
def test_a_call_reads_back_as_json_wrote_it(value: Any) -> None:
    assert same_values(json.loads(_dumps(value)), json.loads(json.dumps(value)))


@given(answers)
def test_an_answer_reads_as_json_reads_it(value: Any) -> None:
    for text in (json.dumps(value), json.dumps(value, ensure_ascii=False)):
        try:
            expected = json.loads(text)
        except ValueError:
            continue
        assert same_values(_loads(text), expected)
        raw = text.encode("utf-8", "surrogatepass")  # json reads bytes so
        assert same_values(_loads(raw), json.loads(raw))


def test_what_orjson_refuses_goes_to_json() -> None:
    assert _dumps([2**70, "\ud800"]) == json.dumps([2**70, "\ud800"])
    assert _loads('["\\ud800", 1]') == ["\ud800", 1]
    assert _loads("[1e400]") == [float("inf")]
    assert same_values(_loads(b"[3, 2.5]"), [3, 2.5])
