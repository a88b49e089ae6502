"""The allocation record is written by hand (models/allocation.py, for speed):
byte for byte what pydantic writes for the same record and field types, which
is what the topic and the replay's files carried before (issue 15)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import get_args

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from allocator.channels import Channel, EntryStatus, ResourceType
from allocator.models import Allocation, ChannelAllocation, Reason
from allocator.models.allocation import iso
from allocator.tiers import Tier

WRITTEN_BY_PYDANTIC = TypeAdapter(Allocation)

# Any text a record may hold: control characters, quotes, backslashes,
# non-ASCII, astral characters (hypothesis leaves out lone surrogates, which
# the input bounds reject before a record is built).
texts = st.text(max_size=40)
offsets = st.integers(-24 * 3600 + 1, 24 * 3600 - 1).map(
    lambda s: timezone(timedelta(seconds=s))  # sub-minute ones too: a zone's local mean time
)
instants = st.datetimes(
    min_value=datetime(1, 1, 2),
    max_value=datetime(9999, 12, 30),
    timezones=st.one_of(st.just(UTC), offsets, st.timezones()),
)
reasons = st.builds(Reason, code=texts, detail=texts)
entries = st.builds(
    ChannelAllocation,
    channel=st.sampled_from(Channel),
    status=st.sampled_from(get_args(EntryStatus)),
    resource_type=st.none() | st.sampled_from(ResourceType),
    resource_id=st.none() | texts,
    send_at=st.none() | instants,
    timing_source=st.sampled_from(["pattern", "default"]),
    usage_day=st.none() | texts,
    reason=st.none() | reasons,
)
allocations = st.builds(
    Allocation,
    allocation_id=texts,
    event_id=texts,
    lead_id=texts,
    client_id=texts,
    als_score=st.integers(0, 100),
    als_tier=st.sampled_from(Tier),
    sequence_source=st.sampled_from(["pattern", "default"]),
    channels=st.lists(entries, max_size=5).map(tuple),
    decided_at=instants,
)


@settings(max_examples=2000)
@given(allocations)
def test_an_allocation_is_written_as_pydantic_writes_it(allocation: Allocation) -> None:
    assert allocation.to_json() == WRITTEN_BY_PYDANTIC.dump_json(allocation).decode()


def test_the_characters_json_must_escape_are_escaped_alike() -> None:
    odd = "".join(chr(c) for c in range(0x20)) + '"\\/\x7f\u2028\u2029é😀'
    entry = ChannelAllocation(
        Channel.SMS, "exhausted", None, odd, None, "default", None, Reason(odd, odd)
    )
    record = Allocation(odd, odd, odd, odd, 7, Tier.COLD, "default", (entry,), datetime.now(UTC))
    assert record.to_json() == WRITTEN_BY_PYDANTIC.dump_json(record).decode()
    assert "\\u001f" in record.to_json() and "é😀" in record.to_json()


# UTC on a whole second: the instants `iso` writes from its own parts.
whole_seconds_utc = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)).map(
    lambda at: at.replace(microsecond=0, tzinfo=UTC)
)


@settings(max_examples=3000)
@given(st.one_of(whole_seconds_utc, instants))
def test_iso_writes_what_isoformat_writes(at: datetime) -> None:
    assert iso(at) == at.isoformat()
