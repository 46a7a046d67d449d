"""`augbench demo`: a small grid on the embedded benchmarks, then its tables and figures.

The grid is data (`DEMO_GRID`: one line per benchmark x method x hyperparameter lists), so a
new method or benchmark is one more line. Entries whose benchmark or method is not registered,
or that do not resolve (family mismatch, unknown setting), are skipped with a note. The grid
goes through the sweep launcher (`augbench.slurm.launch`: inline, or N local processes), so runs
live under ROOT/runs/<run_id>, an interrupted demo resumes, and a finished one is only
collected again.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from augbench.errors import AugbenchError

# (benchmark, method, {hyperparameter: [values]}): the cartesian product of the lists is run.
DEMO_GRID: tuple[tuple[str, str, dict[str, list[Any]]], ...] = (
    ("glyphs-rotation", "none", {}),
    ("glyphs-rotation", "random-rotation", {"max_angle": [22.5, 45.0]}),
    ("glyphs-rotation", "augerino", {}),
    ("glyphs-rotation", "instaaug", {}),
    ("clutter-crop", "none", {}),
    ("clutter-crop", "random-crop", {"scale_min": [0.1, 0.5]}),
    ("clutter-crop", "augerino", {}),
    ("clutter-crop", "instaaug", {}),
    ("clutter-crop", "instaaug", {"conditioning": ["input-free"]}),
    ("texture-color", "none", {}),
    ("texture-color", "random-color", {"hue": [0.0, 0.2], "value": [0.4, 0.8]}),
    ("texture-color", "augerino", {}),
    ("texture-color", "instaaug", {}),
)
# Benchmark settings that keep the whole demo to a few CPU minutes (an unknown key skips the benchmark).
DEMO_SETTINGS: dict[str, dict[str, Any]] = {
    "glyphs-rotation": {"data.n_train": 800, "data.n_test": 300, "train.epochs": 5, "eval.tta_views": 4},
    "clutter-crop": {"data.n_train": 800, "data.n_test": 300, "train.epochs": 5, "eval.tta_views": 4},
    "texture-color": {"data.n_train_per_class": 80, "data.n_test_per_class": 5, "train.epochs": 5,
                      "eval.tta_views": 4},
}
DEMO_SEEDS = 2
DEMO_PARALLEL = max(1, min(4, os.cpu_count() or 1))  # local processes by default

Report = Callable[[str], None]


def demo_grid(grid: Iterable[tuple[str, str, Mapping[str, Sequence[Any]]]] = DEMO_GRID,
              settings: Mapping[str, Mapping[str, Any]] = DEMO_SETTINGS, seeds: int = DEMO_SEEDS,
              overrides: Mapping[str, Any] | None = None, report: Report = print) -> Any:
    """The demo as a sweep grid (`augbench.slurm.Grid`), keeping only entries that resolve here."""
    from augbench.benchmarks import list_benchmarks
    from augbench.methods import list_methods
    from augbench.runs import resolve
    from augbench.slurm.grid import parse_grid

    benchmarks, methods = set(list_benchmarks()), set(list_methods())
    runs = []
    for bench, method, hp_lists in grid:
        if bench not in benchmarks or method not in methods:
            report(f"demo: skipping {bench} / {method}: {bench if bench not in benchmarks else method} "
                   "is not registered")
            continue
        entry_settings = {**settings.get(bench, {}), **(overrides or {})}
        try:  # one resolve per entry: family, setting names and hyperparameter values
            resolve(bench, method, 0, {**entry_settings, **{k: v[0] for k, v in hp_lists.items()}})
        except AugbenchError as exc:
            report(f"demo: skipping {bench} / {method}: {exc}")
            continue
        label = method + "".join(f" {k}={v[0]}" for k, v in hp_lists.items() if len(v) == 1)
        runs.append({"benchmark": bench, "method": method, "label": label,
                     "settings": {k: [v] for k, v in entry_settings.items()},
                     "hparams": {k: list(v) for k, v in hp_lists.items()}})
    if not runs:
        return None
    return parse_grid({"name": "demo", "seeds": list(range(seeds)), "runs": runs}, "demo")


def write_outputs(root: Path, out: Path, report: Report = print) -> list[Path]:
    """Collect ROOT; write results.csv, every table that has runs (md, tex, csv) and every figure."""
    from augbench.results.collect import collect, write_frame
    from augbench.results.paper import TABLES
    from augbench.results.plots import FIGURES, render_all
    from augbench.results.tables import SUFFIX, auto_tables, paper_table, render

    frame = collect(root, report=lambda line: report(f"collect: {line}"))
    written = [write_frame(frame, out / "results.csv")]
    tables = auto_tables(frame) if not frame.empty else []
    present = set(frame["benchmark"].dropna()) if not frame.empty else set()
    tables += [paper_table(frame, t) for t, spec in TABLES.items() if spec.benchmark in present]
    for res in tables:
        for fmt, suffix in SUFFIX.items():
            path = out / "tables" / f"table-{res.id.replace('.', '')}.{suffix}"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(render(res, fmt))
            written.append(path)
    names = [name for name in FIGURES if not name.startswith("table-")]
    names += [f"table-{res.id.replace('.', '')}" for res in tables if not res.id.startswith("auto-")]
    written += render_all(frame, root, out / "figures", report=lambda line: report(f"figure skipped: {line}"),
                          names=names)
    return written


def run_demo(root: Path | str = "runs/demo", out: Path | str = "results", max_parallel: int = DEMO_PARALLEL,
             seeds: int = DEMO_SEEDS, overrides: Mapping[str, Any] | None = None,
             grid: Iterable[tuple[str, str, Mapping[str, Sequence[Any]]]] = DEMO_GRID,
             settings: Mapping[str, Mapping[str, Any]] = DEMO_SETTINGS, report: Report | None = None) -> int:
    """Run the grid (inline, or `max_parallel` local processes), write tables and figures, print the
    generic tables; returns the number of runs that did not finish."""
    from augbench.results.collect import collect
    from augbench.results.tables import auto_tables, to_markdown
    from augbench.slurm import launch_sweep

    say = report or (lambda line: print(line, file=sys.stderr))
    root, out = Path(root), Path(out)
    sweep = demo_grid(grid, settings, seeds, overrides, say)
    if sweep is not None:
        rep = launch_sweep(sweep, root, executor="inline" if max_parallel <= 1 else "local",
                     max_parallel=max(1, max_parallel), wait=True, log=say, poll_seconds=2.0)
        say(f"demo: {len(rep.runs)} runs ({len(rep.done)} were already done, {len(rep.failed)} failed before)")
    written = write_outputs(root, out, say)
    say(f"demo: wrote {len(written)} files under {out}")
    frame = collect(root, report=lambda line: None)
    for res in auto_tables(frame) if not frame.empty else []:
        print(to_markdown(res))
    states = frame.drop_duplicates("run_id")["state"] if not frame.empty else []
    return int(sum(s != "done" for s in states))
