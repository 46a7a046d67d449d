"""Confidence intervals: the t quantile against scipy and hand computations, intervals, overlap."""

from __future__ import annotations

import math

import pytest

from augbench.results.stats import overlap, t_interval, t_quantile


def test_t_quantile_matches_closed_forms():
    # df 1: t = tan(pi (p - 1/2)); df 2: t = (2p - 1) sqrt(2 / (1 - (2p - 1)^2))
    assert t_quantile(0.975, 1) == pytest.approx(math.tan(math.pi * 0.475), rel=1e-12)  # 12.7062
    a = 0.95
    assert t_quantile(0.975, 2) == pytest.approx(a * math.sqrt(2 / (1 - a * a)), rel=1e-12)  # 4.3027
    assert t_quantile(0.975, 4) == pytest.approx(2.776445105, rel=1e-9)  # printed tables
    assert t_quantile(0.975, 30) == pytest.approx(2.042272456, rel=1e-9)
    assert t_quantile(0.5, 7) == pytest.approx(0.0, abs=1e-12)


def test_t_quantile_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    for df in (1, 2, 3, 5, 9, 10, 19, 49, 100, 999):
        for p in (0.9, 0.95, 0.975, 0.995):
            assert t_quantile(p, df) == pytest.approx(stats.t.ppf(p, df), rel=1e-10), (p, df)


def test_t_quantile_refuses_bad_arguments():
    with pytest.raises(ValueError, match="positive integer"):
        t_quantile(0.975, 0)
    with pytest.raises(ValueError, match=r"\[0.5, 1\)"):
        t_quantile(1.0, 3)


def test_interval_by_hand():
    iv = t_interval([55.1, 55.3, 54.9])  # mean 55.1, s = 0.2, n = 3: half = 4.302653 * 0.2 / sqrt(3)
    assert (iv.mean, iv.std, iv.n) == (pytest.approx(55.1), pytest.approx(0.2), 3)
    assert iv.half == pytest.approx(4.302652729749 * 0.2 / math.sqrt(3), rel=1e-9)
    assert (iv.low, iv.high) == (pytest.approx(55.1 - iv.half), pytest.approx(55.1 + iv.half))
    assert iv.contains(55.06) and not iv.contains(56.0)


def test_interval_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    values = [0.61, 0.64, 0.59, 0.66, 0.60]
    iv = t_interval(values)
    lo, hi = stats.t.interval(0.95, len(values) - 1, loc=iv.mean, scale=stats.sem(values))
    assert (iv.low, iv.high) == (pytest.approx(lo, rel=1e-10), pytest.approx(hi, rel=1e-10))


def test_one_or_no_value_has_no_interval():
    one = t_interval([0.7])
    assert one.n == 1 and one.mean == 0.7 and math.isnan(one.half) and (one.low, one.high) == (0.7, 0.7)
    assert one.contains(0.7) is None
    assert t_interval([]).n == 0


def test_overlap_is_closed_and_symmetric():
    assert overlap((0, 1), (1, 2)) and overlap((1, 2), (0, 1))
    assert overlap((0, 3), (1, 2))
    assert not overlap((0, 1), (1.1, 2)) and not overlap((1.1, 2), (0, 1))
