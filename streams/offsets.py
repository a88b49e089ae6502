"""Records a consumer skipped: seen, rewound, never committed over (pure; no faust).

Without transactions a partition's offsets are contiguous, so a record that
arrives past the one expected means the records between were never handed
to the agent. Seen once in CI on Apache Kafka (kill seed 273300, 2026-11-28):
after five SIGKILLs and the rebalances that followed, the worker that took a
partition got 552 as its first record where its committed offset was 158.
The 375 leads between were never decided, and nothing but another rebalance
would have brought them back. How the consumer came to skip them is not
proven. One way exists in faust's fetch loop (and in ours, which keeps its
steps, streams/faust_adapt.py): it records as read the offset of a record
whose delivery a suspended flow cancelled, and drops any later record below
its read offset, so a read offset set after the rebalance's seek to the
committed offset would drop the records that seek brings again.

So a skip is answered by a rewind: the partition is sought back to the
expected offset, and the records between come again. Records past the gap
that are already on their way still come and are decided (a redelivered lead
gets its held answer again), but the rewind stays wanted until the expected
offset arrives. A gap of one offset is not rewound: every transaction of a
transactional producer leaves one (its commit or abort marker takes an
offset), so rewinding it would fetch again after every transaction, and
faust commits over a gap of one by design. A longer gap can be real too (a
compacted topic, transactions back to back). Then each rewind brings the
same first record again, and after two the gap is accepted. Two, because
one can lie: if faust's fetch loop records that very record as read just
after the seek, the records between are dropped once more and it comes
first again.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from enum import Enum


class Seen(Enum):
    NEXT = "next"  # the expected offset, or the first since an assignment with none known
    AGAIN = "again"  # below the expected offset: a redelivery, normal
    MARKER = "marker"  # one offset past the expected one: a transaction marker's place
    SKIPPED = "skipped"  # further past it: rewind to `OffsetWatch.gap`'s start
    EMPTY_GAP = "empty gap"  # the same record first after two rewinds: those offsets hold none


@dataclass
class OffsetWatch:
    """The next offset expected per partition, and the rewinds still wanted."""

    _next: dict[Hashable, int] = field(default_factory=dict)
    # partition -> (the offset to rewind to, the first record seen past it)
    _gaps: dict[Hashable, tuple[int, int]] = field(default_factory=dict)
    _sought: set[Hashable] = field(default_factory=set)  # a seek back was made since
    _agreed: dict[Hashable, int] = field(default_factory=dict)  # first_past again, after a seek

    def reassigned(self) -> None:
        """A rebalance: each partition starts again from its committed offset."""
        self._next.clear()
        self._gaps.clear()
        self._sought.clear()
        self._agreed.clear()

    def see(self, partition: Hashable, offset: int, committed: int | None) -> Seen:
        """Classify one consumed record; `committed` is the partition's committed
        offset, the expectation when no record of it was seen since the assignment."""
        expected = self._next.get(partition, committed)
        if expected is None or offset == expected:
            self._next[partition] = offset + 1
            if self._gaps:  # (every record comes here: no calls when there is no gap)
                self._forget(partition)
            return Seen.NEXT
        if offset < expected:
            return Seen.AGAIN
        if offset == expected + 1 and partition not in self._gaps:
            self._next[partition] = offset + 1
            return Seen.MARKER
        self._next[partition] = expected  # and wait for it
        start, first_past = self._gaps.get(partition, (expected, offset))
        if offset < first_past:  # fetched from `start` since: records do live between
            self._agreed.pop(partition, None)
        first_past = min(first_past, offset)
        self._gaps[partition] = (start, first_past)
        if offset == first_past and partition in self._sought:
            # Sought back, and the broker's first record from there is the
            # same one again: nothing lives between, once it says so twice.
            self._sought.discard(partition)
            self._agreed[partition] = self._agreed.get(partition, 0) + 1
            if self._agreed[partition] >= 2:
                self._next[partition] = offset + 1
                self._forget(partition)
                return Seen.EMPTY_GAP
        return Seen.SKIPPED

    def gap(self, partition: Hashable) -> tuple[int, int] | None:
        """The offset a rewind goes back to, and the first record seen past it."""
        return self._gaps.get(partition)

    def sought(self, partition: Hashable) -> None:
        """The partition was sought back to its gap's start."""
        if partition in self._gaps:
            self._sought.add(partition)

    def _forget(self, partition: Hashable) -> None:
        self._gaps.pop(partition, None)
        self._sought.discard(partition)
        self._agreed.pop(partition, None)
