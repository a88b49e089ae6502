"""Records of the external contract, and the one place where input is validated.

Every parse error becomes an `InvalidRecord` naming the field and the value,
with the short code (an `ErrorCode`) the DLQ carries.

    fields.py        one field's type and check, and the bounds that keep odd values out
    records.py       the records: leads, patterns, clients, resources, allocations
    parsing.py       raw bytes -> a record or InvalidRecord, nothing else
    dead_letters.py  the DLQ record, small whatever the value's size
"""

from allocator.models.dead_letters import (
    DLQ_KEY_BYTES,
    DLQ_RAW_BYTES,
    DeadLetter,
    dead_letter,
    excerpt,
)
from allocator.models.fields import (
    EARLIEST_TIMESTAMP,
    LATEST_TIMESTAMP,
    MAX_DEFER_DAYS,
    MAX_TEXT_CHARS,
    MAX_ZONE_NAME_CHARS,
    ChannelField,
    Confidence,
    Count,
    DeferDays,
    Flag,
    Hour,
    Instant,
    Score,
    Text,
    Timestamp,
    Weekday,
    ZoneName,
    zone,
)
from allocator.models.parsing import (
    MAX_DEPTH,
    MAX_NUMBER_CHARS,
    MAX_RECORD_BYTES,
    decode_object,
    parse_lead,
    parse_pattern,
    parse_pattern_data,
    validate,
)
from allocator.models.records import (
    Allocation,
    ChannelAllocation,
    Client,
    ConversionPattern,
    HowPattern,
    Resource,
    ScoredLead,
    WhenPattern,
    derived_id,
)

__all__ = [
    "DLQ_KEY_BYTES",
    "DLQ_RAW_BYTES",
    "EARLIEST_TIMESTAMP",
    "LATEST_TIMESTAMP",
    "MAX_DEFER_DAYS",
    "MAX_DEPTH",
    "MAX_NUMBER_CHARS",
    "MAX_RECORD_BYTES",
    "MAX_TEXT_CHARS",
    "MAX_ZONE_NAME_CHARS",
    "Allocation",
    "ChannelAllocation",
    "ChannelField",
    "Client",
    "Confidence",
    "ConversionPattern",
    "Count",
    "DeadLetter",
    "DeferDays",
    "Flag",
    "Hour",
    "HowPattern",
    "Instant",
    "Resource",
    "Score",
    "ScoredLead",
    "Text",
    "Timestamp",
    "Weekday",
    "WhenPattern",
    "ZoneName",
    "dead_letter",
    "decode_object",
    "derived_id",
    "excerpt",
    "parse_lead",
    "parse_pattern",
    "parse_pattern_data",
    "validate",
    "zone",
]
