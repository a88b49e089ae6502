"""How one Redis's store splits a batch into script calls (redis_store._ramped)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from allocator.quota.redis_store import REQUESTS_PER_CALL, _ramped


@given(st.integers(0, 5_000), st.integers(1, 1_000))
def test_every_lead_once_in_order_and_no_call_over_the_size(leads: int, size: int) -> None:
    calls = _ramped(list(range(leads)), size)
    assert [p for call in calls for p in call] == list(range(leads))
    assert all(0 < len(call) <= size for call in calls) or leads == 0


def test_a_batch_within_the_size_is_one_call() -> None:
    assert [len(c) for c in _ramped(list(range(250)), REQUESTS_PER_CALL)] == [250]


def test_a_full_worker_batch_ramps_up_in_four_calls() -> None:
    # The worker's batches are at most 500 leads (ALLOCATOR_BATCH_SIZE): small
    # calls first, so that Redis starts while the client makes the next, and
    # one large one, so that the batch's shared counters are read and written
    # in few calls.
    assert [len(c) for c in _ramped(list(range(500)), REQUESTS_PER_CALL)] == [31, 93, 345, 31]


def test_a_long_batch_ramps_at_most_an_eighth_of_the_size() -> None:
    sizes = [len(c) for c in _ramped(list(range(10_000)), 400)]
    assert sizes[:3] == [50, 150, 400] and sizes[-1] == 50
