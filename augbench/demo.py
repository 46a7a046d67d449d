"""`augbench demo`: the demo grid (`benchmarks/grids/demo.toml`) on the embedded benchmarks, then
its tables and figures.

The grid is a grid file like the paper's, so a new method or benchmark is one more `[[runs]]`
entry. It goes through the sweep launcher (inline, or N local processes), so runs live under
ROOT/runs/<run_id>, an interrupted demo resumes, and a finished one is only collected again.
Entries whose benchmark or method is not registered are skipped with a note.

Everything goes under `./augbench-demo/` by default (ignored by the repository's .gitignore), so a
newcomer's first command leaves a clone clean; the committed `results/` are regenerated only by
naming them: `augbench demo --out results` (and `augbench demo --full --out results/full`).

`--full` runs in parts (`FULL_PARTS`), one grid each with its own run root, outputs and `none`
baseline: a part is sized for about an hour on 2 cores, so a maintainer regenerates one part from
one clean commit, and each committed part names the commit that made it.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from augbench.atomic import write_if_changed
from augbench.errors import ConfigError
from augbench.log import logger
from augbench.outpaths import check_folder
from augbench.overrides import parse_sets
from augbench.rundir import RunState
from augbench.sweep.grid import load_grid

DEMO_GRID = "demo"  # benchmarks/grids/demo.toml
DEMO_SEEDS = 2
DEMO_DIR = "augbench-demo"  # under the working directory, outside the tracked tree
# `--full`: the stand-ins at their benchmarks' own sizes and schedules, 5 seeds: where learned
# crops and colour ranges have the steps to show input dependence. Part PART runs under ROOT/PART
# and writes OUT/PART.
FULL_PARTS: dict[str, str] = {
    "crop": "demo_full_crop",  # InstaAug, its input-free ablation, random crop, none
    "crop-learned": "demo_full_crop_learned",  # FlowInv, MADAug, TeachAugment, none
    "crop-magnitude": "demo_full_crop_magnitude",  # EntAugment, AdaAugment, SRA, none
    "color": "demo_full_color",  # InstaAug, random colour, none
    "color-learned": "demo_full_color_learned",  # MADAug, TeachAugment, none
    "color-magnitude": "demo_full_color_magnitude",  # EntAugment, AdaAugment, SRA, none
}
FULL: dict[str, Any] = {"root": f"{DEMO_DIR}/full/runs", "out": f"{DEMO_DIR}/full/results", "seeds": 5}
QUICK: dict[str, Any] = {"grid": DEMO_GRID, "root": f"{DEMO_DIR}/runs", "out": f"{DEMO_DIR}/results",
                         "seeds": DEMO_SEEDS}
DEMO_PARALLEL = max(1, min(4, os.cpu_count() or 1))  # local processes by default

VOLATILE_COLUMNS = ("time", "wall_time")  # wall-clock times: in the run directories, not in committed results

Report = Callable[[str], None]


def write_outputs(root: Path, out: Path, report: Report = print) -> list[Path]:
    """Collect ROOT; write results.csv, every table that has runs (md, tex, csv), every figure and the
    HTML leaderboard (OUT/leaderboard, with OUT/perf's `augbench bench` measurements)."""
    from augbench.results.cells import auto_tables, paper_table  # pandas, matplotlib: not to build the parser
    from augbench.results.collect import collect
    from augbench.results.figures.registry import FIGURES, render_all
    from augbench.results.leaderboard import build_site
    from augbench.results.paper import TABLES
    from augbench.results.tables import SUFFIX, render

    frame = collect(root, report=lambda line: report(f"collect: {line}"))
    # committed: without the records' wall-clock times, so the same runs give the same file
    committed = frame.drop(columns=[c for c in VOLATILE_COLUMNS if c in frame.columns])
    out.mkdir(parents=True, exist_ok=True)
    write_if_changed(out / "results.csv", committed.to_csv(index=False))
    written = [out / "results.csv"]
    tables = auto_tables(frame) if not frame.empty else []
    present = set(frame["benchmark"].dropna()) if not frame.empty else set()
    tables += [paper_table(frame, t) for t, spec in TABLES.items() if spec.benchmark in present]
    for res in tables:
        for fmt, suffix in SUFFIX.items():
            path = out / "tables" / f"table-{res.id.replace('.', '')}.{suffix}"
            path.parent.mkdir(parents=True, exist_ok=True)
            write_if_changed(path, render(res, fmt))
            written.append(path)
    # class-ranges is for trees without ground truth; the stand-ins' own figures (5, 6, 7) have it
    names = [name for name in FIGURES if not name.startswith("table-") and name != "class-ranges"]
    names += [f"table-{res.id.replace('.', '')}" for res in tables if not res.id.startswith("auto-")]
    written += render_all(frame, root, out / "figures", report=lambda line: report(f"figure skipped: {line}"),
                          names=names)
    written += build_site(frame, root, out / "leaderboard", sorted((out / "perf").glob("*.csv")),
                          report=lambda line: report(f"leaderboard: {line}"))
    return written


def run_demo(root: Path | str = QUICK["root"], out: Path | str = QUICK["out"], max_parallel: int = DEMO_PARALLEL,
             seeds: int = DEMO_SEEDS, overrides: Mapping[str, Any] | None = None, grid: str | Path = DEMO_GRID,
             report: Report | None = None) -> int:
    """Run the grid (inline, or `max_parallel` local processes), write tables and figures, print the
    generic tables; returns the number of runs that did not finish."""
    from augbench.sweep import launch_sweep

    say = report or logger.info
    root, out = Path(root), Path(out)
    loaded = load_grid(grid)
    # bad names or values are one line, with no announcement before it (launch_sweep expands again: ms)
    loaded.expand(overrides, range(seeds), skip_unregistered=True)
    say(f"demo: run directories under {root}/, tables, figures and leaderboard under {out}/")
    rep = launch_sweep(loaded, root, executor="inline" if max_parallel <= 1 else "local",
                       overrides=overrides, seeds=range(seeds), skip_unregistered=True,
                       max_parallel=max(1, max_parallel), wait=True, log=lambda line: say(f"demo: {line}"),
                       poll_seconds=2.0)
    say(f"demo: {len(rep.runs)} runs ({len(rep.done)} were already done, {len(rep.failed)} failed before)")
    from augbench.results.cells import auto_tables  # torch and pandas: after the grid is validated
    from augbench.results.collect import collect
    from augbench.results.tables import to_markdown

    written = write_outputs(root, out, say)
    frame = collect(root, report=lambda line: None)
    for res in auto_tables(frame) if not frame.empty else []:
        print(to_markdown(res), flush=True)
    say(f"demo: wrote {len(written)} files under {out}/ (open {out / 'leaderboard' / 'index.html'}); "
        f"run directories under {root}/")
    states = frame.drop_duplicates("run_id")["state"] if not frame.empty else []
    return int(sum(s != RunState.DONE for s in states))


def cmd_demo(args: argparse.Namespace) -> int:
    sets = parse_sets(args.set)
    if args.full is None:
        chosen = {k: QUICK[k] if v is None else v for k, v in
                  {"grid": args.grid, "root": args.root, "out": args.out, "seeds": args.seeds}.items()}
        check_folder(chosen["root"], "run folder", "--root")
        check_folder(chosen["out"], "output folder", "--out")
        failed = run_demo(chosen["root"], chosen["out"], args.max_parallel, chosen["seeds"], sets, grid=chosen["grid"])
    else:
        if args.grid is not None:
            raise ConfigError("demo: --full runs its own grids (its parts); give --grid without --full")
        root, out = Path(args.root or FULL["root"]), Path(args.out or FULL["out"])
        seeds = FULL["seeds"] if args.seeds is None else args.seeds
        parts = list(dict.fromkeys(args.full or FULL_PARTS))  # the named parts, once each, in order
        for part in parts:  # every part's folders and grid before the first part runs (an hour each)
            check_folder(root / part, "run folder", "--root")
            check_folder(out / part, "output folder", "--out")
            load_grid(FULL_PARTS[part]).expand(sets, range(seeds), skip_unregistered=True)
        failed = 0
        for part in parts:
            logger.info(f"demo: --full part {part!r} (grid {FULL_PARTS[part]})")
            failed += run_demo(root / part, out / part, args.max_parallel, seeds, sets, grid=FULL_PARTS[part])
    if failed:
        logger.error(f"{failed} run(s) failed; their status.json holds the reason and traceback")
    return 1 if failed else 0


def register(subparsers: Any) -> None:
    """Add `augbench demo` to the `augbench` parser."""
    p = subparsers.add_parser("demo", help="run a small grid on the embedded benchmarks, write tables and figures")
    p.add_argument("--full", nargs="*", metavar="PART", choices=list(FULL_PARTS), default=None,
                   help="the stand-ins at their own sizes and 15-epoch schedules, 5 seeds, in parts of about an "
                        f"hour on 2 cores each (all by default; parts: {', '.join(FULL_PARTS)}); part PART runs "
                        f"under ROOT/PART and writes OUT/PART (defaults --root {FULL['root']} --out {FULL['out']})")
    p.add_argument("--root", default=None, help=f"run directories (default: {QUICK['root']}; resumes)")
    p.add_argument("--out", default=None,
                   help=f"tables, figures and leaderboard (default: {QUICK['out']}; the committed copies: results)")
    p.add_argument("--max-parallel", type=int, default=DEMO_PARALLEL,
                   help=f"runs at a time, as local processes (default here: {DEMO_PARALLEL}; 1 runs inline)")
    p.add_argument("--seeds", type=int, default=None,
                   help=f"seeds per configuration (default {DEMO_SEEDS}; --full: {FULL['seeds']})")
    p.add_argument("--grid", default=None, help="grid name or TOML file (default: the demo grid)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="setting applied to every run")
    p.set_defaults(func=cmd_demo)
