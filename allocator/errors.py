"""Errors that carry the field and value at fault, with a stable code for the DLQ."""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    """Every `error_code` a dead letter can carry; topics.md says what each means.

    A StrEnum, so `error.code == "invalid_json"` and JSON output keep working.
    """

    # the value as a whole
    EMPTY_VALUE = "empty_value"
    INVALID_ENCODING = "invalid_encoding"
    INVALID_JSON = "invalid_json"
    NOT_AN_OBJECT = "not_an_object"
    TOO_LARGE = "too_large"
    TOO_DEEP = "too_deep"
    # one field (the error names it)
    MISSING_FIELD = "missing_field"
    INVALID_FIELD = "invalid_field"
    OUT_OF_RANGE = "out_of_range"
    INVALID_TIMESTAMP = "invalid_timestamp"
    UNKNOWN_TIMEZONE = "unknown_timezone"
    UNKNOWN_CHANNEL = "unknown_channel"
    UNKNOWN_PATTERN_TYPE = "unknown_pattern_type"
    DUPLICATE_CHANNEL = "duplicate_channel"
    UNKNOWN_KIND = "unknown_kind"  # a send-event's kind
    # a send-event that names no send the allocator reserved (allocation,
    # channel or resource do not match)
    UNKNOWN_SEND = "unknown_send"
    # a valid record the rules could not decide (allocator/batch.py)
    UNDECIDABLE = "undecidable"
    # a file line whose check failed in a way no bound foresaw (allocator/files.py)
    INVALID_RECORD = "invalid_record"


# A message names the value; it never carries a large one whole (a dead letter
# must stay far below the producer's size limit, and log lines readable).
SHOWN_CHARS = 100
MESSAGE_CHARS = 300


def shown(value: Any, limit: int = SHOWN_CHARS) -> str:
    """The value's repr for a message, cut to `limit` characters."""
    try:
        text = repr(value)
    except ValueError:  # an int over Python's digit limit cannot be printed
        return f"<{type(value).__name__} too large to show>"
    if len(text) <= limit:
        return text
    size = f" ({len(value)} characters)" if isinstance(value, str) else ""
    return f"{text[:limit]}…{size}"


def _cut(message: str, limit: int) -> str:
    return message if len(message) <= limit else message[: limit - 1] + "…"


class InvalidRecord(ValueError):
    """An input record that cannot be processed; `code` is the DLQ's error_code.

    An unknown code is a programming error and raises ValueError at once, so
    that every code a dead letter carries is listed in ErrorCode.
    """

    def __init__(self, code: ErrorCode | str, field: str | None, value: Any, message: str) -> None:
        self.code = ErrorCode(code)
        self.field = field
        self.value = value
        self.message = _cut(message, MESSAGE_CHARS)
        super().__init__(self.message)


class LoadError(ValueError):
    """A JSON Lines file with bad lines; nothing of it was written."""

    def __init__(self, path: str, problems: list[tuple[int, InvalidRecord]]) -> None:
        self.path = path
        self.problems = problems
        lines = "\n".join(f"  line {n}: {err.message}" for n, err in problems)
        super().__init__(f"{path}: {len(problems)} bad line(s), nothing written\n{lines}")


class ServiceUnavailable(Exception):
    """A service the allocator depends on (Redis, the database) failed in a way
    that may pass: the caller retries, and never dead-letters for it.

    The adapters (allocator/quota/redis_store.py, allocator/store/) raise it,
    since only they know which of their drivers' errors mean "try again"; the
    stream layer only retries it.
    """

    def __init__(self, service: str, cause: BaseException) -> None:
        self.service = service
        self.cause = cause
        super().__init__(f"{service} unavailable: {type(cause).__name__}: {cause}")


class UndecidableLead(InvalidRecord):
    """A lead that passed validation but that the rules could not decide: a
    bug or a gap in the bounds, not bad input; dead-lettered as `undecidable`."""

    def __init__(self, lead_id: str, cause: BaseException) -> None:
        super().__init__(
            ErrorCode.UNDECIDABLE,
            None,
            None,
            f"lead {shown(lead_id)} cannot be decided: {type(cause).__name__}: {cause}",
        )
        self.cause = cause
