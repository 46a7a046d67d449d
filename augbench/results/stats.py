"""Confidence intervals over seeds: Student t, computed exactly, without scipy.

A cell's interval is mean ± t(0.975, n-1) · s / √n, with s the sample standard deviation
(ddof 1) of its n per-seed values: the usual 95% interval for the mean of a few independent
seeds. The t quantile is found by bisection on the closed-form t distribution function for
integer degrees of freedom (Abramowitz & Stegun 26.7.3-4), which is exact to floating point.
One seed has no interval (NaN): its value is all we know.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

LEVEL = 0.95  # the interval's coverage, named in every table caption
INTERVAL_NAME = "95% CI (Student t over seeds)"


def _central_mass(t: float, df: int) -> float:
    """P(|T| <= t) for Student's t with `df` (a positive integer) degrees of freedom, t >= 0."""
    theta = math.atan(t / math.sqrt(df))
    c, s = math.cos(theta), math.sin(theta)
    if df % 2 == 1:  # odd: (2/pi) (theta + sin cos (1 + 2/3 cos^2 + 2*4/(3*5) cos^4 + ...))
        total, term = 0.0, c
        for k in range(1, (df - 1) // 2 + 1):
            total += term
            term *= c * c * (2 * k) / (2 * k + 1)
        return (2.0 / math.pi) * (theta + s * total)
    total, term = 0.0, 1.0  # even: sin (1 + cos^2/2 + 1*3/(2*4) cos^4 + ...)
    for k in range(1, df // 2 + 1):
        total += term
        term *= c * c * (2 * k - 1) / (2 * k)
    return s * total


def t_quantile(p: float, df: int) -> float:
    """The p-quantile (0.5 <= p < 1) of Student's t with integer `df` >= 1 degrees of freedom."""
    if df < 1 or int(df) != df:
        raise ValueError(f"degrees of freedom must be a positive integer, got {df}")
    if not 0.5 <= p < 1.0:
        raise ValueError(f"p must lie in [0.5, 1), got {p}")
    mass = 2.0 * p - 1.0
    lo, hi = 0.0, 1.0
    while _central_mass(hi, int(df)) < mass:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if _central_mass(mid, int(df)) < mass:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-13 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


@dataclass(frozen=True)
class Interval:
    """Mean and its t-interval over n values; `half` is NaN (and lo = hi = mean) below two values."""

    mean: float
    std: float
    n: int
    half: float

    @property
    def low(self) -> float:
        return self.mean - self.half if self.n > 1 else self.mean

    @property
    def high(self) -> float:
        return self.mean + self.half if self.n > 1 else self.mean

    def contains(self, value: float) -> bool | None:
        """Whether `value` lies in the interval; None when there is no interval (n < 2) or no value."""
        if self.n < 2 or math.isnan(value) or math.isnan(self.half):
            return None
        return self.low - 1e-9 <= value <= self.high + 1e-9


def t_interval(values: Sequence[float], level: float = LEVEL) -> Interval:
    """Mean, sample std (ddof 1) and the half-width of the two-sided `level` t-interval."""
    xs = [float(v) for v in values]
    n = len(xs)
    if n == 0:
        return Interval(math.nan, math.nan, 0, math.nan)
    mean = math.fsum(xs) / n
    if n == 1:
        return Interval(mean, math.nan, 1, math.nan)
    std = math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (n - 1))
    half = t_quantile(0.5 + level / 2, n - 1) * std / math.sqrt(n)
    return Interval(mean, std, n, half)


def overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Whether two closed intervals (low, high) share a point (a tolerance absorbs rounding)."""
    return a[0] <= b[1] + 1e-9 and b[0] <= a[1] + 1e-9
