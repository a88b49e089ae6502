"""JSON Lines files of the contract's records, validated line by line.

A file is read as bytes, so that whatever a line holds (text that is not
UTF-8, JSON nested deeper than the parser goes, a value whose check fails) is
that line's problem, reported with its number, and the other lines go on. Only
the file itself (missing, a directory, unreadable) stops the reading, as the
OSError that names it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from allocator.errors import InvalidRecord, LoadError
from allocator.models import decode_object

T = TypeVar("T")

# What one line's content can raise while it is decoded and checked, besides
# InvalidRecord (itself a ValueError): a ValueError no check translated, an
# OSError from a lookup the value names (the time zone "America" is a
# directory of the zone database), a RecursionError from JSON nested too deep.
# Anything else is a fault of the code, not of the line, and must surface.
LINE_ERRORS = (ValueError, OSError, RecursionError)


def read_lines(path: str | Path) -> Iterator[tuple[int, bytes]]:
    """(line number, bytes) of every non-blank line; a line ends at b"\\n" (JSON Lines)."""
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.isspace():  # never empty: a line holds at least its b"\n" or a byte
                yield number, line


def parse_line(line: bytes, parse: Callable[[dict[str, Any]], T]) -> T:
    """The line's record, or InvalidRecord whatever is wrong with the line."""
    try:
        return parse(decode_object(line))
    except InvalidRecord:
        raise
    except LINE_ERRORS as exc:
        message = f"{type(exc).__name__}: {exc}"
        raise InvalidRecord("invalid_record", None, None, message) from exc


def parse_lines(
    path: str | Path, parse: Callable[[dict[str, Any]], T]
) -> Iterator[tuple[int, T | InvalidRecord]]:
    """Each line parsed, or the InvalidRecord that says why not; never stops early."""
    for number, line in read_lines(path):
        try:
            yield number, parse_line(line, parse)
        except InvalidRecord as err:
            yield number, err


def load_all(path: str | Path, parse: Callable[[dict[str, Any]], T]) -> list[T]:
    """Every record of the file, or LoadError naming every bad line (all or nothing)."""
    good: list[T] = []
    bad: list[tuple[int, InvalidRecord]] = []
    for number, item in parse_lines(path, parse):
        if isinstance(item, InvalidRecord):
            bad.append((number, item))
        else:
            good.append(item)
    if bad:
        raise LoadError(str(path), bad)
    return good
