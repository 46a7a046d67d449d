"""The numbers of a table: cells aggregated over seeds, for the paper's layouts and a generic one.

A cell aggregates the finished runs that match it: mean, sample std (ddof 1), n and the 95%
Student-t confidence interval of the mean over seeds, clipped to the metric's range
(`augbench.results.stats`), in display units (percent for fraction metrics), and keeps each
seed's value for paired comparisons. When several configurations match a cell,
`augbench.results.selection.choose_config` picks one by validation and the cell names it (and
whether validation tied). Missing cells stay in the table with their reason (failed, running,
partial, missing; "not reported" when finished runs exist but lack the metric), so a rendering
can show them rather than hide them.

Best in a column and the comparisons with the table's references (`none` and the family's
global augmentation) are paired by seed (`augbench.results.compare`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from augbench.errors import ConfigError
from augbench.results import compare
from augbench.results.paper import TABLES, TableSpec, get_table, paper_value
from augbench.results.schema import PROVENANCE_COLUMNS
from augbench.results.selection import Choice, choose_config, finished_runs, select
from augbench.results.stats import Paired, t_interval
from augbench.results.units import direction, is_percent, metric_kind, metric_range
from augbench.rundir import RunState

BOOKKEEPING = ("best_epoch", "steps", "time", "step", "epoch", "lr")  # numbers in records that are not results
UNFINISHED = (RunState.RUNNING, RunState.STALLED)  # started runs without a result
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
    half: float = float("nan")  # half-width of the 95% t-interval before clipping (NaN below two seeds)
    lo: float = float("nan")  # the interval, clipped to the metric's range (the mean below two seeds)
    hi: float = float("nan")
    clipped: bool = False  # the t-interval left the metric's range and was cut at its bound
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
    tied: bool = False  # best, but a paired comparison does not separate it from another best cell
    values: list[float] = field(default_factory=list)  # per-seed values behind mean/std (for plots)
    seeds: list[int] = field(default_factory=list)  # the seed of each value
    vs: dict[str, Paired] = field(default_factory=dict)  # paired comparison with each reference row, by its label

    @property
    def diff(self) -> float:
        return self.mean - self.paper_mean if self.status == "ok" else float("nan")

    @property
    def low(self) -> float:
        return self.lo if self.n > 1 else self.mean

    @property
    def high(self) -> float:
        return self.hi if self.n > 1 else self.mean

    def by_seed(self) -> dict[int, float]:
        """The cell's value per seed (the pairing key of comparisons)."""
        return dict(zip(self.seeds, self.values))

    @property
    def paper_in_ci(self) -> bool | None:
        """Whether the paper's number lies inside our interval; None without either."""
        if self.status != "ok" or self.n < 2 or np.isnan(self.paper_mean) or np.isnan(self.half):
            return None
        return bool(self.low - 1e-9 <= self.paper_mean <= self.high + 1e-9)


def summarise(done: pd.DataFrame, runs_of_cell: pd.DataFrame, metric: str, choice: Choice | None = None) -> Cell:
    """Aggregate the finished runs `done` of one cell over seeds, choosing a configuration by validation
    (`choice`: the choice already made for these runs, when a row reuses it for every metric)."""
    cell = Cell(metric)
    states = runs_of_cell.drop_duplicates("run_id")["state"] if not runs_of_cell.empty else pd.Series(dtype=str)
    cell.n_failed = int((states == RunState.FAILED).sum())
    cell.n_unfinished = int(states.isin(UNFINISHED).sum())
    if not done.empty:
        choice = choice or choose_config(done)
        done, cell.selected, cell.candidates, cell.by_validation, cell.tie = choice
        if "diagnosis" in done:
            flagged = [str(d) for d in done["diagnosis"].dropna() if str(d)]
            cell.not_learned = len(flagged)
            cell.diagnoses = ",".join(sorted({f for d in flagged for f in d.split(",")}))
    values = done[metric].dropna() if metric in done else pd.Series(dtype=float)
    if values.empty:
        cell.status = (NOT_REPORTED if not done.empty else RunState.FAILED.value if cell.n_failed
                       else RunState.RUNNING.value if (states == RunState.RUNNING).any()
                       else "partial" if cell.n_unfinished else "missing")
        return cell
    seeds = done.loc[values.index, "seed"] if "seed" in done else pd.Series(range(len(values)))
    values = values.astype(float) * (100.0 if is_percent(metric) else 1.0)
    cell.values = [float(v) for v in values]
    cell.seeds = [int(s) for s in seeds]
    iv = t_interval(cell.values, metric_range(metric))
    cell.n, cell.mean, cell.std, cell.half, cell.lo, cell.hi, cell.clipped = (iv.n, iv.mean, iv.std, iv.half, iv.low,
                                                                              iv.high, iv.clipped)
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
    provenance: list[str] = field(default_factory=list)  # what made the numbers (`provenance_lines`)

    def mark_best(self) -> None:
        """Mark each column's best cells and compare every row with the references, paired by seed
        (`augbench.results.compare`: the leader wins alone only when paired comparisons separate it)."""
        refs = compare.references(self.rows_meta) if self.rows_meta else []
        for j in range(len(self.column_labels)):
            column = [row[j] for row in self.cells]
            compare.mark_best(column)
            for _, r in refs:
                ref = column[r]
                if ref.status != "ok" or direction(ref.metric) == 0:
                    continue
                for i, cell in enumerate(column):
                    if i != r and cell.status == "ok":
                        cell.vs[self.row_labels[r]] = compare.compare(cell, ref)

    def references(self) -> list[tuple[str, str]]:
        """(role, row label) of the rows the others are compared with: "none", then "global"."""
        return [(role, self.row_labels[r]) for role, r in compare.references(self.rows_meta)] if self.rows_meta else []

    def mixes_metrics(self, j: int) -> bool:
        """Whether column `j` holds cells of different kinds (plain and TTA accuracy)."""
        return len({metric_kind(line[j].metric) for line in self.cells}) > 1


PROVENANCE_KEYS = ("git_commit", "git_dirty", "fingerprint", "device_name", "cpu_capability", "torch_version")


def provenance_lines(done: pd.DataFrame) -> list[str]:
    """One line per distinct environment of the finished runs `done`: commit (and whether the package
    source was dirty), fingerprint, device, torch, and how many runs it made."""
    if done.empty:
        return []
    runs = done.drop_duplicates("run_id").reindex(columns=["run_id", *PROVENANCE_KEYS])
    keys = runs[list(PROVENANCE_KEYS)].astype(object).where(runs[list(PROVENANCE_KEYS)].notna(), None)
    out = []
    for key, group in keys.groupby(list(PROVENANCE_KEYS), dropna=False, sort=True):
        commit, dirty, finger, device, isa, torch = (None if pd.isna(v) else v for v in key)
        state = (" (dirty)" if dirty is True else " (clean)" if dirty is False else " (dirty flag not recorded)"
                 ) if commit else ""
        parts = [f"commit {str(commit)[:12]}{state}" if commit else "no commit recorded",
                 f"fingerprint {finger}" if finger else "no fingerprint recorded",
                 " ".join(str(v) for v in (device, isa) if v) or "device not recorded", f"torch {torch or '?'}"]
        out.append(f"{', '.join(parts)}: {len(group)} run{'s' if len(group) != 1 else ''}")
    return out


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
    result.provenance = provenance_lines(done[done["benchmark"] == spec.benchmark] if not done.empty else done)
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
        cells = []
        for m, v in pairs:  # one selection and one choice of configuration per row, for all its metrics
            row_done, row_all = select(b_done, bench, m, v, {}), select(b_all, bench, m, v, {})
            choice = choose_config(row_done) if not row_done.empty else None
            cells.append([summarise(row_done, row_all, metric, choice) for metric in metrics])
        labels = [f"{m} ({v})" if v else m for m, v in pairs]
        res = TableResult(f"auto-{bench}", f"All methods on {bench}", bench, labels, [{} for _ in pairs], (),
                          [f"{m} (%)" if is_percent(m) else m for m in metrics], cells, list(pairs), has_paper=False,
                          provenance=provenance_lines(b_done))
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
