"""streams.partitions picks the partition aiokafka's default partitioner picks."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as aiokafka_murmur2
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.partitions import default_partition, murmur2, partitioner_for


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=200))
def test_murmur2_is_aiokafkas(data: bytes) -> None:
    assert murmur2(data) == aiokafka_murmur2(data)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=80), st.integers(min_value=1, max_value=64))
def test_a_key_goes_where_aiokafka_sends_it(key: bytes, count: int) -> None:
    partitions = list(range(count))
    assert default_partition(key, partitions) == DefaultPartitioner()(key, partitions, partitions)


def test_known_hashes_of_the_java_client() -> None:
    # org.apache.kafka.common.utils.UtilsTest.testMurmur2, as unsigned ints
    cases = {
        b"21": -973932308,
        b"foobar": -790332482,
        b"a-little-bit-long-string": -985981536,
        b"a-little-bit-longer-string": -1486304829,
        b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
        bytes([ord("a"), ord("b"), ord("c")]): 479470107,
    }
    for data, signed in cases.items():
        assert murmur2(data) == signed & 0xFFFFFFFF


def test_a_partitioner_of_ones_own_is_given_every_partition_as_available() -> None:
    calls: list[tuple[bytes | None, list[int], list[int]]] = []

    def last(key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
        calls.append((key, all_partitions, available))
        return all_partitions[-1]

    assert partitioner_for(last, [0, 1, 2])(b"k") == 2
    assert calls == [(b"k", [0, 1, 2], [0, 1, 2])]


class Shifted(DefaultPartitioner):
    def __call__(self, key: bytes, all_partitions: list[int], available: list[int]) -> int:
        return all_partitions[0]


def test_aiokafkas_default_is_worked_out_here_and_only_it() -> None:
    partitions = [0, 1, 2, 3, 4, 5, 6]
    keys = [f"lead-{i}".encode() for i in range(200)]
    for default in (None, DefaultPartitioner, DefaultPartitioner()):
        ours = partitioner_for(default, partitions)
        assert [ours(k) for k in keys] == [default_partition(k, partitions) for k in keys]
        assert ours(None) in partitions  # no key: any partition, as aiokafka
    # a subclass keeps its own rule
    assert {partitioner_for(Shifted(), partitions)(k) for k in keys} == {0}
