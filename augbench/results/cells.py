"""The numbers of a table: cells aggregated over seeds, for the paper's layouts and a generic one.

A cell aggregates the finished runs that match it: mean, sample std (ddof 1), n and the 95%
Student-t confidence interval of the mean over seeds (`augbench.results.stats`), in display
units (percent for fraction metrics). When several configurations match a cell,
`augbench.results.selection.choose_config` picks one by validation and the cell names it (and
whether validation tied). Missing cells stay in the table with their reason (failed, running,
partial, missing; "not reported" when finished runs exist but lack the metric), so a rendering
can show them rather than hide them.

Best in a column: the leader (by the metric's direction) wins alone only when its interval
overlaps no other cell's; otherwise it and every cell whose interval overlaps its own are tied
for best. A single-seed cell has no interval: it counts as its value alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from augbench.errors import ConfigError
from augbench.results.paper import TABLES, TableSpec, get_table, paper_value
from augbench.results.schema import PROVENANCE_COLUMNS
from augbench.results.selection import choose_config, finished_runs, select
from augbench.results.stats import overlap, t_interval
from augbench.results.units import direction, is_percent, metric_kind

BOOKKEEPING = ("best_epoch", "steps", "time", "step", "epoch", "lr")  # numbers in records that are not results
UNFINISHED = ("running", "stalled")  # run states (augbench.rundir.STATES) of started runs without a result
NON_METRICS = ("benchmark", "method", "variant", "seed", "run_id", "state", "reason", "split", "step", "epoch",
               "time", "run_dir", "val_acc", *PROVENANCE_COLUMNS)
NOT_REPORTED = "not-reported"  # finished runs exist, none reports the metric


@dataclass
class Cell:
    """One aggregated cell, in display units (percent for fraction metrics)."""

    metric: str
    n: int = 0
    mean: float = float("nan")
    std: float = float("nan")
    half: float = float("nan")  # half-width of the 95% t-interval (NaN below two seeds)
    status: str = "missing"  # ok / failed / running / partial (runs stalled) / missing / not-reported
    n_failed: int = 0
    n_unfinished: int = 0
    selected: str = ""  # the chosen configuration where several matched
    candidates: int = 0
    by_validation: bool = True  # False: no validation accuracy, the choice fell back to most seeds
    tie: int = 0  # configurations tied at the best validation score (0: no tie)
    not_learned: int = 0  # runs whose learned distribution did not learn (a `diagnosis` in their test record)
    diagnoses: str = ""  # their flags, comma-separated
    paper_mean: float = float("nan")
    paper_std: float = float("nan")
    paper_n: float = float("nan")
    best: bool = False  # best in its column, alone or tied
    tied: bool = False  # best, but its interval overlaps another best cell's
    values: list[float] = field(default_factory=list)  # per-seed values behind mean/std (for plots)

    @property
    def diff(self) -> float:
        return self.mean - self.paper_mean if self.status == "ok" else float("nan")

    @property
    def low(self) -> float:
        return self.mean - self.half if self.n > 1 else self.mean

    @property
    def high(self) -> float:
        return self.mean + self.half if self.n > 1 else self.mean

    @property
    def paper_in_ci(self) -> bool | None:
        """Whether the paper's number lies inside our interval; None without either."""
        if self.status != "ok" or self.n < 2 or np.isnan(self.paper_mean) or np.isnan(self.half):
            return None
        return bool(self.low - 1e-9 <= self.paper_mean <= self.high + 1e-9)


def summarise(done: pd.DataFrame, runs_of_cell: pd.DataFrame, metric: str) -> Cell:
    """Aggregate the finished runs `done` of one cell over seeds, choosing a configuration by validation."""
    cell = Cell(metric)
    states = runs_of_cell.drop_duplicates("run_id")["state"] if not runs_of_cell.empty else pd.Series(dtype=str)
    cell.n_failed = int((states == "failed").sum())
    cell.n_unfinished = int(states.isin(UNFINISHED).sum())
    if not done.empty:
        choice = choose_config(done)
        done, cell.selected, cell.candidates, cell.by_validation, cell.tie = choice
        if "diagnosis" in done:
            flagged = [str(d) for d in done["diagnosis"].dropna() if str(d)]
            cell.not_learned = len(flagged)
            cell.diagnoses = ",".join(sorted({f for d in flagged for f in d.split(",")}))
    values = done[metric].dropna() if metric in done else pd.Series(dtype=float)
    if values.empty:
        cell.status = (NOT_REPORTED if not done.empty else "failed" if cell.n_failed
                       else "running" if (states == "running").any() else "partial" if cell.n_unfinished
                       else "missing")
        return cell
    values = values.astype(float) * (100.0 if is_percent(metric) else 1.0)
    cell.values = [float(v) for v in values]
    interval = t_interval(cell.values)
    cell.n, cell.mean, cell.std, cell.half = interval.n, interval.mean, interval.std, interval.half
    cell.status = "ok"
    return cell


@dataclass
class TableResult:
    """A table's cells (row-major over `row_labels` x `column_labels`) and its layout."""

    id: str
    title: str
    benchmark: str
    row_labels: list[str]
    row_extras: list[dict[str, str]]
    extra_columns: tuple[str, ...]
    column_labels: list[str]
    cells: list[list[Cell]]
    rows_meta: list[tuple[str, str]] = field(default_factory=list)  # (method, variant) per row
    has_paper: bool = True

    def mark_best(self) -> None:
        """Mark the best of our numbers in each column (by the metric's direction), or the tied best.

        The leader wins alone when its 95% interval overlaps no other cell's; otherwise it and
        every cell whose interval overlaps its own are tied (all marked best and tied).
        """
        for j in range(len(self.column_labels)):
            col = [row[j] for row in self.cells if row[j].status == "ok"]
            if len(col) < 2:  # a lone number is not "best" of anything
                continue
            sign = direction(col[0].metric)
            if sign == 0:
                continue
            leader = max(col, key=lambda c: sign * c.mean)
            best = [c for c in col if c is leader or overlap((c.low, c.high), (leader.low, leader.high))]
            for c in best:
                c.best, c.tied = True, len(best) > 1

    def mixes_metrics(self, j: int) -> bool:
        """Whether column `j` holds cells of different kinds (plain and TTA accuracy)."""
        return len({metric_kind(line[j].metric) for line in self.cells}) > 1


def paper_table(frame: pd.DataFrame, table_id: str) -> TableResult:
    """A paper table filled from collected runs, with the paper's numbers beside ours."""
    spec: TableSpec = get_table(table_id)
    done = finished_runs(frame)
    cells = []
    for row in spec.rows:
        line = []
        for col in spec.columns:
            where = {**col.where, **row.where}
            metric = spec.metric(row, col)
            cell = summarise(select(done, spec.benchmark, row.method, row.variant, where),
                             select(frame, spec.benchmark, row.method, row.variant, where), metric)
            paper = paper_value(spec.paper_key(row, col))
            if paper is not None:
                cell.paper_mean, cell.paper_std, cell.paper_n = paper
            line.append(cell)
        cells.append(line)
    result = TableResult(spec.id, spec.title, spec.benchmark, [r.label for r in spec.rows],
                         [dict(r.extra) for r in spec.rows], spec.extra_columns, [c.label for c in spec.columns],
                         cells, [(r.method, r.variant) for r in spec.rows])
    result.mark_best()
    return result


def _metric_order(metrics: Iterable[str]) -> list[str]:
    first = [m for m in ("acc", "tta_acc") if m in metrics]
    return first + sorted(m for m in metrics if m not in first)


def auto_tables(frame: pd.DataFrame, benchmark: str | None = None) -> list[TableResult]:
    """One methods x metrics table per benchmark (all benchmarks in the frame, or one)."""
    benchmarks = sorted(frame["benchmark"].dropna().unique()) if not frame.empty else []
    if benchmark is not None:
        if benchmark not in benchmarks:
            raise ConfigError(f"no runs of benchmark {benchmark!r}; found: {', '.join(benchmarks) or '(none)'}")
        benchmarks = [benchmark]
    done = finished_runs(frame)
    skip = set(BOOKKEEPING) | set(NON_METRICS)
    out = []
    for bench in benchmarks:
        b_all = frame[frame["benchmark"] == bench]
        b_done = done[done["benchmark"] == bench]
        metrics = [c for c in b_done.columns if c not in skip and not c.startswith(("hp.", "set."))
                   and b_done[c].notna().any() and pd.api.types.is_numeric_dtype(b_done[c])]
        metrics = _metric_order(metrics)
        pairs = sorted({(m, v if isinstance(v, str) else "") for m, v in zip(b_all["method"], b_all["variant"])},
                       key=lambda p: (p[0] != "none", p))
        cells = [[summarise(select(b_done, bench, m, v, {}), select(b_all, bench, m, v, {}), metric)
                  for metric in metrics] for m, v in pairs]
        labels = [f"{m} ({v})" if v else m for m, v in pairs]
        res = TableResult(f"auto-{bench}", f"All methods on {bench}", bench, labels, [{} for _ in pairs], (),
                          [f"{m} (%)" if is_percent(m) else m for m in metrics], cells, list(pairs), has_paper=False)
        res.mark_best()
        out.append(res)
    return out


def build_tables(frame: pd.DataFrame, table: str, benchmark: str | None = None) -> list[TableResult]:
    """`table` is a paper table id ("1".."5", "E1"), "auto" (per benchmark) or "all" (every paper table)."""
    if table == "auto":
        return auto_tables(frame, benchmark)
    if table == "all":
        return [paper_table(frame, t) for t in TABLES]
    return [paper_table(frame, table)]
