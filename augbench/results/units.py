"""What a metric's name says about it: its unit, shown in percent or not, counted in integers or
not, which direction is better, its range. The terminal (`augbench run`), tables and the
leaderboard read these, so a metric reads the same everywhere.

Our metrics are fractions, the paper's percentages: fraction metrics (accuracies, coverage,
violation, kept-object rates, per-image magnitudes as a fraction of the ops' full strength) are
shown in percent everywhere. A name may carry a prefix
("resnet18/tta_acc@10"): only its last part decides.
"""

from __future__ import annotations

import fnmatch
import math
import numbers
from collections.abc import Iterable

from augbench.numformat import format_number

PERCENT_METRICS = ("*acc*", "*coverage", "*violation", "*keeps*", "*frac*", "magnitude*")
#: Counts: shown as integers even when a record stores them as floats.
INTEGER_METRICS = ("steps", "best_epoch", "epoch", "*views_evaluated", "n_*")
#: Units of the metrics that are not fractions (percent) or plain numbers: shell patterns -> unit.
UNITS = {"*hue_width*": "turns", "*_deg": "deg", "*rotation_width": "rad", "width_rotation": "rad",
         "*views_evaluated": "views", "steps": "steps", "*seconds": "s", "*time": "s"}
#: The sign `direction` gives, as the arrow shown beside a value ("" where neither is better).
ARROWS = {1: "\u2191", -1: "\u2193", 0: ""}
HIGHER_IS_BETTER = ("*acc*", "*coverage", "*keeps*")
LOWER_IS_BETTER = ("*loss*", "*violation", "*error*")
#: Neither better nor worse: what a method's own choices would score at random (`*_chance`), and
#: the kept-object rate, which larger crops raise by themselves (`keeps_object_gain` scores it).
REFERENCE_METRICS = ("*_chance", "keeps_object")
#: Metrics computed when collecting, from two a run reported: name -> (a, b), the value a - b.
#: `keeps_object_gain`: how much more often the method's crops keep the object than the same
#: crops at random positions; positive only when crops are placed on the object.
DERIVED_METRICS = {"keeps_object_gain": ("keeps_object", "keeps_object_chance")}
#: Test metrics that score a learned distribution against a stand-in's known invariance (and the
#: out-of-distribution accuracy the colour stand-in is about), in the order figures show them;
#: `magnitude_fragile` / `magnitude_robust`: a per-image magnitude where the label is fragile or not.
GROUND_TRUTH_METRICS = ("coverage", "violation", "keeps_object", "keeps_object_chance", "keeps_object_gain",
                        "hue_coverage", "hue_violation", "acc_ood", "magnitude_fragile", "magnitude_robust")


#: The values a metric can take, in display units (first matching pattern wins): intervals are
#: clipped to them. Rates and accuracies are fractions shown in percent; a gain is a difference of
#: two rates; a loss, a width or an area is never negative; a differential entropy is unbounded.
RANGES: tuple[tuple[str, tuple[float, float]], ...] = (
    ("*_gain", (-100.0, 100.0)), ("tta_views_evaluated", (1.0, math.inf)),
    *((p, (0.0, 100.0)) for p in PERCENT_METRICS),
    ("*loss*", (0.0, math.inf)), ("*width*", (0.0, math.inf)), ("*area*", (0.0, math.inf)),
    ("*_apply", (0.0, 1.0)), ("*entropy*", (-math.inf, math.inf)),
)


def _matches(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatch(name, p) for p in patterns)


def is_percent(metric: str) -> bool:
    """Fraction metrics shown in percent (the paper's unit)."""
    return _matches(metric.split("/")[-1], PERCENT_METRICS)


def direction(metric: str) -> int:
    """+1 if higher is better, -1 if lower is better, 0 if neither is known (no best marked)."""
    leaf = metric.split("/")[-1]
    if _matches(leaf, REFERENCE_METRICS):
        return 0
    if _matches(leaf, LOWER_IS_BETTER):
        return -1
    return 1 if _matches(leaf, HIGHER_IS_BETTER) else 0


def metric_kind(metric: str) -> str:
    """What a cell reports, for a column that mixes kinds: "TTA" (test-time augmentation) or "plain"."""
    return "TTA" if metric.split("/")[-1].startswith("tta_") else "plain"


def metric_range(metric: str) -> tuple[float, float]:
    """The range of a metric's values in display units (percent for fraction metrics); unbounded if unknown."""
    leaf = metric.split("/")[-1]
    for pattern, bounds in RANGES:
        if fnmatch.fnmatch(leaf, pattern):
            return bounds
    return (-math.inf, math.inf)


def is_integer(metric: str) -> bool:
    """Counts (steps, epochs, views), shown without decimals."""
    return _matches(metric.split("/")[-1], INTEGER_METRICS)


def unit(metric: str) -> str:
    """The unit a value of `metric` is shown in ("%" for fractions shown in percent; "" if none)."""
    if is_percent(metric):
        return "%"
    leaf = metric.split("/")[-1]
    return next((u for pattern, u in UNITS.items() if fnmatch.fnmatch(leaf, pattern)), "")


def arrow(metric: str) -> str:
    """An up arrow if higher is better, a down arrow if lower is, "" if neither (`direction`)."""
    return ARROWS[direction(metric)]


def format_value(metric: str, value: object) -> str:
    """One value as a person reads it, without its unit: 97.31 (a percent metric), 10 (a count), 0.0812."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return str(value)
    number = float(value)
    if not math.isfinite(number):
        return format_number(number, missing="-")
    if isinstance(value, numbers.Integral) or (is_integer(metric) and number.is_integer()):
        return format_number(int(number), "d")
    return format_number(100 * number if is_percent(metric) else number, ".2f" if is_percent(metric) else ".4g")
