"""Errors that carry the field and value at fault, with a stable code for the DLQ."""

from __future__ import annotations

from typing import Any


class InvalidRecord(ValueError):
    """An input record that cannot be processed; `code` is the DLQ's error_code."""

    def __init__(self, code: str, field: str | None, value: Any, message: str) -> None:
        self.code = code
        self.field = field
        self.value = value
        self.message = message
        super().__init__(message)


class LoadError(ValueError):
    """A JSON Lines file with bad lines; nothing of it was written."""

    def __init__(self, path: str, problems: list[tuple[int, InvalidRecord]]) -> None:
        self.path = path
        self.problems = problems
        lines = "\n".join(f"  line {n}: {err.message}" for n, err in problems)
        super().__init__(f"{path}: {len(problems)} bad line(s), nothing written\n{lines}")
