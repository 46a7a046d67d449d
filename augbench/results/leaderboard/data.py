"""What the leaderboard pages show, as plain data built from a collected frame (no HTML here).

Per benchmark: the generic table's cells (`augbench.results.cells.auto_tables`: one row per
method and variant, a configuration chosen by validation, 95% t-intervals clipped to the
metric's range, best and ties by paired comparisons), each method's paired comparison with
`none` and the family's global augmentation on the headline metric, every paired comparison,
the paper's number where a paper table has that row, the cost of a run (device-hours from the
trainer's wall time) and training throughput and peak memory where `augbench bench` measured
them (else why not). Per method: its configurations, hyperparameters, every run, and the
environments (provenance) that made them.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from augbench.catalog_file import benchmark_entry
from augbench.numformat import format_number
from augbench.results.cells import Cell, TableResult, auto_tables, paper_table
from augbench.results.collect import derive_variant, family_of
from augbench.results.paper import TABLES, paper_value
from augbench.results.selection import TIE_RULE, TIE_TOLERANCE, choose_config, display_value, finished_runs, select
from augbench.results.stats import Paired
from augbench.results.tables import comparisons, seeds_text, verdict
from augbench.results.units import is_percent, metric_kind
from augbench.safeload import loads_json

HEADLINE = ("tta_acc", "acc")  # the index page's leaders: TTA accuracy where reported, else accuracy
#: What a run's environment is, in the order pages list it: (label, collected column).
PROVENANCE = (("fingerprint", "fingerprint"), ("commit", "git_commit"), ("source dirty", "git_dirty"),
              ("source SHA-256", "source_sha256"), ("augbench", "augbench_version"), ("python", "python_version"),
              ("torch", "torch_version"), ("torchvision", "torchvision_version"), ("numpy", "numpy_version"),
              ("device", "device"), ("device model", "device_name"), ("instruction set", "cpu_capability"),
              ("BLAS", "blas"), ("LAPACK", "lapack"), ("MKL", "mkl_version"), ("oneDNN", "onednn_version"),
              ("CUDA", "cuda_version"), ("cuDNN", "cudnn_version"), ("deterministic algorithms", "deterministic"),
              ("threads", "threads"), ("platform", "platform"), ("identity version", "identity_version"))
GPU_ONLY = ("cudnn_version",)  # empty on a CPU run by nature, not "not recorded"
METRICS_PER_TABLE = 6  # metric columns per table of the other metrics: pages read at 1400 px without scrolling


def slug(text: str) -> str:
    """A file-name-safe form of a name (letters, digits, '.', '_', '-')."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "_"


def method_slug(method: str, variant: str) -> str:
    return slug(f"{method}--{variant}" if variant else method)


def text(value: Any) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    return display_value(value)


@dataclass
class MetricCell:
    """One metric of one method, ready to print."""

    metric: str
    status: str
    mean: str = ""
    ci: str = ""  # "[low, high]"
    half: str = ""
    std: str = ""
    n: int = 0
    best: bool = False
    tied: bool = False
    sort: str = ""  # the number a sortable column orders by ("" sorts last)
    clipped: bool = False  # the interval was cut at the metric's range

    @classmethod
    def of(cls, cell: Cell) -> MetricCell:
        if cell.status != "ok":
            return cls(cell.metric, cell.status)
        ci = f"[{format_number(cell.low)}, {format_number(cell.high)}]" if cell.n > 1 else ""
        return cls(cell.metric, "ok", format_number(cell.mean), ci, format_number(cell.half), format_number(cell.std),
                   cell.n, cell.best, cell.tied, repr(round(cell.mean, 6)), cell.clipped)


@dataclass
class PairedCell:
    """A method against one reference on the headline metric, paired by seed, ready to print."""

    reference: str
    diff: str = ""  # "+5.30 [+1.20, +9.40]"
    p_better: str = ""  # "1.00 [1.00, 1.00]"
    verdict: str = ""
    seeds: str = ""  # seeds for 80% power
    n: int = 0
    sort: str = ""
    why: str = ""  # why there is no comparison (the reference itself, a missing cell)

    @classmethod
    def of(cls, reference: str, p: Paired | None, why: str = "") -> PairedCell:
        if p is None:
            return cls(reference, why=why)
        ci = f" [{format_number(p.low, '+.2f')}, {format_number(p.high, '+.2f')}]" if p.n >= 2 else ""
        return cls(reference, format_number(p.diff, "+.2f") + ci,
                   f"{format_number(p.p_better)} [{format_number(p.p_low)}, {format_number(p.p_high)}]", verdict(p),
                   seeds_text(p), p.n, repr(round(p.diff, 6)))


@dataclass
class Cost:
    """Mean device-hours per run, throughput and peak memory (empty where not measured)."""

    hours: str = ""
    unit: str = ""  # GPU-h or CPU-h (CPU-hours: wall hours x torch threads)
    hours_sort: str = ""
    img_s: str = ""
    img_s_sort: str = ""
    memory: str = ""
    memory_sort: str = ""
    measured_on: str = ""
    not_measured: str = "not measured"  # what the throughput and memory cells say when empty


@dataclass
class RunRow:
    """One run with its provenance."""

    run_id: str
    seed: str
    state: str
    reason: str
    config: str
    chosen: bool
    val: str
    result: str
    best_epoch: str
    wall: str
    environment: int  # its environment's number on the method page (1-based)
    grid: str
    run_dir: str


@dataclass
class ConfigRow:
    config: str
    runs: int
    val: str
    chosen: bool
    tie: bool


@dataclass
class MethodPage:
    benchmark: str
    method: str
    variant: str
    label: str
    slug: str
    metrics: list[MetricCell]
    paper: list[tuple[str, str]]  # (where, number)
    note: str
    hparams: list[tuple[str, str]]
    settings: list[tuple[str, str]]
    configs: list[ConfigRow]
    runs: list[RunRow]
    cost: Cost
    counts: str
    curves: str = ""  # image file, relative to the benchmark folder
    paired: list[PairedCell] = field(default_factory=list)  # against each reference, on the headline metric
    environments: list[list[tuple[str, str]]] = field(default_factory=list)  # (label, value) per environment


@dataclass
class PaperCell:
    ours: str
    paper: str
    diff: str
    inside: str  # "in CI" / "outside CI" / ""
    best: bool
    tied: bool
    kind: str


@dataclass
class PaperTable:
    id: str
    title: str
    columns: list[str]
    extra_columns: list[str]
    rows: list[tuple[str, list[str], list[PaperCell]]]
    protocol: str = ""  # how augbench's protocol differs from the paper's, where the spec says


@dataclass
class BenchmarkPage:
    name: str
    description: str
    paper: str
    metrics: list[str]  # column labels
    methods: list[MethodPage]
    paper_tables: list[PaperTable] = field(default_factory=list)
    figures: list[tuple[str, str]] = field(default_factory=list)  # (title, file)
    leaders: list[tuple[str, str, list[str], bool]] = field(default_factory=list)  # (metric, value, labels, tied)
    n_runs: int = 0
    n_done: int = 0
    headline: str = ""  # the label of the metric the run lists show (TTA accuracy, else accuracy)
    lead: list[int] = field(default_factory=list)  # metric columns shown first (accuracies), by index
    rest: list[list[int]] = field(default_factory=list)  # the other metrics, in tables of METRICS_PER_TABLE
    references: list[str] = field(default_factory=list)  # the rows methods are compared with
    comparisons: list[dict[str, str]] = field(default_factory=list)  # every paired comparison (tables.comparisons)
    bench_note: str = ""  # where throughput and memory come from, or why they are missing
    made_by: list[str] = field(default_factory=list)  # the environments of its runs (cells.provenance_lines)


# --------------------------------------------------------------------------------- bench measurements
def read_bench(files: Sequence[Path | str]) -> dict[tuple[str, str, str], dict[str, Any]]:
    """`augbench bench` result CSVs, keyed by (benchmark, method, variant): the first value of each
    measure over the files in order (one file measures augmentation, another the training step)."""
    out: dict[tuple[str, str, str], dict[str, Any]] = {}
    for f in files:
        df = pd.read_csv(f)
        for r in df.to_dict("records"):
            if r.get("status", "ok") != "ok" or not isinstance(r.get("benchmark"), str):
                continue
            try:
                hp = loads_json(r.get("hparams") or "{}")
            except (TypeError, ValueError):
                hp = {}
            family = family_of(r["benchmark"])  # bench rows record no variant: the legacy rules name it
            key = (r["benchmark"], r["method"], derive_variant(r["method"], hp, family))
            entry = out.setdefault(key, {})
            for k, v in r.items():
                if k not in entry and not (isinstance(v, float) and math.isnan(v)):
                    entry[k] = v
    return out


def _describe(benchmark: str) -> tuple[str, str]:
    """A built-in benchmark's description and paper, from the committed catalog (no registry)."""
    entry = benchmark_entry(benchmark)
    if not entry:
        return "", ""
    return f"{entry.get('description')} ({entry.get('family')} family, {entry.get('task')} task)", \
        str(entry.get("paper") or "")


def _cost(runs: pd.DataFrame, bench: Mapping[str, Any] | None) -> Cost:
    cost = Cost()
    if "wall_time" in runs:
        rows = runs[runs["wall_time"].notna()]
        if not rows.empty:
            gpu = rows["device"].fillna("cpu").astype(str).str.startswith("cuda")
            threads = pd.to_numeric(rows["threads"], errors="coerce").fillna(1).astype(float)
            hours = rows["wall_time"].astype(float) / 3600.0 * (1.0 if gpu.all() else threads)
            if gpu.all() or not gpu.any():
                cost.unit = "GPU-h" if gpu.all() else "CPU-h"
                mean = float(hours.mean())
                cost.hours, cost.hours_sort = format_number(mean, ".3g"), repr(round(mean, 9))
            else:
                cost.hours, cost.unit = "mixed devices", ""
    if bench:
        if bench.get("step_ms") and bench.get("batch_size"):
            rate = float(bench["batch_size"]) * 1000.0 / float(bench["step_ms"])
            cost.img_s, cost.img_s_sort = f"{rate:,.0f}", repr(round(rate, 3))
        mem = bench.get("step_mem_mb", bench.get("augment_mem_mb"))
        if mem is not None:
            cost.memory, cost.memory_sort = f"{float(mem):,.0f} MB", repr(round(float(mem), 3))
        cost.measured_on = " ".join(str(bench.get(k, "")) for k in ("device", "device_name")).strip()
    return cost


def _paper_numbers(benchmark: str, method: str, variant: str) -> list[tuple[str, str]]:
    """The paper's numbers for this row in tables without extra filters: (table and metric, value)."""
    out = []
    for spec in TABLES.values():
        if spec.benchmark != benchmark:
            continue
        for row in spec.rows:
            if row.method != method or row.variant != variant or row.where:
                continue
            for col in spec.columns:
                if col.where:
                    continue
                value = paper_value(spec.paper_key(row, col))
                if value is None:
                    continue
                mean, std, _ = value
                text = format_number(mean) + ("" if math.isnan(std) else f" ± {format_number(std)}")
                out.append((f"Table {spec.id}, {spec.metric(row, col)}", text))
    return out


def _differing(df: pd.DataFrame) -> list[str]:
    cols = [c for c in df.columns if c.startswith(("hp.", "set."))]
    return [c for c in cols if df[c].astype(str).nunique(dropna=False) > 1]


def _config_text(row: Mapping[str, Any], cols: Iterable[str]) -> str:
    return ", ".join(f"{c.split('.', 1)[1]}={text(row[c])}" for c in cols)


def environments(runs: pd.DataFrame) -> tuple[list[list[tuple[str, str]]], list[int]]:
    """The distinct environments (`PROVENANCE` values) of `runs` (one row per run), and each run's number."""
    keys = [tuple("none (CPU run)" if col in GPU_ONLY and r.get("device") == "cpu" else text(r.get(col))
                  for _, col in PROVENANCE) for r in runs.to_dict("records")]
    distinct = sorted(set(keys))
    return ([[(label, v) for (label, _), v in zip(PROVENANCE, key)] for key in distinct],
            [distinct.index(k) + 1 for k in keys])


def _run_rows(all_runs: pd.DataFrame, done: pd.DataFrame, chosen: set[str], metric: str) -> list[RunRow]:
    runs = all_runs.drop_duplicates("run_id", keep="last").sort_values(["seed", "run_id"], na_position="last")
    _, env_of = environments(runs)
    cols = _differing(runs)
    test = done.set_index("run_id") if not done.empty else pd.DataFrame()
    out = []
    for r, env in zip(runs.to_dict("records"), env_of):
        t = test.loc[r["run_id"]] if r["run_id"] in test.index else None
        value = t[metric] if t is not None and metric in t and not pd.isna(t[metric]) else None
        val = t["val_acc"] if t is not None and "val_acc" in t and not pd.isna(t["val_acc"]) else None
        scale = 100.0 if is_percent(metric) else 1.0
        best_epoch = t["best_epoch"] if t is not None and "best_epoch" in t and not pd.isna(t["best_epoch"]) else None
        grid = text(r.get("grid"))
        if grid and text(r.get("grid_sha256")):
            grid += f" sha256:{text(r.get('grid_sha256'))[:12]}"
        wall = r.get("wall_time")
        wall_text = "" if wall is None or pd.isna(wall) else f"{float(wall):.0f} s"
        if wall_text and r.get("wall_time_source") == "records":
            wall_text += " (from records)"
        out.append(RunRow(
            run_id=str(r["run_id"]), seed=text(r.get("seed")), state=text(r.get("state")),
            reason=text(r.get("reason")), config=_config_text(r, cols), chosen=r["run_id"] in chosen,
            val=format_number(float(val), ".4f") if val is not None else "",
            result=format_number(float(value) * scale) if value is not None else "",
            best_epoch=text(best_epoch), wall=wall_text, environment=env, grid=grid, run_dir=text(r.get("run_dir"))))
    return out


def _configs(done: pd.DataFrame, chosen: set[str], tie: bool) -> list[ConfigRow]:
    """Every configuration a method's cell was chosen from, with its mean validation score."""
    cols = _differing(done)
    if not cols:
        return []
    groups = list(done.groupby(done[cols].astype(str).apply(lambda r: json.dumps(list(r)), axis=1), sort=True))
    means = [g["val_acc"].mean() for _, g in groups]
    top = max((float(v) for v in means if not pd.isna(v)), default=math.nan)
    out = []
    for (_, g), val in zip(groups, means):
        at_top = not pd.isna(val) and abs(float(val) - top) <= TIE_TOLERANCE
        shown = "" if pd.isna(val) else format_number(float(val), ".4f")
        out.append(ConfigRow(_config_text(g.iloc[0], cols), len(g), shown, bool(set(g["run_id"]) & chosen),
                             tie and at_top))
    return out


def _values(df: pd.DataFrame, prefix: str) -> list[tuple[str, str]]:
    cols = sorted(c for c in df.columns if c.startswith(prefix) and df[c].notna().any())
    if df.empty:
        return []
    first = df.iloc[0]
    return [(c[len(prefix):], text(first[c])) for c in cols]


def _note(cells: Sequence[Cell]) -> str:
    c = next((c for c in cells if c.selected), None)
    if c is None:
        return ""
    if c.tie:
        return (f"{c.selected}: validation tie of {c.tie} of {c.candidates} configurations, broken by "
                f"{TIE_RULE}")
    how = "best of {n} by validation" if c.by_validation else "of {n}: no validation accuracy, most seeds"
    return f"{c.selected} ({how.format(n=c.candidates)})"


def _paper_tables(frame: pd.DataFrame, benchmark: str) -> list[PaperTable]:
    out = []
    for spec in TABLES.values():
        if spec.benchmark != benchmark:
            continue
        res = paper_table(frame, spec.id)
        if not any(c.status == "ok" for line in res.cells for c in line):
            continue
        out.append(_paper_table(res, str(getattr(spec, "protocol", "") or "")))
    return out


def _paper_table(res: TableResult, protocol: str = "") -> PaperTable:
    rows = []
    for label, extras, line in zip(res.row_labels, res.row_extras, res.cells):
        cells = []
        for j, c in enumerate(line):
            ours = MetricCell.of(c)
            text = (f"{ours.mean} {ours.ci}" if ours.ci else ours.mean) if c.status == "ok" else \
                ("not reported" if c.status == "not-reported" else "—" + ("" if c.status == "missing"
                                                                             else f" ({c.status})"))
            paper = "" if math.isnan(c.paper_mean) else format_number(c.paper_mean) + (
                "" if math.isnan(c.paper_std) else f" ± {format_number(c.paper_std)}")
            inside = {True: "in CI", False: "outside CI", None: ""}[c.paper_in_ci]
            kind = metric_kind(c.metric) if res.mixes_metrics(j) and c.status == "ok" else ""
            cells.append(PaperCell(text + (f" (n={c.n})" if c.status == "ok" else ""), paper,
                                   format_number(c.diff, "+.2f"), inside, c.best, c.tied, kind))
        rows.append((label, [extras.get(k, "") for k in res.extra_columns], cells))
    return PaperTable(res.id, res.title, list(res.column_labels), list(res.extra_columns), rows, protocol)


def bench_note(benchmark: str, measured: Mapping[tuple[str, str, str], Any], given: bool) -> str:
    """Where a benchmark's throughput and memory come from, or why its cells say "not measured"."""
    if not given:
        return ("Train images/s and peak memory come from `augbench bench` CSVs passed with --bench; none were "
                "passed, so they are not measured")
    here = sorted({m for b, m, _ in measured if b == benchmark})
    if here:
        return (f"Train images/s and peak memory: `augbench bench` CSVs passed with --bench ({len(here)} method(s) "
                "measured here; \"not measured\": no row for that method)")
    others = sorted({b for b, _, _ in measured})
    return (f"Train images/s and peak memory: the `augbench bench` CSVs passed with --bench measured "
            f"{', '.join(others) or 'nothing'}, not {benchmark}: `augbench bench --benchmark {benchmark}` measures it "
            "(pass its CSV with --bench)")


def benchmark_pages(frame: pd.DataFrame, bench_measurements: Mapping[tuple[str, str, str], Mapping[str, Any]]
                    | None = None, tables: Sequence[TableResult] | None = None) -> list[BenchmarkPage]:
    """Every benchmark of the frame with its methods, sorted by name (methods as in the generic table;
    `tables`: the frame's `auto_tables`, when the caller has them). `bench_measurements` None: no
    `augbench bench` results were given (the pages say so)."""
    if frame.empty:
        return []
    given = bench_measurements is not None
    bench_measurements = bench_measurements or {}
    done_all = finished_runs(frame)
    pages = []
    for res in (auto_tables(frame) if tables is None else tables):
        bench = res.benchmark
        b_frame = frame[frame["benchmark"] == bench]
        b_done = done_all[done_all["benchmark"] == bench]
        metrics = [line.metric for line in res.cells[0]] if res.cells else []
        headline = next((m for m in HEADLINE if m in metrics), metrics[0] if metrics else "")
        methods = []
        j_head = metrics.index(headline) if headline else -1
        refs = res.references()
        for (method, variant), label, line in zip(res.rows_meta, res.row_labels, res.cells):
            m_all = select(b_frame, bench, method, variant, {})
            m_done = select(b_done, bench, method, variant, {})
            choice = choose_config(m_done) if not m_done.empty else None
            chosen = set(choice.runs["run_id"]) if choice is not None else set()
            states = m_all.drop_duplicates("run_id")["state"].value_counts()
            counts = ", ".join(f"{int(n)} {s}" for s, n in sorted(states.items()))
            runs_of_choice = m_all[m_all["run_id"].isin(chosen)].drop_duplicates("run_id")
            source = choice.runs if choice is not None else m_all
            methods.append(MethodPage(
                benchmark=bench, method=method, variant=variant, label=label, slug=method_slug(method, variant),
                metrics=[MetricCell.of(c) for c in line], paper=_paper_numbers(bench, method, variant),
                note=_note(line), hparams=_values(source, "hp."), settings=_values(source, "set."),
                configs=_configs(m_done, chosen, bool(choice.tie) if choice is not None else False),
                runs=_run_rows(m_all, m_done, chosen, headline), cost=_cost(runs_of_choice,
                                                                           bench_measurements.get((bench, method,
                                                                                                   variant))),
                counts=counts))
            cell = line[j_head] if j_head >= 0 else None
            methods[-1].paired = [PairedCell.of(ref, cell.vs.get(ref) if cell is not None else None,
                                                "the reference" if ref == label else "no result to compare")
                                  for _, ref in refs]
            methods[-1].environments = environments(m_all.drop_duplicates("run_id", keep="last").sort_values(
                ["seed", "run_id"], na_position="last"))[0]
            if not methods[-1].cost.img_s:
                methods[-1].cost.not_measured = "not measured" if given else "not measured (no --bench)"
        description, paper = _describe(bench)
        page = BenchmarkPage(bench, description, paper, list(res.column_labels), methods,
                             paper_tables=_paper_tables(frame, bench),
                             n_runs=int(b_frame["run_id"].nunique()), n_done=int(b_done["run_id"].nunique()),
                             headline=res.column_labels[metrics.index(headline)] if headline else "",
                             lead=[j for j, m in enumerate(metrics) if m in ("acc", "tta_acc")],
                             references=[ref for _, ref in refs],
                             comparisons=comparisons(res).to_dict("records"),
                             bench_note=bench_note(bench, bench_measurements, given), made_by=list(res.provenance))
        rest = [j for j, m in enumerate(metrics) if m not in ("acc", "tta_acc")]
        page.rest = [rest[i:i + METRICS_PER_TABLE] for i in range(0, len(rest), METRICS_PER_TABLE)]
        for j, metric in enumerate(metrics):
            if metric not in HEADLINE:
                continue
            best = [(m.label, line[j]) for m, line in zip(methods, res.cells) if line[j].best]
            if best:
                page.leaders.append((res.column_labels[j], format_number(best[0][1].mean) if len(best) == 1 else "",
                                     [lab for lab, _ in best], len(best) > 1))
        pages.append(page)
    return sorted(pages, key=lambda p: p.name)
