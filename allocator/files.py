"""JSON Lines files of the contract's records, validated line by line."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from allocator.errors import InvalidRecord, LoadError
from allocator.models import decode_object

T = TypeVar("T")


def read_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of every non-blank line."""
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                yield number, line


def parse_lines(
    path: str | Path, parse: Callable[[dict[str, Any]], T]
) -> Iterator[tuple[int, T | InvalidRecord]]:
    """Each line parsed, or the InvalidRecord that says why not; never stops early."""
    for number, line in read_lines(path):
        try:
            yield number, parse(decode_object(line))
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
