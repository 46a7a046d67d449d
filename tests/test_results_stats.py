"""Statistics over seeds: scipy's t-intervals clipped to a metric's range, paired comparisons, power."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from augbench.results.stats import bootstrap_mean, overlap, paired, seeds_needed, t_interval
from augbench.results.units import metric_range


def test_interval_by_hand():
    iv = t_interval([55.1, 55.3, 54.9])  # mean 55.1, s = 0.2, n = 3: half = 4.302653 * 0.2 / sqrt(3)
    assert (iv.mean, iv.std, iv.n) == (pytest.approx(55.1), pytest.approx(0.2), 3)
    assert iv.half == pytest.approx(4.302652729749 * 0.2 / math.sqrt(3), rel=1e-9)
    assert (iv.low, iv.high) == (pytest.approx(55.1 - iv.half), pytest.approx(55.1 + iv.half))
    assert iv.contains(55.06) and not iv.contains(56.0) and not iv.clipped


def test_interval_matches_scipy():
    values = [0.61, 0.64, 0.59, 0.66, 0.60]
    iv = t_interval(values)
    lo, hi = stats.t.interval(0.95, len(values) - 1, loc=iv.mean, scale=stats.sem(values))
    assert (iv.low, iv.high) == (pytest.approx(lo, rel=1e-10), pytest.approx(hi, rel=1e-10))


def test_an_interval_is_clipped_to_the_metrics_range_and_says_so():
    iv = t_interval([99.0, 90.0], metric_range("acc"))  # two seeds: mean ± 12.7 * 6.4 = [37.3, 151.7]
    assert iv.high == 100.0 and iv.low == pytest.approx(94.5 - iv.half) and iv.clipped
    assert metric_range("tta_acc") == (0.0, 100.0) and metric_range("keeps_object_gain") == (-100.0, 100.0)
    assert metric_range("loss") == (0.0, math.inf) and metric_range("entropy") == (-math.inf, math.inf)


def test_one_or_no_value_has_no_interval():
    one = t_interval([0.7])
    assert one.n == 1 and one.mean == 0.7 and math.isnan(one.half) and (one.low, one.high) == (0.7, 0.7)
    assert one.contains(0.7) is None
    assert t_interval([]).n == 0


def test_overlap_is_closed_and_symmetric():
    assert overlap((0, 1), (1, 2)) and overlap((1, 2), (0, 1))
    assert overlap((0, 3), (1, 2))
    assert not overlap((0, 1), (1.1, 2)) and not overlap((1.1, 2), (0, 1))


def test_paired_difference_is_scipys_paired_t_test():
    a = {0: 70.0, 1: 75.0, 2: 80.0, 3: 72.0}
    b = {0: 68.0, 1: 73.5, 2: 77.0, 3: 71.0, 9: 50.0}  # seed 9 has no partner: left out
    p = paired(a, b, sign=1)
    d = [2.0, 1.5, 3.0, 1.0]
    res = stats.ttest_rel([a[s] for s in range(4)], [b[s] for s in range(4)])
    ci = res.confidence_interval(0.95)
    assert p.n == 4 and p.diff == pytest.approx(sum(d) / 4)
    assert (p.low, p.high) == (pytest.approx(ci.low), pytest.approx(ci.high))
    assert p.better == (1 if res.pvalue < 0.05 else 0) == 1
    assert p.p_better == 1.0 and (p.p_low, p.p_high) == (1.0, 1.0)
    assert paired(a, b, sign=-1).better == -1  # lower is better: the same difference is worse


def test_probability_of_improvement_counts_ties_half_and_has_a_bootstrap_interval():
    a = {s: v for s, v in enumerate((1.0, 2.0, 3.0, 4.0, 5.0, 6.0))}
    b = {s: v for s, v in enumerate((0.0, 2.0, 4.0, 3.0, 4.0, 7.0))}  # better, tie, worse, better, better, worse
    p = paired(a, b, sign=1)
    assert p.p_better == pytest.approx((3 + 0.5) / 6)
    assert 0.0 <= p.p_low < p.p_better < p.p_high <= 1.0
    again = paired(a, b, sign=1)
    assert (p.p_low, p.p_high) == (again.p_low, again.p_high)  # a fixed bootstrap seed: the same interval each time
    assert p.better == 0  # signs disagree: not separated


def test_bootstrap_interval_brackets_the_mean():
    lo, hi = bootstrap_mean([0.0, 1.0, 1.0, 0.0, 1.0])
    assert 0.0 <= lo < 0.6 < hi <= 1.0
    assert bootstrap_mean([0.5, 0.5]) == (0.5, 0.5)


def test_seeds_needed_reaches_80_percent_power_with_the_noncentral_t():
    def power(n: int, effect: float) -> float:
        crit = stats.t.ppf(0.975, n - 1)
        nc = effect * math.sqrt(n)
        return stats.nct.sf(crit, n - 1, nc) + stats.nct.cdf(-crit, n - 1, nc)

    for diff, std in ((1.0, 1.0), (0.5, 1.0), (2.0, 1.0), (0.3, 2.0)):
        n = seeds_needed(diff, std)
        assert n is not None and power(n, diff / std) >= 0.8 and (n == 2 or power(n - 1, diff / std) < 0.8)
    assert seeds_needed(1.0, 1.0) == 10  # the textbook value for a paired t-test at d = 1
    assert seeds_needed(0.0, 1.0) is None and seeds_needed(1.0, 0.0) == 6 and seeds_needed(0.001, 10.0) is None


def test_differences_that_do_not_vary_are_judged_by_the_exact_sign_test():
    """Two seeds that both differ by -1.67 points give a t-interval of zero width; they must not
    separate the methods. Six pairs of one sign do (two-sided p = 2 / 2**6 < 0.05), five do not."""
    a = {0: 80.0, 1: 81.0}
    b = {0: 81.67, 1: 82.67}
    p = paired(a, b, sign=1)
    assert p.std == 0 and p.diff < 0 and p.better == 0 and p.seeds_needed == 6
    five = paired({s: 1.0 for s in range(5)}, {s: 0.0 for s in range(5)}, sign=1)
    six = paired({s: 1.0 for s in range(6)}, {s: 0.0 for s in range(6)}, sign=1)
    assert five.better == 0 and six.better == 1
    assert paired({s: 1.0 for s in range(6)}, {s: 1.0 for s in range(6)}, sign=1).better == 0
