"""The latest WHEN/HOW patterns per client, in a faust Table every lead can see.

A GlobalTable did not propagate between workers here (faust-pitfalls.md), and a
lead and its client's patterns need not share a partition. So patterns are
broadcast: the pattern agent writes each pattern to *every* partition of an
internal topic co-partitioned with the leads topic, and the table's keys carry
the partition (`"<partition>/<client_id>"`). The worker that owns leads
partition p owns fan-out partition p too (faust co-assigns topics with the
same partition count), so its local table shard p holds every client's latest
patterns. The cost is one small write per partition per pattern; leads take
no extra hop.
"""

from __future__ import annotations

from typing import Any

from allocator.patterns import PatternSet


def table_key(partition: int, client_id: str) -> str:
    return f"{partition}/{client_id}"


class PatternView:
    """Reads PatternSets out of the table, parsing each stored value once."""

    def __init__(self, table: Any) -> None:
        self._table = table
        self._parsed: dict[str, tuple[object, PatternSet]] = {}

    def get(self, partition: int, client_id: str) -> PatternSet:
        key = table_key(partition, client_id)
        raw = self._table.get(key)
        cached = self._parsed.get(key)
        # The in-memory store hands back the stored object itself: unchanged
        # identity means an unchanged pattern set.
        if cached is not None and cached[0] is raw:
            return cached[1]
        patterns = PatternSet.from_json(raw)
        self._parsed[key] = (raw, patterns)
        return patterns
