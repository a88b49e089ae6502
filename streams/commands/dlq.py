"""`allocator dlq show`: the dead letters (ALLOCATOR_TOPIC_DLQ), counted by error
code and listed with where each record came from and how its value began.

The topic is read from its start (or --since) to its end without a consumer
group, so looking commits nothing and moves no worker's offsets. The reader is
the replay's (allocator/replay/sources.py), which knows where a partition ends
even on a broker that under-reports its high watermark.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pydantic

from allocator.errors import ErrorCode
from allocator.models import DeadLetter
from allocator.replay.sources import Bound, read_topic
from allocator.running import run_to_end
from streams.commands.errors import RUNTIME, USAGE, CommandError
from streams.commands.output import cell, console, print_json, table

DEFAULT_LIMIT = 20
SHOWN_VALUE_CHARS = 60  # of a raw value in the table; --json gives all the DLQ kept
NOT_A_DEAD_LETTER = "(not a dead letter)"  # a record on the topic that no worker wrote

_DURATION = re.compile(r"(\d+)([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
SINCE_FIX = (
    "give a duration (90s, 30m, 2h, 7d, 1w) or a time with its UTC offset (2026-11-26T13:00:00Z)"
)


@dataclass(frozen=True)
class Entry:
    """One record of the DLQ topic: where it sits there, and what it says."""

    partition: int
    offset: int
    timestamp_ms: int
    letter: DeadLetter | None  # None: not a dead letter (then `raw` says what it was)
    raw: bytes | None

    @property
    def code(self) -> str:
        return self.letter.error_code.value if self.letter else NOT_A_DEAD_LETTER

    @property
    def when(self) -> datetime:
        if self.letter is not None:
            return self.letter.failed_at
        return datetime.fromtimestamp(self.timestamp_ms / 1000, UTC)


def parse_since(text: str, now: datetime) -> datetime:
    """--since as an instant: `now` minus a duration, or an RFC 3339 time."""
    duration = _DURATION.fullmatch(text.strip())
    if duration:
        amount, unit = duration.groups()
        return now - timedelta(**{_UNITS[unit]: int(amount)})
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise CommandError(
            f"--since {text}: not a duration or a time; {SINCE_FIX}", USAGE
        ) from None
    if at.tzinfo is None:
        raise CommandError(f"--since {text}: the time has no UTC offset; {SINCE_FIX}", USAGE)
    return at


def parse_code(text: str) -> ErrorCode:
    """--code as an ErrorCode, or a usage error listing the codes."""
    try:
        return ErrorCode(text)
    except ValueError:
        codes = ", ".join(code.value for code in ErrorCode)
        raise CommandError(f"--code {text}: unknown error code; one of {codes}", USAGE) from None


def entry(partition: int, offset: int, timestamp_ms: int, value: bytes | None) -> Entry:
    try:
        letter = DeadLetter.model_validate_json(value or b"")
    except pydantic.ValidationError:
        letter = None
    return Entry(partition, offset, timestamp_ms, letter, value)


async def read_entries(
    bootstrap: str, topic: str, since: datetime | None, client_options: dict[str, Any] | None = None
) -> list[Entry]:
    """Every record of `topic` from `since` (or its start), in time order."""
    start = Bound(at=since) if since is not None else None
    try:
        records = await read_topic(bootstrap, topic, start, None, client_options=client_options)
    except ValueError as exc:  # the reader's word for a topic that is not there
        raise CommandError(
            f"topic {topic!r} (ALLOCATOR_TOPIC_DLQ) does not exist on {bootstrap}: "
            "run `allocator topics create` or a worker, or fix the variable",
            RUNTIME,
        ) from exc
    return [entry(*record) for record in records]


def as_json(item: Entry) -> dict[str, Any]:
    found: dict[str, Any] = {
        "dlq_partition": item.partition,
        "dlq_offset": item.offset,
        "error_code": item.code,
    }
    if item.letter is not None:
        found.update(item.letter.model_dump(mode="json"))
    else:
        found["raw_value"] = (item.raw or b"").decode("utf-8", "replace")
    return found


def show(
    bootstrap: str,
    topic: str,
    since: datetime | None,
    code: ErrorCode | None,
    limit: int,
    json_output: bool,
    client_options: dict[str, Any] | None = None,
) -> int:
    entries = run_to_end(read_entries(bootstrap, topic, since, client_options))
    if code is not None:
        entries = [e for e in entries if e.code == code.value]
    counts = Counter(e.code for e in entries)
    listed = entries[-limit:] if limit else entries  # the most recent
    if json_output:
        print_json(
            {
                "topic": topic,
                "since": since.isoformat() if since else None,
                "code": code.value if code else None,
                "total": len(entries),
                "by_code": dict(counts.most_common()),
                "records": [as_json(e) for e in listed],
            }
        )
        return 0
    out = console()
    asked = f" with error_code {code.value}" if code else ""
    if since is not None:
        asked += f" since {since.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"
    out.print(f"{len(entries)} dead letter(s) on {topic}{asked}", markup=False, highlight=False)
    if not listed:
        return 0
    by_code = table("error_code", "count")
    for name, count in counts.most_common():
        by_code.add_row(cell(name), cell(count))
    out.print(by_code)
    out.print(f"the {len(listed)} most recent:", markup=False, highlight=False)
    records = table(
        "failed at (UTC)",
        "source topic/partition@offset",
        "key",
        "error_code",
        "error",
        "raw value (start)",
    )
    for item in listed:
        records.add_row(*_row(item))
    out.print(records)
    return 0


def _row(item: Entry) -> list[Any]:
    when = item.when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    letter = item.letter
    if letter is None:
        raw = (item.raw or b"").decode("utf-8", "replace")
        return [cell(when), cell(None), cell(None), cell(item.code), cell(None), cell(_cut(raw))]
    source = f"{letter.source_topic}/{letter.partition}@{letter.offset}"
    return [
        cell(when),
        cell(source),
        cell(letter.key),
        cell(letter.error_code.value),
        cell(letter.error),
        cell(_cut(letter.raw_value)),
    ]


def _cut(text: str) -> str:
    return text if len(text) <= SHOWN_VALUE_CHARS else text[: SHOWN_VALUE_CHARS - 1] + "…"
