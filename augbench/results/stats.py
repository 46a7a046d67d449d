"""Statistics over seeds with scipy: intervals that respect a metric's range, paired comparisons, power.

A cell's interval is the 95% Student-t interval of the mean over its n seeds (mean ± t(0.975,
n-1) · s / √n). With two seeds t is 12.7, so the interval can leave the metric's range (an
accuracy above 100%); it is then clipped to the range and says so (`Interval.clipped`).

Two methods are compared on the seeds both ran, paired: a seed fixes the data split and the
initialisation for every method, so the per-seed difference A_i - B_i removes the variance
they share. `paired` gives the mean difference with its 95% t-interval (the paired t-test), the
probability of improvement P(A better than B) (the fraction of seeds where A beats B, ties
counting half; Bouthillier et al., MLSys 2021) with a percentile-bootstrap interval, and how
many seeds the paired t-test would need to separate the observed difference at 80% power.
A comparison *separates* A from B when the paired interval excludes 0. Every bootstrap draws
from a fixed seed (`BOOTSTRAP_SEED`), so the same numbers always give the same intervals.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as st

LEVEL = 0.95  # every interval's coverage, named in every caption
INTERVAL_NAME = "95% CI (Student t over seeds)"
PAIRED_NAME = "paired over seeds: mean difference with its 95% t-interval"
IMPROVEMENT_NAME = "P(better): fraction of seeds where it beats the reference (ties half), 95% bootstrap interval"
POWER = 0.8  # the power `seeds_needed` plans for, at two-sided alpha 1 - LEVEL
BOOTSTRAP_SEED = 0
BOOTSTRAP_REPS = 2000
MAX_SEEDS = 1000  # `seeds_needed` answers "more than this" beyond it
NO_RANGE = (-math.inf, math.inf)


@dataclass(frozen=True)
class Interval:
    """Mean and its t-interval over n values, clipped to the metric's range; NaN bounds below two values."""

    mean: float
    std: float
    n: int
    half: float  # the unclipped half-width (NaN below two values)
    low: float
    high: float
    clipped: bool = False  # the t-interval left the metric's range and was cut at its bound

    def contains(self, value: float) -> bool | None:
        """Whether `value` lies in the interval; None when there is no interval (n < 2) or no value."""
        if self.n < 2 or math.isnan(value) or math.isnan(self.half):
            return None
        return self.low - 1e-9 <= value <= self.high + 1e-9


def t_half_width(std: float, n: int, level: float = LEVEL) -> float:
    """Half-width of the two-sided `level` t-interval of a mean of n values with sample std `std`."""
    if n < 2 or math.isnan(std):
        return math.nan
    return float(st.t.ppf(0.5 + level / 2, n - 1)) * std / math.sqrt(n)


def t_interval(values: Sequence[float] | np.ndarray, bounds: tuple[float, float] = NO_RANGE,
               level: float = LEVEL) -> Interval:
    """Mean, sample std (ddof 1) and the two-sided `level` t-interval, clipped to `bounds`."""
    xs = np.asarray([float(v) for v in values], dtype=float)
    n = len(xs)
    if n == 0:
        return Interval(math.nan, math.nan, 0, math.nan, math.nan, math.nan)
    mean = math.fsum(xs) / n
    if n == 1:
        return Interval(mean, math.nan, 1, math.nan, mean, mean)
    std = float(np.std(xs, ddof=1))
    half = t_half_width(std, n, level)
    low, high = mean - half, mean + half
    clipped = low < bounds[0] - 1e-9 or high > bounds[1] + 1e-9
    return Interval(mean, std, n, half, max(low, bounds[0]), min(high, bounds[1]), clipped)


def overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Whether two closed intervals (low, high) share a point (a tolerance absorbs rounding)."""
    return a[0] <= b[1] + 1e-9 and b[0] <= a[1] + 1e-9


def bootstrap_mean(values: Sequence[float] | np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """Percentile-bootstrap interval of the mean of `values` (fixed seed: deterministic)."""
    xs = np.asarray(values, dtype=float)
    if len(xs) == 0:
        return math.nan, math.nan
    if np.all(xs == xs[0]):  # every resample has the same mean
        return float(xs[0]), float(xs[0])
    res = st.bootstrap((xs,), np.mean, confidence_level=level, n_resamples=BOOTSTRAP_REPS, method="percentile",
                       rng=np.random.default_rng(BOOTSTRAP_SEED))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def seeds_needed(diff: float, std: float, power: float = POWER, level: float = LEVEL) -> int | None:
    """Fewest seeds at which a two-sided paired t-test at 1 - `level` detects a true mean difference
    `diff` between pairs of standard deviation `std` with probability `power` (exact noncentral t,
    searched upwards; the normal approximation ((1.96 + 0.84) s / d)^2 is where it starts).

    When the differences do not vary, the sign test's count (`sign_test_seeds`); None when there
    is no difference to detect or more than `MAX_SEEDS` would be needed.
    """
    if math.isnan(diff) or math.isnan(std) or diff == 0:
        return None
    if std == 0:
        return sign_test_seeds(level)
    alpha = 1 - level
    effect = abs(diff) / std
    guess = max(2, int(((st.norm.ppf(1 - alpha / 2) + st.norm.ppf(power)) / effect) ** 2))
    if guess > MAX_SEEDS:
        return None

    def achieved(n: int) -> float:
        df, nc = n - 1, effect * math.sqrt(n)
        crit = st.t.ppf(1 - alpha / 2, df)
        wrong_side = float(st.nct.sf(crit, df, -nc))  # rejecting in the wrong direction: ~0, NaN far in the tail
        right_side = float(st.nct.sf(crit, df, nc))
        if math.isnan(right_side):  # far in the tail scipy may not converge: the normal approximation
            right_side = float(st.norm.sf(crit - nc))
        return right_side + (0.0 if math.isnan(wrong_side) else wrong_side)

    n = guess
    while n > 2 and achieved(n - 1) >= power:
        n -= 1
    while achieved(n) < power:
        n += 1
        if n > MAX_SEEDS:
            return None
    return n


def sign_test_seeds(level: float = LEVEL) -> int:
    """Fewest pairs whose differences, all of one sign, reject "no difference" in a two-sided exact
    sign test at 1 - `level` (6 at 95%).

    A paired t-interval needs a spread: seeds that all differ by the same amount (common when a
    metric counts a few hundred test images) give it zero width, and n=2 identical differences would
    "separate" two methods. Such a comparison is judged by the sign test instead, which needs no
    spread."""
    n = 1
    while 2 * 0.5 ** n >= 1 - level:
        n += 1
    return n


@dataclass(frozen=True)
class Paired:
    """A against B on the seeds both have, in the direction where positive means A is better."""

    n: int  # seeds both have
    diff: float  # mean of A_i - B_i (in the metric's own sign: A minus B)
    low: float  # the 95% t-interval of that mean (NaN below two pairs), clipped to the difference's range
    high: float
    p_better: float  # fraction of pairs where A is better (ties count half)
    p_low: float
    p_high: float
    better: int  # +1: A separated as better, -1: as worse, 0: not separated
    seeds_needed: int | None  # seeds for 80% power at the observed difference and spread
    std: float = math.nan

    @property
    def separated(self) -> bool:
        return self.better != 0


def paired(a: Mapping[int, float], b: Mapping[int, float], sign: int,
           bounds: tuple[float, float] = NO_RANGE) -> Paired:
    """Compare A with B over the seeds both have. `sign` is the metric's direction (+1 higher is
    better, -1 lower); `bounds` the range of the metric itself (a difference lies in
    [low - high, high - low])."""
    seeds = sorted(set(a) & set(b))
    d = np.asarray([a[s] - b[s] for s in seeds], dtype=float)
    n = len(d)
    if n == 0:
        return Paired(0, math.nan, math.nan, math.nan, math.nan, math.nan, math.nan, 0, None)
    span = bounds[1] - bounds[0]
    iv = t_interval(d, (-span, span))
    better = np.where(sign * d > 0, 1.0, np.where(sign * d < 0, 0.0, 0.5))
    p_low, p_high = bootstrap_mean(better)
    verdict = 0
    if n >= 2 and not math.isnan(iv.half):
        separates = iv.low > 0 or iv.high < 0
        if iv.std == 0:  # no spread: the t-interval has zero width; the exact sign test decides
            separates = iv.mean != 0 and n >= sign_test_seeds()
        if separates:
            verdict = sign if iv.mean > 0 else -sign
    need = seeds_needed(iv.mean, iv.std) if n >= 2 else None
    return Paired(n, iv.mean, iv.low if n >= 2 else math.nan, iv.high if n >= 2 else math.nan,
                  float(better.mean()), p_low, p_high, verdict, need, iv.std)
