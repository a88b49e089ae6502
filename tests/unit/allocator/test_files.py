"""JSON Lines reading: every bad line is named with its number, whatever its bytes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from allocator.errors import InvalidRecord, LoadError
from allocator.files import load_all, parse_lines

GOOD = b'{"n": 1}\n'


def ident(data: dict[str, Any]) -> dict[str, Any]:
    return data


def test_a_line_that_is_not_utf8_is_one_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_bytes(GOOD + b'{"n": "\xff\xfe"}\n' + b"\n" + b'{"n": 3}\r\n')
    out = list(parse_lines(path, ident))
    assert [n for n, _ in out] == [1, 2, 4]  # the blank line 3 is skipped, still counted
    assert out[0][1] == {"n": 1} and out[2][1] == {"n": 3}
    bad = out[1][1]
    assert isinstance(bad, InvalidRecord) and bad.code == "invalid_encoding"


def test_json_nested_too_deep_for_the_parser_is_one_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_bytes(b"[" * 200_000 + b"\n" + GOOD)
    first, second = list(parse_lines(path, ident))
    assert first[0] == 1 and isinstance(first[1], InvalidRecord)
    assert second == (2, {"n": 1})


@pytest.mark.parametrize("kind", [IsADirectoryError, ValueError])
def test_a_line_whose_check_fails_otherwise_is_named_by_number(
    tmp_path: Path, kind: type[Exception]
) -> None:
    # e.g. a time zone "America": the zone lookup opens a directory of the zone database
    def parse(data: dict[str, Any]) -> dict[str, Any]:
        if data["n"] == 2:
            raise kind("cannot check this one")
        return data

    path = tmp_path / "x.jsonl"
    path.write_bytes(GOOD + b'{"n": 2}\n' + b'{"n": 3}\n')
    with pytest.raises(LoadError) as caught:
        load_all(path, parse)
    assert [n for n, _ in caught.value.problems] == [2]
    assert "line 2: " in str(caught.value) and "cannot check this one" in str(caught.value)


def test_a_missing_file_or_a_directory_is_a_file_error_not_a_line_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_all(tmp_path / "absent.jsonl", ident)
    with pytest.raises(IsADirectoryError):
        load_all(tmp_path, ident)
