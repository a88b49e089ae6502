"""The offset watch against a model fetcher that skips records, keeps
delivering records fetched before a seek, and reads a partition with real
holes (compaction, control records): every record that exists is decided in
order, and only offsets that hold nothing are ever accepted as a gap. (A skip
shows only once a record past it arrives; the model's partition always gets
one.)"""

from __future__ import annotations

from collections import deque

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.offsets import OffsetWatch, Rewinds, Seen


@given(st.data())
@settings(max_examples=300)
def test_every_record_that_exists_is_decided_in_order(data: st.DataObject) -> None:
    end = data.draw(st.integers(1, 40))
    holes = data.draw(st.sets(st.integers(0, end - 1), max_size=end // 3))
    # A last record always comes, later: a skip is seen from the next record past it.
    present = [o for o in range(end) if o not in holes] + [end]
    markers = data.draw(st.booleans())  # transactional inputs
    # With markers a skip of one offset is taken for a transaction's marker,
    # so the model's skips are of two offsets or more there.
    shortest = 2 if markers else 1
    faults = data.draw(st.integers(0, 4))  # skips forward, as a consumer that lost records
    watch = OffsetWatch(markers=markers)
    position = 0  # where the fetcher reads next
    in_flight: deque[int] = deque()  # fetched (or queued) before a seek, delivered anyway
    decided: list[int] = []
    lied = False  # skipped while a rewind was under way
    marked: set[int] = set()  # offsets taken for a transaction's marker
    accepted_empty: list[range] = []
    for _ in range(20 * end + 100):
        if not in_flight:
            following = [o for o in present if o >= position]
            if not following:
                break
            # A skip while a rewind is under way would be a second fault in
            # one gap; one is modelled, two in a row are not.
            calm = watch.gap(0) is None or not lied
            if faults and calm and position + shortest <= end and data.draw(st.booleans()):
                faults -= 1
                lied = watch.gap(0) is not None
                position = data.draw(st.integers(position + shortest, end))
                continue
            count = data.draw(st.integers(1, 5))
            in_flight.extend(following[:count])
            position = following[:count][-1] + 1
        offset = in_flight.popleft()
        gap_before = watch.gap(0)
        seen = watch.see(0, offset, 0)  # committed: the partition's start
        if seen is Seen.NEXT or seen is Seen.MARKER:
            decided.append(offset)
            lied = False
            if seen is Seen.MARKER:
                marked.add(offset - 1)
        elif seen is Seen.EMPTY_GAP:
            assert gap_before is not None
            accepted_empty.append(range(gap_before[0], offset))
            decided.append(offset)
            lied = False
        elif seen is Seen.SKIPPED:
            gap = watch.gap(0)
            assert gap is not None
            position = gap[0]  # the seek; what was fetched or queued before may still come
            if data.draw(st.booleans()):
                in_flight.clear()
    assert decided == present  # each record that exists, once, in order
    for empty in accepted_empty:
        assert not set(empty) & set(present)
    assert marked <= holes
    assert markers or not marked


def test_a_redelivery_is_normal_and_a_rebalance_forgets_the_gap() -> None:
    watch = OffsetWatch()
    assert watch.see(0, 10, 10) is Seen.NEXT  # from the committed offset
    assert watch.see(0, 11, 10) is Seen.NEXT
    assert watch.see(0, 5, 10) is Seen.AGAIN
    assert watch.see(0, 20, 10) is Seen.SKIPPED
    assert watch.gap(0) == (12, 20)
    watch.reassigned()
    assert watch.gap(0) is None
    assert watch.see(0, 7, 7) is Seen.NEXT


def test_a_gap_is_accepted_once_two_rewinds_bring_the_same_record_first() -> None:
    watch = OffsetWatch()
    watch.see(0, 0, None)
    assert watch.see(0, 5, None) is Seen.SKIPPED
    assert watch.see(0, 6, None) is Seen.SKIPPED  # fetched before the seek
    assert watch.see(0, 5, None) is Seen.SKIPPED  # once: it could be a second skip
    assert watch.see(0, 5, None) is Seen.EMPTY_GAP  # twice: offsets 1..4 hold nothing
    assert watch.see(0, 6, None) is Seen.NEXT


def test_a_record_below_the_first_seen_past_the_gap_restarts_the_count() -> None:
    watch = OffsetWatch()
    watch.see(0, 0, None)
    watch.see(0, 9, None)
    assert watch.see(0, 9, None) is Seen.SKIPPED
    assert watch.see(0, 4, None) is Seen.SKIPPED  # 4 lives between: 1..3 may not
    assert watch.gap(0) == (1, 4)
    assert watch.see(0, 4, None) is Seen.SKIPPED
    assert watch.see(0, 4, None) is Seen.EMPTY_GAP


def test_one_offset_missing_is_a_marker_only_with_transactional_inputs() -> None:
    watch = OffsetWatch(markers=True)
    assert watch.see(0, 0, None) is Seen.NEXT
    assert watch.see(0, 2, None) is Seen.MARKER  # offset 1: the transaction's commit marker
    assert watch.gap(0) is None
    assert watch.see(0, 3, None) is Seen.NEXT
    assert watch.see(0, 6, None) is Seen.SKIPPED  # two or more: rewound
    plain = OffsetWatch()
    plain.see(0, 0, None)
    assert plain.see(0, 2, None) is Seen.SKIPPED  # a lost record as likely as a marker


def test_rewinds_wanted_keep_the_lowest_offset_and_a_rebalance_drops_them() -> None:
    rewinds = Rewinds()
    rewinds.want(0, 9)
    rewinds.want(0, 4)
    rewinds.want(1, 7)
    assert rewinds.take() == {0: 4, 1: 7}
    assert rewinds.take() == {}
    rewinds.want(0, 3)
    rewinds.reassigned()
    assert rewinds.take() == {}
