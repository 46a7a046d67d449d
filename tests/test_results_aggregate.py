"""Across benchmarks: normalised scores, IQM with stratified-bootstrap intervals, ranks, P(improvement)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from test_results_helpers import write_run

from augbench.results.aggregate import GLOBAL, aggregate, iqm, method_key, per_seed_scores
from augbench.results.cells import auto_tables
from augbench.results.collect import collect

ACC = {  # benchmark -> method -> per-seed accuracy
    "b1": {"none": (0.50, 0.52, 0.54), "instaaug": (0.60, 0.61, 0.65), "random-rotation": (0.55, 0.58, 0.56)},
    "b2": {"none": (0.70, 0.71, 0.69), "instaaug": (0.72, 0.70, 0.74), "random-crop": (0.71, 0.73, 0.72),
           "augerino": (0.40, 0.41, 0.42)},
}


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    root = tmp_path_factory.mktemp("agg")
    for bench, methods in ACC.items():
        for method, accs in methods.items():
            for seed, acc in enumerate(accs):
                write_run(root, f"{bench}-{method}-{seed}", benchmark=bench, method=method, seed=seed,
                          test={"acc": acc})
    return auto_tables(collect(root, report=lambda _: None, running_within=0))


def test_scores_are_normalised_by_the_metrics_range_and_named_across_benchmarks(tables):
    scores, metrics, norms = per_seed_scores(tables)
    assert metrics == {"b1": "acc", "b2": "acc"} and norms["b1"] == "acc: 0 at 0, 1 at 100"
    assert scores["b1"]["instaaug"] == pytest.approx({0: 0.60, 1: 0.61, 2: 0.65})
    assert scores["b1"][GLOBAL] == pytest.approx({0: 0.55, 1: 0.58, 2: 0.56})  # random-rotation here,
    assert scores["b2"][GLOBAL] == pytest.approx({0: 0.71, 1: 0.73, 2: 0.72})  # random-crop there: one method
    assert method_key("instaaug", "lrp", {"instaaug": "lrp"}, 2) == "instaaug"  # the family's default variant
    assert method_key("instaaug", "input-free", {"instaaug": "lrp"}, 2) == "instaaug (input-free)"


def test_iqm_and_its_stratified_bootstrap_interval(tables):
    agg = aggregate(tables)
    assert agg.methods[0] == "instaaug" and set(agg.methods) == {"instaaug", GLOBAL, "none"}
    assert agg.excluded == {"augerino": ["b2"]}  # not on every benchmark: listed, left out
    top = agg.scores[0]
    values = np.array(ACC["b1"]["instaaug"] + ACC["b2"]["instaaug"])
    assert top.iqm == pytest.approx(stats.trim_mean(values, 0.25)) and top.runs == 6
    assert top.low <= top.iqm <= top.high and top.high - top.low > 0
    assert iqm(np.array([0.0, 1.0, 2.0, 3.0, 100.0, -100.0, 1.5, 2.5])) == pytest.approx(1.75)
    again = aggregate(tables)
    assert [(s.low, s.high) for s in again.scores] == [(s.low, s.high) for s in agg.scores]  # fixed seed


def test_probability_of_improvement_is_paired_per_benchmark_and_averaged(tables):
    agg = aggregate(tables)
    i, n = agg.methods.index("instaaug"), agg.methods.index("none")
    p, lo, hi = agg.improvement[i][n]
    # b1: instaaug beats none on 3 of 3 seeds; b2: on 2 of 3 (seed 1: 0.70 against 0.71)
    assert p == pytest.approx((1.0 + 2 / 3) / 2) and lo <= p <= hi
    assert agg.improvement[n][i][0] == pytest.approx(1 - p) and agg.improvement[i][i] is None


def test_few_benchmarks_give_ranks_but_no_friedman_test(tables):
    agg = aggregate(tables)
    assert "2 benchmarks: too few for the Friedman test and a critical-difference diagram" in agg.friedman
    assert agg.cd_figure is None and np.isnan(agg.friedman_p)
    ranks = {s.method: s.mean_rank for s in agg.scores}
    assert ranks["instaaug"] == pytest.approx((1 + 1.5) / 2) and ranks["none"] == pytest.approx(3.0)  # b2: a tie
