"""Subcommands `collect`, `table`, `plot` and `leaderboard` (registered through augbench.cli.COMMAND_MODULES)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from augbench import rundir
from augbench.errors import ConfigError
from augbench.log import logger
from augbench.outpaths import check_file, check_folder


def _say(line: str) -> None:
    logger.info(line)


def _frame(root: str, running_within: float | None = None) -> Any:
    from augbench.results.collect import collect  # pandas: only commands that build a frame

    return collect(Path(root), report=_say,
                   running_within=rundir.ALIVE_SECONDS if running_within is None else running_within)


def cmd_collect(args: argparse.Namespace) -> int:
    from augbench.results.collect import runs, write_frame  # pandas: only commands that build a frame

    if args.schema:
        from augbench.results.schema import describe  # pandas: only with --schema

        print(describe(), end="")
        return 0
    if args.root is None:
        raise ConfigError("collect needs ROOT, the folder of run directories (or --schema)")
    if args.out:
        check_file(args.out, "output file", "--out")
    frame = _frame(args.root, args.running_within)
    if args.out:
        path = write_frame(frame, args.out)
        _say(f"{len(frame)} rows of {frame['run_id'].nunique() if len(frame) else 0} runs -> {path}")
    if frame.empty:
        print("no runs found")
        return 0
    summary = runs(frame).fillna({"variant": ""}).groupby(["benchmark", "method", "variant", "state"]).size()
    print(summary.rename("runs").reset_index().to_string(index=False))
    return 0


def cmd_table(args: argparse.Namespace) -> int:
    from augbench.results.cells import build_tables  # pandas: only commands that build a frame
    from augbench.results.paper import get_table
    from augbench.results.tables import SUFFIX, render

    if args.table not in ("auto", "all"):
        get_table(args.table)  # a bad id fails before any reading
    if args.out:
        check_folder(args.out, "output folder", "--out")
    frame = _frame(args.root)
    if frame.empty and args.table == "auto":
        raise ConfigError(f"no runs under {args.root}: nothing to tabulate")
    results = build_tables(frame, args.table, args.benchmark)
    for res in results:
        text = render(res, args.format, args.spread)
        if args.out:
            path = Path(args.out) / f"table-{res.id.replace('.', '')}.{SUFFIX[args.format]}"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            _say(f"wrote {path}")
        print(text)
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from augbench.results.figures.common import MissingRuns  # matplotlib: only when plotting
    from augbench.results.figures.registry import FIGURES, render, render_all

    if args.figure != "all" and args.figure not in FIGURES:
        raise ConfigError(f"unknown figure {args.figure!r}; valid: {', '.join(FIGURES)}, all")
    check_folder(args.out, "output folder", "--out")
    frame = _frame(args.root)
    out = Path(args.out)
    if args.figure == "all":
        paths = render_all(frame, args.root, out, report=_say, benchmark=args.benchmark)
    else:
        try:
            paths = render(args.figure, frame, args.root, out, args.benchmark)
        except MissingRuns as exc:
            _say(str(exc))
            return 1
    for p in paths:
        print(p)
    return 0 if paths else 1


def cmd_leaderboard(args: argparse.Namespace) -> int:
    check_folder(args.out, "output folder", "--out")
    from augbench.results.leaderboard import leaderboard  # jinja2, pandas, matplotlib: only this command

    written = leaderboard(args.roots, args.out, args.bench or [], report=_say)
    _say(f"wrote {len(written)} files under {args.out}; open {Path(args.out) / 'index.html'}")
    return 0


def register(subparsers: Any) -> None:
    """Add the results subcommands to the `augbench` parser."""
    from augbench.results.figures import FIGURE_NAMES as FIGURES  # names only: no matplotlib to build a parser
    from augbench.results.formats import FORMATS, SPREADS
    from augbench.results.paper import TABLES

    p = subparsers.add_parser("collect", help="every record under ROOT as one table (Parquet or CSV), provenance too")
    p.add_argument("root", nargs="?", help="folder of run directories (searched recursively)")
    p.add_argument("--out", help="write the frame here (.parquet or .csv)")
    p.add_argument("--schema", action="store_true", help="print the table's columns, dtypes and meaning, and exit")
    p.add_argument("--running-within", type=float, default=None, metavar="SECONDS",
                   help="a run without status written this recently counts as running "
                        f"(default {rundir.ALIVE_SECONDS:.0f})")
    p.set_defaults(func=cmd_collect)

    p = subparsers.add_parser("table", help="a paper table (or `auto`: methods x metrics per benchmark)")
    p.add_argument("root")
    p.add_argument("--table", required=True, help=f"one of {', '.join(TABLES)}, E1, auto, all")
    p.add_argument("--format", default="md", choices=FORMATS)
    p.add_argument("--benchmark", help="with --table auto: only this benchmark")
    p.add_argument("--out", help="also write table-<id>.<csv|md|tex> into this folder")
    p.add_argument("--spread", default="ci", choices=SPREADS,
                   help="after ±: half-width of the 95%% Student-t interval over seeds (ci, default) or the std")
    p.set_defaults(func=cmd_table)

    p = subparsers.add_parser("plot", help="figures (PNG and PDF) from the runs under ROOT")
    p.add_argument("root")
    p.add_argument("--figure", required=True, help=f"one of {', '.join(FIGURES)}, all")
    p.add_argument("--benchmark", help="draw from this benchmark's runs (default: the paper's, else any that fits)")
    p.add_argument("--out", default="figures", help="output folder (default: figures)")
    p.set_defaults(func=cmd_plot)

    p = subparsers.add_parser("leaderboard", help="a static HTML site of the results (works from file://)")
    p.add_argument("roots", nargs="+", metavar="ROOT",
                   help="folders of run directories, or tables written by `augbench collect --out`")
    p.add_argument("--out", required=True, help="output folder (index.html and one folder per benchmark)")
    p.add_argument("--bench", action="append", metavar="CSV",
                   help="`augbench bench` results to show throughput and peak memory from (repeatable)")
    p.set_defaults(func=cmd_leaderboard)
