"""`augbench.numformat`: one rule for the numbers of tables, the leaderboard and the bench report."""

from __future__ import annotations

import math

import numpy as np

from augbench.numformat import format_number


def test_numbers_in_a_format_and_missing_values_alike():
    assert format_number(0.6612) == "0.66" and format_number(np.float64(2.0), ".4f") == "2.0000"
    assert format_number(1234.5, ",.0f") == "1,234" and format_number(-0.25, "+.2f") == "-0.25"
    for missing in (None, math.nan, math.inf, np.float32("nan")):
        assert format_number(missing) == "" and format_number(missing, ".3g", "-") == "-"
