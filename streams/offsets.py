"""Records a consumer skipped: seen, rewound, never committed over (pure; no faust).

Without transactions a partition's offsets are contiguous, so a record that
arrives past the one expected means the records between were never handed
to the agent. Seen once in CI on Apache Kafka (kill seed 273300, 2026-11-28):
after five SIGKILLs and the rebalances that followed, the worker that took a
partition got 552 as its first record where its committed offset was 158.
Of the offsets between, 158..176 had been decided by a worker killed before
it committed them; 177..551, 375 leads, never were, and nothing but another
rebalance would have brought them back. How the consumer came to skip them
is not proven. One way exists in faust's fetch loop (and in ours, which
keeps its steps, streams/faust_adapt.py): it records as read the offset of a
record whose delivery a suspended flow cancelled, and drops any later record
below its read offset, so a read offset set after the rebalance's seek to
the committed offset would drop the records that seek brings again.

So a skip is answered by a rewind: the agent (streams/commits.py) asks the
fetch loop to seek the partition back to the expected offset, and the
records between come again. Records past the gap already queued for the
agent still come and are decided, but never acked (streams/commits.py):
the seek reads them again, and that copy (the same held answer) is acked
in order. A gap can also be real (records deleted, a compacted topic).
Then each rewind brings the same first record again, and after two the gap
is accepted: only a rewind reads a record twice, and two make sure it was
not skipped again. A gap of one offset is what every transaction of a
transactional producer leaves (its marker takes an offset): with `markers`
(ALLOCATOR_TRANSACTIONAL_INPUTS) it is taken as it comes, since a rewind
after every transaction would read again and again; without, it is rewound
like any other, since a lost record is as likely. What cannot be seen: a
skip at the start of an assignment with no committed offset (a new group;
faust reads a committed offset of 0 as none), and a skip to a partition's
end until a record arrives after it.
"""

from __future__ import annotations

import sys
from collections.abc import Hashable
from dataclasses import dataclass, field
from enum import Enum


class Seen(Enum):
    NEXT = "next"  # the expected offset, or the first since an assignment with none known
    AGAIN = "again"  # below the expected offset: a redelivery, normal
    MARKER = "marker"  # one past the expected offset, with transactional inputs: a marker
    SKIPPED = "skipped"  # further past it: rewind to `OffsetWatch.gap`'s start
    EMPTY_GAP = "empty gap"  # the same record first after two rewinds: those offsets hold none


@dataclass
class OffsetWatch:
    """The next offset expected per partition, and the gaps being rewound.

    `markers`: the input producers use transactions, so a gap of one offset
    is a transaction's marker, taken as it comes."""

    markers: bool = False
    _next: dict[Hashable, int] = field(default_factory=dict)
    # partition -> (the offset to rewind to, the first record seen past it)
    _gaps: dict[Hashable, tuple[int, int]] = field(default_factory=dict)
    _again: dict[Hashable, int] = field(default_factory=dict)  # first_past seen again

    def reassigned(self) -> None:
        """A rebalance: each partition starts again from its committed offset."""
        self._next.clear()
        self._gaps.clear()
        self._again.clear()

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
        gap = self._gaps.get(partition)
        if gap is None:
            if self.markers and offset == expected + 1:
                self._next[partition] = offset + 1
                return Seen.MARKER
            self._gaps[partition] = (expected, offset)
            return Seen.SKIPPED
        start, first_past = gap
        if offset < first_past:  # read again from `start`: records do live between
            self._gaps[partition] = (start, offset)
            self._again.pop(partition, None)
        elif offset == first_past:
            # Only a rewind reads a record twice: it came first again, so
            # nothing lives between, once it says so twice.
            self._again[partition] = self._again.get(partition, 0) + 1
            if self._again[partition] >= 2:
                self._next[partition] = offset + 1
                self._forget(partition)
                return Seen.EMPTY_GAP
        return Seen.SKIPPED

    def ask_again(self, partition: Hashable) -> None:
        """A rewind asked once more, its first record past the gap unknown:
        the one it had may be gone (deleted meanwhile), so that the next
        record past the start is taken as the first."""
        gap = self._gaps.get(partition)
        if gap is not None:
            self._gaps[partition] = (gap[0], sys.maxsize)
            self._again.pop(partition, None)

    def gap(self, partition: Hashable) -> tuple[int, int] | None:
        """The offset a rewind goes back to, and the first record seen past it."""
        return self._gaps.get(partition)

    def _forget(self, partition: Hashable) -> None:
        self._gaps.pop(partition, None)
        self._again.pop(partition, None)


@dataclass
class Rewinds:
    """Seeks the agents want, made by the consumer's fetch loop.

    The fetch loop owns the read offset and the fetch under way, so it makes
    the seek itself, between fetches (streams/faust_adapt.py): a seek made
    from outside was undone by the loop setting its read offset from records
    it was still delivering. On the watched `topics` the loop lists no gap
    for faust to commit over, but a transaction's marker when `markers` (the
    input producers use transactions)."""

    topics: frozenset[str] = frozenset()  # the watched ones
    markers: bool = False
    wanted: dict[Hashable, int] = field(default_factory=dict)  # partition -> offset
    made: int = 0  # seeks made (counted by the fetch loop)

    def want(self, partition: Hashable, offset: int) -> None:
        self.wanted[partition] = min(offset, self.wanted.get(partition, offset))

    def take(self) -> dict[Hashable, int]:
        """The seeks to make now."""
        taken, self.wanted = self.wanted, {}
        return taken

    def reassigned(self) -> None:
        """A rebalance seeks every partition to its committed offset anyway."""
        self.wanted.clear()
