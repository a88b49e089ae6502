"""The partition a keyed record goes to, as Kafka's default partitioner picks it.

aiokafka's `DefaultPartitioner` (the Java client's rule: murmur2 of the key,
made positive, modulo the partition count) hashes a key one byte at a time
in Python, 4% of the worker's time on Kafka (py-spy): `BatchSender` hashes
every allocation's key. `murmur2` here reads the key's 4-byte words in one
`struct` call and masks once per step, with the same result (a property test
holds it to aiokafka's on any bytes).
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

from aiokafka.partitioner import DefaultPartitioner

_SEED = 0x9747B28C
_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


@lru_cache(maxsize=256)
def _words(count: int) -> struct.Struct:
    return struct.Struct(f"<{count}I")


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 of `data` (org.apache.kafka.common.utils.Utils.murmur2), unsigned."""
    length = len(data)
    h = (_SEED ^ length) & _MASK
    whole = length >> 2
    for k in _words(whole).unpack_from(data):
        k = (k * _M) & _MASK
        k = ((k ^ (k >> 24)) * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    tail = length & 3
    if tail:
        at = length - tail
        if tail == 3:
            h ^= data[at + 2] << 16
        if tail >= 2:
            h ^= data[at + 1] << 8
        h = ((h ^ data[at]) * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    return h ^ (h >> 15)


def default_partition(key: bytes, partitions: Sequence[int]) -> int:
    """The partition of `partitions` (sorted) Kafka's default partitioner gives `key`."""
    return partitions[(murmur2(key) & 0x7FFFFFFF) % len(partitions)]


def partitioner_for(given: Any, partitions: list[int]) -> Callable[[bytes | None], int]:
    """A key's partition of `partitions` (sorted) by `given`, a producer's
    partitioner: where that is aiokafka's default one (None, its class or an
    instance of exactly it), the same partition by `default_partition`, and
    for no key a random one, as aiokafka's; otherwise `given` itself, with
    every partition as available."""
    if given is None or given is DefaultPartitioner or type(given) is DefaultPartitioner:

        def default(key: bytes | None) -> int:
            if key is None:
                return random.choice(partitions)
            return default_partition(key, partitions)

        return default
    return lambda key: int(given(key, partitions, partitions))
