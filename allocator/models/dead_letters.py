"""The DLQ record: an input that could not be processed, small whatever its size.

A dead letter carries a prefix of the value, never all of it: the value may be
near the broker's size limit, and the dead letter must stay far below the
producer's. `raw_length` and `raw_sha256` tell the whole value apart and let an
operator find it on its source topic (source_topic, partition, offset).
"""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from allocator.errors import ErrorCode, InvalidRecord
from allocator.models.fields import Instant

# The first 4 KiB of the value show what it was; base64 makes that at most
# 5,464 characters, and JSON escapes of control characters at most 24 KiB.
DLQ_RAW_BYTES = 4096
# A key is an id (at most 256 characters, up to 1 KiB of UTF-8).
DLQ_KEY_BYTES = 1024


class DeadLetter(BaseModel):
    model_config = ConfigDict(frozen=True)

    source_topic: str
    partition: int | None
    offset: int | None
    key: str | None  # at most DLQ_KEY_BYTES of the key, as `excerpt` gives them
    raw_value: str  # at most DLQ_RAW_BYTES of the value, as `excerpt` gives them
    # The whole value's size in bytes and its SHA-256 (hex); None for a
    # tombstone's hash. Defaults only for records built without `dead_letter`.
    raw_length: int | None = None
    raw_sha256: str | None = None
    error_code: ErrorCode
    error: str
    failed_at: Instant


def excerpt(raw: bytes, limit: int) -> str:
    """The first `limit` bytes of `raw`, as text when all of `raw` is UTF-8, else as base64.

    The whole value decides between text and base64, so a value is shown one
    way whatever its length. Text is cut on a character boundary (at most 3
    bytes short of `limit`), so it stays valid UTF-8.
    """
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return base64.b64encode(raw[:limit]).decode("ascii")
    # The value is valid UTF-8, so the only bytes "ignore" can drop are those of
    # a character the cut split.
    return raw[:limit].decode("utf-8", "ignore")


def dead_letter(
    source_topic: str,
    partition: int | None,
    offset: int | None,
    key: bytes | None,
    raw: bytes | None,
    error: InvalidRecord,
    failed_at: datetime,
) -> DeadLetter:
    """The DLQ record of `raw` (None: a tombstone), read from that topic, partition and offset."""
    return DeadLetter(
        source_topic=source_topic,
        partition=partition,
        offset=offset,
        key=None if key is None else excerpt(key, DLQ_KEY_BYTES),
        raw_value="" if raw is None else excerpt(raw, DLQ_RAW_BYTES),
        raw_length=0 if raw is None else len(raw),
        raw_sha256=None if raw is None else hashlib.sha256(raw).hexdigest(),
        error_code=error.code,
        error=error.message,  # at most errors.MESSAGE_CHARS, values in it cut
        failed_at=failed_at,
    )
