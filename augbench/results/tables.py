"""Tables from a collected frame: the paper's layouts and a generic one per benchmark.

A cell aggregates the finished runs that match it: mean ± sample std (ddof 1) over seeds with
n. When several configurations match a cell (a sweep, or runs with other hyperparameters in the
same folder), the one with the best mean VALIDATION accuracy is reported and named in the
note, as the paper selects its random-crop scale (Section 5.2, Appendix E.3); the test split is
never used to choose. A run's validation accuracy is that of its selected epoch (`best_epoch` of
its test record), else its best validation epoch.

Our metrics are fractions, the paper's percentages: fraction metrics (accuracies, coverage,
violation) are reported in percent everywhere. Missing cells are shown, not hidden: "—" (and
why: failed, running, partial) in Markdown, "---" in LaTeX, `status` in CSV.

Three renderings of one `TableResult`: CSV (long: one line per cell, every number), Markdown and
LaTeX (booktabs, escaped, never truncated) in the paper's wide layout with the paper's number and
the difference beside ours.
"""

from __future__ import annotations

import fnmatch
import io
import json
import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from augbench.errors import ConfigError
from augbench.results.paper import TableSpec, get_table, paper_value

FORMATS = ("csv", "md", "latex")
PERCENT_METRICS = ("*acc*", "coverage", "violation", "*keeps*", "*frac*")
HIGHER_IS_BETTER = ("*acc*", "coverage", "*keeps*")
LOWER_IS_BETTER = ("*loss*", "violation", "*error*")
BOOKKEEPING = ("best_epoch", "steps", "time", "step", "epoch", "lr")
DASH = {"md": "—", "latex": "---"}
VAL_SCORE = (("acc", 1.0), ("score", 1.0), ("loss", -1.0))  # validation criterion, as the trainer's


def _matches(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatch(name, p) for p in patterns)


def is_percent(metric: str) -> bool:
    """Fraction metrics shown in percent (the paper's unit)."""
    return _matches(metric.split("/")[-1], PERCENT_METRICS)


def direction(metric: str) -> int:
    """+1 if higher is better, -1 if lower is better, 0 if neither is known (no best marked)."""
    leaf = metric.split("/")[-1]
    if _matches(leaf, LOWER_IS_BETTER):
        return -1
    return 1 if _matches(leaf, HIGHER_IS_BETTER) else 0


# ---------------------------------------------------------------------------------------------- runs
def finished_runs(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per finished run: its test record plus `val_acc`, the validation score it is selected by.

    The score is the trainer's best-epoch criterion (validation `acc`, else `score`, else -`loss`)
    at the run's reported epoch (`best_epoch`), else its best over epochs.
    """
    if frame.empty or "split" not in frame:
        return frame.iloc[0:0].assign(val_acc=pd.Series(dtype=float))
    test = frame[(frame["split"] == "test") & (frame["state"] == "done")].drop_duplicates("run_id", keep="last")
    test = test.reset_index(drop=True)
    val = frame[frame["split"] == "val"]
    score = pd.Series(np.nan, index=val.index)
    for col, sign in VAL_SCORE:  # the trainer's best-epoch criterion: acc, else score, else -loss
        if col in val:
            score = score.fillna(sign * pd.to_numeric(val[col]).astype(float))
    if score.isna().all():
        return test.assign(val_acc=np.nan)
    val = pd.DataFrame({"run_id": val["run_id"], "epoch": pd.to_numeric(val["epoch"]).astype(float),
                        "val_acc": score}).dropna(subset=["val_acc"])
    best = val.groupby("run_id")["val_acc"].max()
    epoch = pd.to_numeric(test["best_epoch"]).astype(float) if "best_epoch" in test else np.nan
    at = pd.DataFrame({"run_id": test["run_id"], "epoch": epoch}).merge(
        val.drop_duplicates(["run_id", "epoch"], keep="last"), on=["run_id", "epoch"], how="left")
    return test.assign(val_acc=at["val_acc"].fillna(test["run_id"].map(best)).to_numpy())


def _same(value: Any, wanted: Any) -> bool:
    if isinstance(wanted, (int, float)) and not isinstance(wanted, bool):
        try:
            return bool(np.isclose(float(value), float(wanted)))
        except (TypeError, ValueError):
            return False
    return str(value) == str(wanted)


def select(df: pd.DataFrame, benchmark: str, method: str, variant: str | None,
           where: Mapping[str, Any]) -> pd.DataFrame:
    """Rows of one benchmark, method and variant whose `where` columns equal the given values."""
    if df.empty:
        return df
    mask = (df["benchmark"] == benchmark) & (df["method"] == method)
    if variant is not None:
        mask &= df["variant"].fillna("") == variant
    for col, wanted in where.items():
        if col not in df:
            return df.iloc[0:0]
        mask &= df[col].map(lambda v, w=wanted: _same(v, w))
    return df[mask]


def _config_columns(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if c.startswith(("hp.", "set."))]


def _config_keys(df: pd.DataFrame, cols: list[str]) -> pd.Series:
    if not cols:
        return pd.Series("", index=df.index)
    return df[cols].apply(lambda r: json.dumps([None if pd.isna(v) else str(v) for v in r]), axis=1)


# ---------------------------------------------------------------------------------------------- cells
@dataclass
class Cell:
    """One aggregated cell, in display units (percent for fraction metrics)."""

    metric: str
    n: int = 0
    mean: float = float("nan")
    std: float = float("nan")
    status: str = "missing"  # ok / failed / running / partial / missing
    n_failed: int = 0
    n_unfinished: int = 0
    selected: str = ""  # the chosen configuration where several matched
    candidates: int = 0
    by_validation: bool = True  # False: no validation accuracy, the choice fell back to most seeds
    paper_mean: float = float("nan")
    paper_std: float = float("nan")
    paper_n: float = float("nan")
    best: bool = False
    values: list[float] = field(default_factory=list)  # per-seed values behind mean/std (for plots)

    @property
    def diff(self) -> float:
        return self.mean - self.paper_mean if self.status == "ok" else float("nan")


def display_value(value: Any) -> str:
    """A configuration value for a note."""
    return str(value.item() if hasattr(value, "item") else value)


def choose_config(done: pd.DataFrame) -> tuple[pd.DataFrame, str, int, bool]:
    """The runs of the configuration with the best mean validation accuracy, what distinguishes it,
    the number of configurations it was chosen from, and whether validation decided.

    A configuration is everything in `hp.*` and `set.*`; ties go to more seeds, then to the
    first in sorted order, so the choice is deterministic. The test split plays no part.
    """
    cols = _config_columns(done)
    keys = _config_keys(done, cols)
    groups = {k: g for k, g in done.groupby(keys, sort=True)}
    if len(groups) <= 1:
        return done, "", len(groups), True

    def score(k: str) -> tuple[float, int]:
        v = groups[k]["val_acc"].mean()
        return (-math.inf if pd.isna(v) else float(v), len(groups[k]))

    chosen = groups[max(sorted(groups), key=score)]
    differing = [c for c in cols if done[c].astype(str).nunique(dropna=False) > 1]
    desc = ", ".join(f"{c.split('.', 1)[1]}={display_value(chosen[c].iloc[0])}" for c in differing)
    return chosen, desc, len(groups), bool(done["val_acc"].notna().any())


def summarise(done: pd.DataFrame, runs_of_cell: pd.DataFrame, metric: str) -> Cell:
    """Aggregate the finished runs `done` of one cell over seeds, choosing a configuration by validation."""
    cell = Cell(metric)
    states = runs_of_cell.drop_duplicates("run_id")["state"] if not runs_of_cell.empty else pd.Series(dtype=str)
    cell.n_failed = int((states == "failed").sum())
    cell.n_unfinished = int(states.isin(["running", "partial"]).sum())
    if not done.empty:
        done, cell.selected, cell.candidates, cell.by_validation = choose_config(done)
    values = done[metric].dropna() if metric in done else pd.Series(dtype=float)
    if values.empty:
        cell.status = ("failed" if cell.n_failed else "running" if (states == "running").any()
                       else "partial" if cell.n_unfinished else "missing")
        return cell
    values = values.astype(float) * (100.0 if is_percent(metric) else 1.0)
    cell.values = [float(v) for v in values]
    cell.n = int(values.size)
    cell.mean = float(values.mean())
    cell.std = float(values.std(ddof=1)) if cell.n > 1 else float("nan")
    cell.status = "ok"
    return cell


# ---------------------------------------------------------------------------------------------- tables
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
        """Mark the best of our numbers in each column (by the metric's direction)."""
        for j in range(len(self.column_labels)):
            col = [row[j] for row in self.cells if row[j].status == "ok"]
            if len(col) < 2:  # a lone number is not "best" of anything
                continue
            sign = direction(col[0].metric)
            if sign == 0:
                continue
            target = max(sign * c.mean for c in col)
            for c in col:
                c.best = bool(np.isclose(sign * c.mean, target, rtol=0, atol=1e-9))


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
    skip = set(BOOKKEEPING) | {"val_acc"}
    out = []
    for bench in benchmarks:
        b_all = frame[frame["benchmark"] == bench]
        b_done = done[done["benchmark"] == bench]
        non_metric = {c for c in frame.columns if c.startswith(("hp.", "set."))} | set(
            ["benchmark", "method", "variant", "seed", "run_id", "state", "reason", "split", "step", "epoch",
             "time", "run_dir"])
        metrics = [c for c in b_done.columns if c not in non_metric and c not in skip
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


# ---------------------------------------------------------------------------------------------- rendering
_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def latex_escape(text: str) -> str:
    """Escape LaTeX's special characters in plain text."""
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))


def _num(x: float) -> str:
    return f"{x:.2f}"


def _ours(cell: Cell, fmt: str) -> str:
    if cell.status != "ok":
        why = "" if cell.status == "missing" else f" ({cell.status})"
        return DASH[fmt] + why
    pm = {"md": " ± ", "latex": r" $\pm$ "}[fmt]
    body = _num(cell.mean) + (pm + _num(cell.std) if cell.n > 1 else "")
    if cell.best:
        body = f"**{body}**" if fmt == "md" else rf"\textbf{{{body}}}"
    return f"{body} (n={cell.n})"


def _paper(cell: Cell, fmt: str) -> str:
    if math.isnan(cell.paper_mean):
        return DASH[fmt]
    pm = {"md": " ± ", "latex": r" $\pm$ "}[fmt]
    return _num(cell.paper_mean) + ("" if math.isnan(cell.paper_std) else pm + _num(cell.paper_std))


def _diff(cell: Cell, fmt: str) -> str:
    d = cell.diff
    if math.isnan(d):
        return DASH[fmt]
    return f"{d:+.2f}" if fmt == "md" else f"${d:+.2f}$"


def _notes(result: TableResult) -> list[str]:
    """Per row: which configuration was chosen (once if the same in every column) and left-out failures."""
    out = []
    for line in result.cells:
        chosen = [(label, f"{c.selected} (" + (f"best of {c.candidates} by validation" if c.by_validation else
                                               f"of {c.candidates}: no validation accuracy, most seeds") + ")")
                  for label, c in zip(result.column_labels, line) if c.selected]
        if len({text for _, text in chosen}) == 1:
            parts = [chosen[0][1]]
        else:
            parts = [f"{label}: {text}" for label, text in chosen]
        failed = max((c.n_failed for c in line if c.status == "ok"), default=0)
        if failed:
            parts.append(f"{failed} failed run(s) left out")
        out.append("; ".join(parts))
    return out


def wide(result: TableResult, fmt: str) -> pd.DataFrame:
    """The display layout as strings: Method, extra columns, then (ours, paper, Δ) per column group."""
    esc = latex_escape if fmt == "latex" else (lambda s: str(s).replace("|", "\\|"))
    data: dict[Any, list[str]] = {}
    multi = result.has_paper
    key = (lambda a, b: (a, b)) if multi else (lambda a, b: a)
    data[key("Method", "")] = [esc(s) for s in result.row_labels]
    for name in result.extra_columns:
        data[key(esc(name), "")] = [esc(e.get(name, "")) for e in result.row_extras]
    delta = {"md": "Δ", "latex": r"$\Delta$"}[fmt]
    for j, label in enumerate(result.column_labels):
        col = [line[j] for line in result.cells]
        data[key(esc(label), "ours")] = [_ours(c, fmt) for c in col]
        if result.has_paper:
            data[key(esc(label), "paper")] = [_paper(c, fmt) for c in col]
            data[key(esc(label), delta)] = [_diff(c, fmt) for c in col]
    notes = _notes(result)
    if any(notes):
        data[key("Note", "")] = [esc(n) for n in notes]
    df = pd.DataFrame(data)
    if multi:
        df.columns = pd.MultiIndex.from_tuples(list(data))
    return df


def to_markdown(result: TableResult) -> str:
    """GitHub Markdown: a title line, then the table (best of ours in bold)."""
    df = wide(result, "md")
    header = [" ".join(p for p in c if p) if isinstance(c, tuple) else c for c in df.columns]
    lines = [f"**Table {result.id}.** {result.title}", "", "| " + " | ".join(header) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in df.itertuples(index=False, name=None)]
    return "\n".join(lines) + "\n"


def to_latex(result: TableResult) -> str:
    """A booktabs table environment; every cell escaped, nothing truncated (Styler writes cells whole)."""
    df = wide(result, "latex")
    n_text = 1 + len(result.extra_columns)
    has_note = any(_notes(result))
    colfmt = "l" * n_text + "r" * (df.shape[1] - n_text - has_note) + "l" * has_note
    caption = latex_escape(result.title) + (r". Ours: mean $\pm$ std over seeds (n)" + (
        r"; paper: its reported value; $\Delta$: ours $-$ paper, in points." if result.has_paper else "."))
    label = "tab:augbench-" + result.id.replace(".", "").lower()
    return df.style.hide(axis="index").to_latex(column_format=colfmt, hrules=True, multicol_align="c",
                                                position_float="centering", caption=caption, label=label)


def to_csv(result: TableResult) -> str:
    """Long format: one line per cell with every number (percent for fraction metrics)."""
    rows = []
    for i, (label, extras, line) in enumerate(zip(result.row_labels, result.row_extras, result.cells)):
        method, variant = result.rows_meta[i] if result.rows_meta else ("", "")
        for col_label, c in zip(result.column_labels, line):
            rows.append({"table": result.id, "benchmark": result.benchmark, "row_index": i, "row": label,
                         **{f"{k}": extras.get(k, "") for k in result.extra_columns},
                         "column": col_label, "method": method, "variant": variant, "metric": c.metric,
                         "unit": "percent" if is_percent(c.metric) else "value", "status": c.status, "n": c.n,
                         "mean": c.mean, "std": c.std, "best": c.best, "paper_mean": c.paper_mean,
                         "paper_std": c.paper_std, "paper_n": c.paper_n, "diff": c.diff, "n_failed": c.n_failed,
                         "n_unfinished": c.n_unfinished, "selected": c.selected, "candidates": c.candidates})
    df = pd.DataFrame(rows)
    if not df.empty:
        df["paper_n"] = df["paper_n"].astype("Int64")
    buf = io.StringIO()
    df.to_csv(buf, index=False, float_format="%.4f", lineterminator="\n")
    return buf.getvalue()


RENDERERS = {"csv": to_csv, "md": to_markdown, "latex": to_latex}
SUFFIX = {"csv": "csv", "md": "md", "latex": "tex"}


def render(result: TableResult, fmt: str) -> str:
    """The table in one of FORMATS."""
    if fmt not in RENDERERS:
        raise ConfigError(f"unknown table format {fmt!r}; valid: {', '.join(FORMATS)}")
    return RENDERERS[fmt](result)


def build_tables(frame: pd.DataFrame, table: str, benchmark: str | None = None) -> list[TableResult]:
    """`table` is a paper table id ("1".."5", "E1"), "auto" (per benchmark) or "all" (every paper table)."""
    if table == "auto":
        return auto_tables(frame, benchmark)
    if table == "all":
        from augbench.results.paper import TABLES

        return [paper_table(frame, t) for t in TABLES]
    return [paper_table(frame, table)]


__all__ = ["Cell", "FORMATS", "TableResult", "auto_tables", "build_tables",
           "direction", "finished_runs", "is_percent", "latex_escape", "paper_table", "render", "select",
           "summarise", "to_csv", "to_latex", "to_markdown", "wide"]
