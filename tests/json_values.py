"""Comparing what two JSON readers or writers gave: the same values, of the
same types, all the way down (the quota script's JSON and decode_object's
orjson path are each held to json so)."""

from __future__ import annotations

import math
from typing import Any


def same_values(one: Any, other: Any) -> bool:
    """Equal values of the same types, all the way down (1 and 1.0 differ; NaN is NaN)."""
    if type(one) is not type(other):
        return False
    if isinstance(one, dict):
        return list(one) == list(other) and all(same_values(one[k], other[k]) for k in one)
    if isinstance(one, list):
        return len(one) == len(other) and all(map(same_values, one, other))
    if isinstance(one, float) and math.isnan(one):
        return math.isnan(other)
    return bool(one == other)
