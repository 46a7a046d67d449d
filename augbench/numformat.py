"""How numbers are printed in tables, the leaderboard and the bench report: one rule.

    format_number(0.6612)                 -> "0.66"
    format_number(1234.5, ",.0f")         -> "1,234"
    format_number(float("nan"), missing="-") -> "-"

A value that is missing (None) or not finite (NaN, infinity) prints as `missing`, never as
"nan": a cell that has no number says so the same way everywhere.
"""

from __future__ import annotations

import math
import numbers
from typing import Any


def format_number(value: Any, spec: str = ".2f", missing: str = "") -> str:
    """`value` in the format `spec` (Python's format mini-language), or `missing` for None, NaN, infinity."""
    if value is None or (isinstance(value, numbers.Real) and not math.isfinite(value)):
        return missing
    return format(value, spec)


__all__ = ["format_number"]
