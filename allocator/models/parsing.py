"""Raw values -> records, or InvalidRecord: the one way input enters the allocator.

A value is first held to bounds on its whole: nesting and size cheaply,
before the JSON parser sees it, and the length of each number as the parser
reads it; then each field to its own (fields.py). Whatever a value holds, it
ends as one record or one InvalidRecord whose code is an ErrorCode; no other
exception comes out of parsing.
"""

from __future__ import annotations

import json
import re
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError

from allocator.errors import ErrorCode, InvalidRecord, shown
from allocator.models.feedback import SendEvent, check_kind_fields
from allocator.models.records import ConversionPattern, HowPattern, ScoredLead, WhenPattern

# A lead or pattern is a few hundred bytes; 64 KiB leaves room for any extra
# fields a producer adds, and keeps one record from holding up a batch.
MAX_RECORD_BYTES = 64 * 1024
# The record object is level 1. Python's JSON parser recurses once per level
# and raises RecursionError near 1,000 levels; the contract's records use 2.
MAX_DEPTH = 32
# The longest number literal (digits, sign, point and exponent). Python will
# not read an integer of over 4,300 digits, and no field needs over a dozen.
MAX_NUMBER_CHARS = 100

# What the depth scan needs to see: brackets, and what starts or escapes a
# string. All are ASCII, and no byte of a multi-byte UTF-8 character is, so
# the scan reads bytes, before (and whether or not) they decode.
_STRUCTURE = re.compile(rb'[\[\]{}"\\]')
_OPEN = frozenset(b"[{")
_CLOSE = frozenset(b"]}")
_QUOTE = ord('"')
_BACKSLASH = ord("\\")


def _check_size(size: int) -> None:
    if size > MAX_RECORD_BYTES:
        raise InvalidRecord(
            ErrorCode.TOO_LARGE,
            None,
            None,
            f"value is {size} bytes, over the bound of {MAX_RECORD_BYTES} bytes",
        )


def _check_depth(raw: bytes) -> None:
    """InvalidRecord too_deep when arrays and objects nest over MAX_DEPTH levels.

    Run before the size check, so that a value both deep and large says
    too_deep, the more telling; the scan stops at MAX_RECORD_BYTES + 1 bytes,
    past which the value is too_large anyway, so its cost is bounded.
    """
    if raw.count(b"[") + raw.count(b"{") <= MAX_DEPTH:
        return  # too few brackets to nest that deep: the common case costs two counts
    depth = 0
    in_string = False
    escaped = -1  # the position a backslash in a string escapes
    # Tokenised as the JSON parser does up to its first error, so the scan
    # counts exactly the levels the parser would recurse into; brackets in
    # strings do not count.
    for match in _STRUCTURE.finditer(raw, 0, MAX_RECORD_BYTES + 1):
        at = match.start()
        byte = raw[at]
        if in_string:
            if at == escaped:
                continue
            if byte == _BACKSLASH:
                escaped = at + 1
            elif byte == _QUOTE:
                in_string = False
        elif byte == _QUOTE:
            in_string = True
        elif byte in _OPEN:
            depth += 1
            if depth > MAX_DEPTH:
                raise InvalidRecord(
                    ErrorCode.TOO_DEEP,
                    None,
                    None,
                    f"value nests arrays and objects deeper than {MAX_DEPTH} levels",
                )
        elif byte in _CLOSE:
            depth -= 1


def _check_number(literal: str) -> None:
    if len(literal) > MAX_NUMBER_CHARS:
        raise InvalidRecord(
            ErrorCode.TOO_LARGE,
            None,
            literal[:MAX_NUMBER_CHARS],
            f"a number of {len(literal)} characters, over the bound of {MAX_NUMBER_CHARS}: "
            f"{shown(literal)}",
        )


def _int_literal(literal: str) -> int:
    _check_number(literal)
    return int(literal)


def _float_literal(literal: str) -> float:
    _check_number(literal)
    return float(literal)


# One decoder for every value: json.loads with hooks would build one per call.
_JSON = json.JSONDecoder(parse_int=_int_literal, parse_float=_float_literal)

# The values orjson is trusted with: where it reads a number as json (and the
# hooks above) would, and no deeper structure. orjson reads an integer past
# 64 bits as a float, and cannot bound a literal's length; a 64-bit integer
# has at most 20 digits, far inside MAX_NUMBER_CHARS.
_PLAIN = frozenset({str, int, bool, type(None)})


def _quick_object(raw: bytes) -> dict[str, Any] | None:
    """The object, if orjson reads it and json would read it the same; else None.

    A flat object of text, integers, booleans and nulls, each key once (a
    lead; issue 15: 0.7 us against json's 2.2). Anything else goes the json
    way, which reads it or says what is wrong, as before: whatever orjson
    refuses (NaN, a lone surrogate, text that is not UTF-8), a float (an
    integer past 64 bits comes out of orjson as one), a nested value.
    """
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    # A key given twice keeps its last value, and json's hooks read the one
    # dropped (a number of 101 digits is too_large there): as many commas as
    # a flat object of these keys needs, and no more, rules that out. (The
    # members are at least the keys, and the commas one fewer than the
    # members plus any in text or in a dropped array; a comma in text only
    # sends the value the json way.)
    if (
        type(data) is dict
        and raw.count(b",") == len(data) - 1
        and _PLAIN.issuperset(map(type, data.values()))
    ):
        return data
    return None


def decode_object(raw: bytes | str | None) -> dict[str, Any]:
    """Bytes (or text) -> a JSON object, within the bounds above.

    InvalidRecord codes, checked in this order: empty_value, too_deep,
    too_large, invalid_encoding, invalid_json (also a number literal over
    MAX_NUMBER_CHARS: too_large), not_an_object.
    """
    if raw is None:
        raise InvalidRecord(ErrorCode.EMPTY_VALUE, None, None, "record has no value (tombstone)")
    if isinstance(raw, str):
        # Text (a line of a file) is held to the same bounds as bytes, counted
        # in UTF-8; text with a lone surrogate character is not UTF-8.
        raw = raw.encode("utf-8", "surrogatepass")
    _check_depth(raw)
    _check_size(len(raw))
    quick = _quick_object(raw)
    if quick is not None:
        return quick
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRecord(
            ErrorCode.INVALID_ENCODING, None, None, f"value is not UTF-8: {exc}"
        ) from None
    try:
        data = _JSON.decode(text)
    except json.JSONDecodeError as exc:
        raise InvalidRecord(
            ErrorCode.INVALID_JSON, None, text[:200], f"value is not JSON: {exc}"
        ) from None
    if not isinstance(data, dict):
        raise InvalidRecord(
            ErrorCode.NOT_AN_OBJECT,
            None,
            data,
            f"value must be a JSON object, got {type(data).__name__}",
        )
    return data


M = TypeVar("M", bound=BaseModel)

# pydantic's own error types that have a more telling DLQ code
_PYDANTIC_CODES = {
    "missing": ErrorCode.MISSING_FIELD,
    "too_short": ErrorCode.INVALID_FIELD,
    "list_type": ErrorCode.INVALID_FIELD,
}
# the codes the field checks raise (fields.py, records.py); any other error
# type of pydantic's is an invalid_field
_FIELD_CODES = frozenset(
    {
        ErrorCode.INVALID_FIELD,
        ErrorCode.OUT_OF_RANGE,
        ErrorCode.UNKNOWN_CHANNEL,
        ErrorCode.UNKNOWN_TIMEZONE,
        ErrorCode.INVALID_TIMESTAMP,
        ErrorCode.DUPLICATE_CHANNEL,
        ErrorCode.TOO_LARGE,
        ErrorCode.UNKNOWN_KIND,
    }
)


def _invalid(error: ValidationError) -> InvalidRecord:
    first = error.errors(include_url=False)[0]
    loc = first.get("loc", ())
    field = ".".join(str(part) for part in loc) or None
    kind = first["type"]
    code = _PYDANTIC_CODES.get(kind) or (
        ErrorCode(kind) if kind in _FIELD_CODES else ErrorCode.INVALID_FIELD
    )
    if code is ErrorCode.MISSING_FIELD:
        return InvalidRecord(code, field, None, f"{field}: required field is missing")
    return InvalidRecord(code, field, first.get("input"), f"{field or 'record'}: {first['msg']}")


def validate(model: type[M], data: dict[str, Any]) -> M:
    try:
        # What model_validate calls, without its frame and six keyword
        # arguments left at their defaults (it runs once a record).
        # (a typed name, not cast(): one call fewer a record)
        record: M = model.__pydantic_validator__.validate_python(data)
        return record
    except ValidationError as exc:
        raise _invalid(exc) from None


def parse_lead(raw: bytes | str | None) -> ScoredLead:
    return validate(ScoredLead, decode_object(raw))


def parse_pattern_data(data: dict[str, Any]) -> ConversionPattern:
    kind = data.get("pattern_type")
    if kind == "when":
        return validate(WhenPattern, data)
    if kind == "how":
        return validate(HowPattern, data)
    if kind is None:
        raise InvalidRecord(
            ErrorCode.MISSING_FIELD, "pattern_type", None, "pattern_type: required field is missing"
        )
    raise InvalidRecord(
        ErrorCode.UNKNOWN_PATTERN_TYPE,
        "pattern_type",
        kind,
        f"pattern_type: must be 'when' or 'how', got {shown(kind)}",
    )


def parse_pattern(raw: bytes | str | None) -> ConversionPattern:
    return parse_pattern_data(decode_object(raw))


def parse_send_event(raw: bytes | str | None) -> SendEvent:
    """A `send-events` record, with the fields its kind requires."""
    return check_kind_fields(validate(SendEvent, decode_object(raw)))
