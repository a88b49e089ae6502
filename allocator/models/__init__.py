"""Records of the external contract, and the one place where input is validated.

Every parse error becomes an `InvalidRecord` naming the field and the value,
with the short code (an `ErrorCode`) the DLQ carries.

    fields.py        one field's type and check, and the bounds that keep odd values out
    records.py       the input records: leads, patterns, clients, resources, pools
    allocation.py    the allocation record, and its JSON
    parsing.py       raw bytes -> a record or InvalidRecord, nothing else
    dead_letters.py  the DLQ record, small whatever the value's size
"""

from allocator.models.allocation import Allocation, ChannelAllocation, Reason
from allocator.models.dead_letters import (
    DLQ_KEY_BYTES,
    DLQ_RAW_BYTES,
    DeadLetter,
    dead_letter,
    excerpt,
)
from allocator.models.feedback import (
    KINDS,
    STOP_KINDS,
    Cancellation,
    HealthChange,
    HealthState,
    SendEvent,
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
    parse_send_event,
    validate,
)
from allocator.models.records import (
    Client,
    ConversionPattern,
    HowPattern,
    Pacing,
    Pool,
    Resource,
    Rotation,
    ScoredLead,
    SendWindow,
    Warmup,
    WhenPattern,
    derived_id,
)

__all__ = [
    "DLQ_KEY_BYTES",
    "DLQ_RAW_BYTES",
    "EARLIEST_TIMESTAMP",
    "KINDS",
    "LATEST_TIMESTAMP",
    "MAX_DEFER_DAYS",
    "MAX_DEPTH",
    "MAX_NUMBER_CHARS",
    "MAX_RECORD_BYTES",
    "MAX_TEXT_CHARS",
    "MAX_ZONE_NAME_CHARS",
    "STOP_KINDS",
    "Allocation",
    "Cancellation",
    "ChannelAllocation",
    "ChannelField",
    "Client",
    "Confidence",
    "ConversionPattern",
    "Count",
    "DeadLetter",
    "DeferDays",
    "Flag",
    "HealthChange",
    "HealthState",
    "Hour",
    "HowPattern",
    "Instant",
    "Pacing",
    "Pool",
    "Reason",
    "Resource",
    "Rotation",
    "Score",
    "ScoredLead",
    "SendEvent",
    "SendWindow",
    "Text",
    "Timestamp",
    "Warmup",
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
    "parse_send_event",
    "validate",
    "zone",
]
