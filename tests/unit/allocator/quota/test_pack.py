"""The script calls' commands as sent to one Redis (redis_store._pack): byte
for byte what redis-py's own packing makes of the same arguments."""

from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st
from redis.connection import Connection

from allocator.quota.redis_store import _Call, _numbers, _pack

_redis_py = Connection()  # type: ignore[no-untyped-call]


def packed_by_redis_py(*args: str | bytes) -> bytes:
    return b"".join(_redis_py.pack_command(*args))  # type: ignore[no-untyped-call]


@given(st.lists(st.text(), max_size=6), st.none() | st.binary(max_size=10_000))
def test_pack_is_redis_pys(rest: list[str], last: bytes | None) -> None:
    # (redis-py splits its first argument at spaces: a command's name, as here)
    args = ["EVALSHA", *rest]
    expected = packed_by_redis_py(*args) if last is None else packed_by_redis_py(*args, last)
    assert _pack(args, last) == expected


@given(st.lists(st.integers(-(2**31), 2**31 - 1), max_size=50))
def test_numbers_are_little_endian_4_byte_integers(values: list[int]) -> None:
    packed = _numbers(values)
    assert len(packed) == 4 * len(values)
    assert [v for (v,) in struct.iter_unpack("<i", packed)] == values


@given(
    st.lists(st.text(), max_size=4),
    st.lists(st.integers(-(2**31), 2**31 - 1), max_size=20) | st.none(),
)
def test_a_calls_packed_command_is_its_args(keys: list[str], numbers: list[int] | None) -> None:
    """What one Redis is sent (_Call.pack) and what a cluster is given
    (_Call.args, packed by redis-py) are the same command."""
    call = _Call([0], keys, "[[],[],[]]", ["plan"], None if numbers is None else _numbers(numbers))
    assert call.pack("sha", "0") == packed_by_redis_py(*call.args("sha", "0"))
