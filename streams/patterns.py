"""Every client's latest patterns where the worker deciding a lead sees them.

Kept in each worker's `PatternBook`, fed from two sides:

- the database, which holds every pattern ever accepted (the pattern agent
  persists a pattern before it fans it out). The book is merged with it before
  the first batch of leads after each partition assignment, so a worker that
  starts, restarts, or takes over partitions after a kill decides with every
  pattern accepted before that;
- the fan-out topic, to which the pattern agent copies each pattern on every
  partition: a running worker holds at least one of its partitions (they are
  co-assigned with the leads'), so it applies each new pattern within a fetch.

Neither side trusts the broker's high watermark. (faust's changelog-backed
Table did: on the embedded broker, whose watermarks are undercounted, its
recovery failed with ConsistencyError after a kill and left no worker; see
../shared/guides/broker.md and topics.md.)
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from allocator.models import parse_pattern
from allocator.patterns import PatternBook, PatternSet

log = logging.getLogger(__name__)


class PatternFeed:
    """A worker's pattern book, re-seeded from the database after each assignment."""

    def __init__(self, load: Callable[[], Awaitable[dict[str, PatternSet]]]) -> None:
        self._load = load
        self.book = PatternBook()
        self._assignment = 0  # bumped by each partition assignment
        self._seeded = -1  # the assignment the book was last seeded for

    def reassigned(self) -> None:
        self._assignment += 1

    async def ensure_seeded(self) -> None:
        """Merge the database's patterns once per assignment, before leads are decided."""
        if self._seeded == self._assignment:
            return
        assignment = self._assignment
        self.book.merge(await self._load())
        self._seeded = assignment
        log.info("pattern book seeded from the database: %d patterns", len(self.book))

    def hold(self, raw: bytes) -> None:
        """Apply one fanned-out copy (an older pattern than the one held changes nothing)."""
        self.book.apply(parse_pattern(raw))

    def get(self, client_id: str) -> PatternSet:
        return self.book.get(client_id)
