"""Coverage-guided fuzzing of the input boundary with atheris (libFuzzer), for long runs.

The same property as tests/unit/allocator/models/test_fuzz.py, from raw bytes that libFuzzer
mutates toward new branches of allocator/: every value parses as a lead and as
a pattern or fails with an InvalidRecord of a known code, and every lead and
pattern that parses is decided. Run by `make fuzz`, or:

    .venv/bin/python -m tests.fuzz.fuzz_records -runs=100000 \\
        -dict=tests/fuzz/json.dict CORPUS_DIR tests/fuzz/seeds

libFuzzer writes the inputs it finds to the first directory, so give it a
scratch one; tests/fuzz/seeds holds valid records to start from.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["allocator"]):
    from allocator.models import parse_lead, parse_pattern
    from tests.unit.allocator.models.test_fuzz import (
        EDGE_LEADS,
        PATTERN_SETS,
        SETUPS,
        decide,
        parsed,
        pattern_set,
    )


def one_input(raw: bytes) -> None:
    lead = parsed(parse_lead, raw)
    if lead is not None:
        for setup in SETUPS:
            decide(lead, setup, PATTERN_SETS[-1])
    pattern = parsed(parse_pattern, raw)
    if pattern is not None:
        for edge in EDGE_LEADS:
            decide(edge, SETUPS[1], pattern_set(pattern))


def main() -> None:
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
