"""Writing the leaderboard: pages from Jinja2 templates, figures as PNG, the sort script and style.

Layout of OUT (every link relative, so it works from file:// and from any static host)::

    index.html                      benchmarks, their leaders, the ranking across benchmarks, the environments
    cd-diagram.png                  the critical-difference diagram (with enough benchmarks)
    assets/style.css, sort.js       the only style and script (no CDN, nothing fetched)
    <benchmark>/index.html          the sortable table of methods, the paper's tables, figures
    <benchmark>/<method>.html       one method: results, configurations, hyperparameters, runs
    <benchmark>/figures/*.png       the benchmark's figures (5, 6, 7, E.1: where they apply)
    <benchmark>/curves/<method>.png that method's training curves
    .augbench-leaderboard           the files of the last build (stale ones are removed)

Outputs are deterministic: no timestamps, sorted everything, and a file whose bytes did not
change is not rewritten (its mtime stays).
"""

from __future__ import annotations

import importlib.resources
import io
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from augbench import __version__
from augbench.errors import DataError
from augbench.results.aggregate import Aggregate, aggregate
from augbench.results.cells import auto_tables
from augbench.results.collect import collect
from augbench.results.figures.common import MissingRuns, PlotContext
from augbench.results.figures.registry import FIGURES
from augbench.results.leaderboard.curves import method_curves
from augbench.results.leaderboard.data import BenchmarkPage, benchmark_pages, environments, read_bench
from augbench.results.schema import apply_dtypes, read_frame
from augbench.results.selection import TIE_RULE
from augbench.results.stats import IMPROVEMENT_NAME, INTERVAL_NAME, PAIRED_NAME, POWER
from augbench.safeload import loads_json

MARKER = ".augbench-leaderboard"
BENCHMARK_FIGURES = (("fig5-rotation", "Figure 5: learned rotation ranges per instance"),
                     ("fig6-crops", "Figure 6: sampled crops and crop statistics"),
                     ("fig7-id-ood", "Figure 7: in- against out-of-distribution accuracy"),
                     ("E1-heatmap", "Figure E.1: accuracy over [Hmin, Hmax]"),
                     ("E1-lambda", "Figure E.1: fixed against dynamic lambda"))
Report = Callable[[str], None]


@dataclass
class Site:
    version: str
    n_runs: int
    interval: str
    benchmarks: list[BenchmarkPage]
    environments: list[list[tuple[str, str]]] = field(default_factory=list)  # (label, value) per environment
    environment_runs: list[int] = field(default_factory=list)  # how many runs each environment made
    aggregate: Aggregate | None = None
    cd_diagram: str = ""  # file of the critical-difference diagram, when drawn
    paired: str = PAIRED_NAME
    improvement: str = IMPROVEMENT_NAME
    power: str = f"{POWER:.0%}"


class _Writer:
    """Writes files under OUT only when their bytes change, and remembers what it wrote."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.written: list[Path] = []

    def write(self, rel: str, data: bytes | str) -> Path:
        blob = data.encode() if isinstance(data, str) else data
        path = self.out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.is_file() or path.read_bytes() != blob:
            path.write_bytes(blob)
        self.written.append(path)
        return path

    def figure(self, rel: str, fig: Figure) -> Path:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=fig.dpi, metadata={"Software": None})
        return self.write(rel, buf.getvalue())

    def finish(self) -> None:
        """Record this build's files; remove the files of the previous build that it no longer has."""
        rel = sorted({p.relative_to(self.out).as_posix() for p in self.written})
        marker = self.out / MARKER
        try:
            previous = loads_json(marker.read_text()) if marker.is_file() else []
        except ValueError:
            previous = []
        if not isinstance(previous, list) or not all(isinstance(p, str) for p in previous):
            previous = []  # not a list of file names: not ours, forget it
        for old in sorted(set(previous) - set(rel)):
            path = self.out / old
            if path.is_file() and ".." not in Path(old).parts:
                path.unlink()
        self.write(MARKER, json.dumps(rel, indent=0) + "\n")


def _environment() -> Any:
    return jinja2.Environment(loader=jinja2.PackageLoader("augbench.results.leaderboard", "templates"),
                              autoescape=jinja2.select_autoescape(["html", "j2"]), trim_blocks=True,
                              lstrip_blocks=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=True)


def _static(name: str) -> bytes:
    return importlib.resources.files("augbench.results.leaderboard").joinpath("static", name).read_bytes()


def _environments(frame: pd.DataFrame) -> tuple[list[list[tuple[str, str]]], list[int]]:
    """Every distinct environment of the frame's runs and how many runs each made."""
    envs, of_run = environments(frame.drop_duplicates("run_id"))
    return envs, [of_run.count(i + 1) for i in range(len(envs))]


def _benchmark_figures(frame: pd.DataFrame, root: Path, bench: str, writer: _Writer, report: Report
                       ) -> list[tuple[str, str]]:
    ctx = PlotContext(frame, root)
    out = []
    with sns.axes_style("whitegrid"):
        for name, title in BENCHMARK_FIGURES:
            try:
                for file_name, fig in FIGURES[name](ctx, bench):
                    writer.figure(f"{bench}/figures/{file_name}.png", fig)
                    out.append((title, f"figures/{file_name}.png"))
            except MissingRuns as exc:
                report(f"{bench}: {exc}")
    return out


def build_site(frame: pd.DataFrame, root: Path | str, out: Path | str, bench_files: Sequence[Path | str] = (),
               report: Report = print, figures: bool = True) -> list[Path]:
    """Write the leaderboard of `frame` (collected from `root`, where figures find inspect.pt) under `out`."""
    root, out = Path(root), Path(out)
    writer = _Writer(out)
    tables = auto_tables(frame) if not frame.empty else []
    pages = benchmark_pages(frame, read_bench(bench_files) if bench_files else None, tables)
    envs, env_runs = _environments(frame) if not frame.empty else ([], [])
    site = Site(__version__, int(frame["run_id"].nunique()) if not frame.empty else 0, INTERVAL_NAME, pages, envs,
                env_runs, aggregate(tables) if not frame.empty else None)
    if site.aggregate is not None and site.aggregate.cd_figure is not None:
        writer.figure("cd-diagram.png", site.aggregate.cd_figure)
        site.cd_diagram = "cd-diagram.png"
    env = _environment()
    for b in pages:
        if figures:
            b.figures = _benchmark_figures(frame, root, b.name, writer, report)
        for m in b.methods:
            runs = frame[(frame["benchmark"] == b.name) & (frame["method"] == m.method)
                         & (frame["variant"].fillna("") == m.variant)]
            fig = method_curves(runs) if figures else None
            if fig is not None:
                writer.figure(f"{b.name}/curves/{m.slug}.png", fig)
                m.curves = f"curves/{m.slug}.png"
        for m in b.methods:
            writer.write(f"{b.name}/{m.slug}.html", env.get_template("method.html.j2").render(
                site=site, up="../", m=m, metrics=list(zip(b.metrics, m.metrics)), headline=b.headline,
                figures=b.figures, tie_rule=TIE_RULE))
        writer.write(f"{b.name}/index.html", env.get_template("benchmark.html.j2").render(site=site, up="../", b=b))
    writer.write("index.html", env.get_template("index.html.j2").render(site=site, up=""))
    for name in ("style.css", "sort.js"):
        writer.write(f"assets/{name}", _static(name))
    writer.finish()
    return writer.written


def collect_roots(roots: Sequence[Path | str], report: Report) -> tuple[pd.DataFrame, Path]:
    """One frame from several folders of runs (or files written by `augbench collect --out`), and the
    folder their `run_dir`s are relative to. A run found twice (same run id) counts once."""
    paths = [Path(r).resolve() for r in roots]
    if not paths:
        raise DataError("no results given: name at least one folder of runs")
    bases = [p.parent if p.is_file() else p for p in paths]
    common = Path(os.path.commonpath([str(b) for b in bases]))
    frames, empty = [], None
    for i, (path, base) in enumerate(zip(paths, bases)):
        frame = read_frame(path, report) if path.is_file() else collect(path, report=report)
        empty = frame if empty is None else empty
        if not frame.empty:
            prefix = base.relative_to(common).as_posix()
            if prefix not in ("", "."):
                frame = frame.assign(run_dir=[f"{prefix}/{d}" if d != "." else prefix for d in frame["run_dir"]])
            frames.append(frame.assign(_source=i))
    if not frames:
        return apply_dtypes(empty), common
    frame = pd.concat(frames, ignore_index=True)
    first = frame.drop_duplicates("run_id")[["run_id", "_source", "run_dir"]].set_index("run_id")
    dup = frame["_source"] != frame["run_id"].map(first["_source"])
    for run_id in sorted(set(frame.loc[dup, "run_id"])):
        report(f"run {run_id} is in several of the folders given; the first ({first.loc[run_id, 'run_dir']}) is used")
    frame = frame[~dup].drop(columns="_source").reset_index(drop=True)
    return apply_dtypes(frame), common


def leaderboard(roots: Sequence[Path | str], out: Path | str, bench_files: Sequence[Path | str] = (),
                report: Report = print) -> list[Path]:
    """Collect `roots` and write their leaderboard under `out` (see the module docstring)."""
    frame, common = collect_roots(roots, report)
    return build_site(frame, common, out, bench_files, report)
