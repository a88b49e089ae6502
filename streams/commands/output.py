"""How a command shows what it found: a rich table for a person, JSON for a program."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text


def console() -> Console:
    # A pipe or a captured stream gets a fixed width, wide enough that ids are
    # not folded, instead of rich's 80 columns.
    return Console(width=None if sys.stdout.isatty() else 160)


def cell(value: object) -> Text:
    """A table cell shown as it is: an id or a raw value with "[...]" in it
    must not be read as rich markup, and a control character must not break
    the row."""
    if value is None:
        return Text("-", style="dim")
    text = str(value)
    if not text.isprintable():
        text = json.dumps(text, ensure_ascii=False)[1:-1]
    return Text(text)


def table(*columns: str) -> Table:
    # No title: rich wraps a title to the table's width, and a table of one
    # narrow column would fold "3 dead letter(s) on lead-allocations-dlq".
    shown = Table()
    for name in columns:
        shown.add_column(name)
    return shown


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
