"""Methods compared across benchmarks: normalised scores, average ranks, probability of improvement.

Each benchmark's headline metric (test-time-augmented accuracy where reported, else accuracy,
from the generic table: the configuration chosen by validation) is normalised by its range (an
accuracy: 0 at 0%, 1 at 100%; a metric without a finite range: between the lowest and highest
method mean of that benchmark). Chance level would be a better zero, but runs do not record
their number of classes.
A method is its row on each benchmark: a method's variant named by its default configuration
(InstaAug's LRP on crops, its uniform distribution elsewhere) counts as the method, and the
global augmentation of each family (random crop, colour or rotation) counts as one method,
`GLOBAL`. The comparisons use the methods that ran on every benchmark; the others are listed.

Following Agarwal et al. (NeurIPS 2021), each method's score is the interquartile mean (IQM) of
all its runs on all benchmarks, with a 95% stratified-bootstrap interval (seeds resampled within
each benchmark). The `rliable` package that implements this does not import with pandas 3 (its
`arch` dependency calls a pandas decorator that changed), so IQM is scipy's 25%-trimmed mean and
the stratified bootstrap is numpy, with a fixed seed. Probability of improvement P(X > Y) is the
fraction of seeds where X beats Y on a benchmark (paired: both ran the seed; ties half), averaged
over benchmarks, with the same stratified bootstrap. Average ranks follow Demšar (JMLR 2006):
ranks per benchmark by mean, averaged; the Friedman test and the Nemenyi critical-difference
diagram (`autorank`) need at least `MIN_BENCHMARKS` benchmarks, and with fewer the page says so
instead of drawing a misleading diagram.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as st

from augbench.catalog_file import benchmark_entry
from augbench.results.cells import TableResult
from augbench.results.compare import GLOBAL_COUNTERPARTS
from augbench.results.stats import BOOTSTRAP_REPS, BOOTSTRAP_SEED, LEVEL
from augbench.results.units import metric_range

HEADLINE = ("tta_acc", "acc")
GLOBAL = "global (random crop / colour / rotation)"
MIN_BENCHMARKS = 5  # autorank's minimum for the Friedman test; Demšar asks for several data sets
ALPHA = 1 - LEVEL


@dataclass
class Score:
    method: str
    iqm: float
    low: float
    high: float
    runs: int
    mean_rank: float = math.nan


@dataclass
class Aggregate:
    """What the leaderboard's index shows across benchmarks."""

    benchmarks: list[str]
    metric: dict[str, str]  # benchmark -> the metric aggregated there
    normalisation: dict[str, str]  # benchmark -> how it was normalised
    methods: list[str]  # on every benchmark, in order of IQM
    scores: list[Score]
    excluded: dict[str, list[str]]  # method -> the benchmarks it ran on (not all)
    improvement: list[list[tuple[float, float, float] | None]]  # P(row > column) with its interval
    friedman: str  # the test's outcome, or why it was not run
    friedman_p: float = math.nan
    critical_difference: float = math.nan
    cd_figure: Any = None  # a matplotlib Figure of the critical-difference diagram, or None
    notes: list[str] = field(default_factory=list)


def _default_variants(benchmark: str) -> dict[str, str]:
    """The variant each built-in method's default configuration gets on `benchmark` ({} if unknown), from the
    committed catalog: results import no registry."""
    return dict(benchmark_entry(benchmark).get("default_variants") or {})


def method_key(method: str, variant: str, defaults: dict[str, str], variants_of_method: int) -> str:
    """The name a table row has across benchmarks (see the module docstring)."""
    if method in GLOBAL_COUNTERPARTS:
        return GLOBAL
    if not variant or defaults.get(method) == variant or (method not in defaults and variants_of_method == 1):
        return method
    return f"{method} ({variant})"


def per_seed_scores(tables: Sequence[TableResult]) -> tuple[dict[str, dict[str, dict[int, float]]],
                                                                                 dict[str, str], dict[str, str]]:
    """benchmark -> method key -> seed -> normalised score, and per benchmark its metric and normalisation."""
    scores: dict[str, dict[str, dict[int, float]]] = {}
    metrics, norms = {}, {}
    for t in tables:
        if not t.cells:
            continue
        names = [c.metric for c in t.cells[0]]
        metric = next((m for m in HEADLINE if m in names), None)
        if metric is None:
            continue
        j = names.index(metric)
        cells = [(mv, line[j]) for mv, line in zip(t.rows_meta, t.cells) if line[j].status == "ok"]
        if not cells:
            continue
        low, high = metric_range(metric)
        if math.isfinite(low) and math.isfinite(high):
            norms[t.benchmark] = f"{metric}: 0 at {low:g}, 1 at {high:g}"
        else:
            means = [c.mean for _, c in cells]
            low, high = min(means), max(means)
            norms[t.benchmark] = f"{metric}: 0 at the lowest method mean, 1 at the highest"
        if high <= low:
            continue
        defaults = _default_variants(t.benchmark)
        counts = pd.Series([m for (m, _), _ in cells]).value_counts()
        metrics[t.benchmark] = metric
        bench_scores = scores.setdefault(t.benchmark, {})
        for (method, variant), cell in cells:
            key = method_key(method, variant, defaults, int(counts[method]))
            if key in bench_scores:  # two rows under one name (a second global augmentation): the first counts
                continue
            bench_scores[key] = {s: (v - low) / (high - low) for s, v in cell.by_seed().items()}
    return scores, metrics, norms


def iqm(values: np.ndarray) -> float:
    """Interquartile mean: the mean of the middle 50% (scipy's 25%-trimmed mean)."""
    return float(st.trim_mean(values, 0.25, axis=None))


def _stratified(per_task: Sequence[np.ndarray], stat: Any, rng: np.random.Generator) -> tuple[float, float]:
    """Percentile interval of `stat` over `BOOTSTRAP_REPS` stratified resamples (each task's values resampled)."""
    draws = [task[rng.integers(0, len(task), (BOOTSTRAP_REPS, len(task)))] for task in per_task]
    values = stat(draws)
    lo, hi = np.quantile(values, [ALPHA / 2, 1 - ALPHA / 2])
    return float(lo), float(hi)


def aggregate(tables: Sequence[TableResult]) -> Aggregate:
    """The across-benchmark comparison of the generic tables (see the module docstring)."""
    scores, metrics, norms = per_seed_scores(tables)
    benchmarks = sorted(scores)
    everywhere = sorted(set.intersection(*(set(scores[b]) for b in benchmarks))) if benchmarks else []
    present = sorted({m for b in benchmarks for m in scores[b]})
    excluded = {m: [b for b in benchmarks if m in scores[b]] for m in present if m not in everywhere}
    out = Aggregate(benchmarks, metrics, norms, [], [], excluded, [], "")
    if len(everywhere) < 2:
        out.friedman = "fewer than two methods ran on every benchmark: nothing to compare across benchmarks"
        return out
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    rows = []
    for m in everywhere:
        tasks = [np.asarray(list(scores[b][m].values()), dtype=float) for b in benchmarks]
        lo, hi = _stratified(tasks, lambda d: st.trim_mean(np.concatenate(d, axis=1), 0.25, axis=1), rng)
        rows.append(Score(m, iqm(np.concatenate(tasks)), lo, hi, sum(len(t) for t in tasks)))
    means = pd.DataFrame({m: [float(np.mean(list(scores[b][m].values()))) for b in benchmarks] for m in everywhere},
                         index=benchmarks)
    ranks = means.rank(axis=1, ascending=False).mean(axis=0)  # 1 = best; ties share the average rank
    for r in rows:
        r.mean_rank = float(ranks[r.method])
    rows.sort(key=lambda r: (-r.iqm, r.method))
    out.scores, out.methods = rows, [r.method for r in rows]
    out.improvement = [[None if x == y else _improvement(scores, benchmarks, x, y, rng) for y in out.methods]
                       for x in out.methods]
    _friedman(out, means[out.methods])
    return out


def _improvement(scores: dict[str, dict[str, dict[int, float]]], benchmarks: Sequence[str], x: str, y: str,
                 rng: np.random.Generator) -> tuple[float, float, float] | None:
    """P(x > y): per benchmark the fraction of common seeds where x beats y (ties half), averaged; interval
    from resampling seeds within each benchmark."""
    wins = []
    for b in benchmarks:
        seeds = sorted(set(scores[b][x]) & set(scores[b][y]))
        if not seeds:
            return None
        d = np.asarray([scores[b][x][s] - scores[b][y][s] for s in seeds])
        wins.append(np.where(d > 0, 1.0, np.where(d < 0, 0.0, 0.5)))
    point = float(np.mean([w.mean() for w in wins]))
    lo, hi = _stratified(wins, lambda d: np.mean([w.mean(axis=1) for w in d], axis=0), rng)
    return point, lo, hi


def _friedman(out: Aggregate, means: pd.DataFrame) -> None:
    n, k = means.shape
    if n < MIN_BENCHMARKS:
        out.friedman = (f"{n} benchmark{'s' if n != 1 else ''}: too few for the Friedman test and a "
                        f"critical-difference diagram (they need at least {MIN_BENCHMARKS}); the average ranks are "
                        "descriptive only")
        return
    if k < 3:
        out.friedman = "two methods: compare them with the probability of improvement instead of a Friedman test"
        return
    import autorank  # scipy's heavier cousins: only with enough benchmarks
    from matplotlib.figure import Figure

    result = autorank.autorank(means, alpha=ALPHA, verbose=False, force_mode="nonparametric", order="descending")
    out.friedman_p = float(result.pvalue)
    out.critical_difference = float(result.cd) if result.cd is not None else math.nan
    rejected = out.friedman_p < ALPHA
    out.friedman = (f"Friedman test over {n} benchmarks and {k} methods: p = {out.friedman_p:.3g} "
                    + ("(the methods differ; Nemenyi's critical difference " if rejected else
                       "(no difference detected; the diagram is drawn for reference, critical difference ")
                    + f"{out.critical_difference:.2f} ranks)")
    fig = Figure(figsize=(7.5, 0.6 + 0.28 * k), dpi=100)
    ax = fig.subplots()
    autorank.plot_stats(result, allow_insignificant=True, ax=ax)
    out.cd_figure = fig
