"""`augbench sweep launch|status|cancel|grids`: grids of runs on SLURM, local processes or inline."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from augbench.errors import ConfigError
from augbench.outpaths import check_folder
from augbench.overrides import parse_sets
from augbench.rundir import RunState


def parse_seeds(text: str | None) -> list[int] | None:
    """`0,3,7` or ranges `0-9` (inclusive), mixed: `0-4,10`."""
    if text is None:
        return None
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        lo, sep, hi = part.partition("-")
        try:
            seeds.extend(range(int(lo), int(hi) + 1) if sep else [int(part)])
        except ValueError:
            raise ConfigError(f"--seeds expects integers and ranges such as 0-9,12; got {text!r}") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds {text!r}: empty or repeated seeds")
    return seeds


def _resources(args: argparse.Namespace) -> Any:
    from augbench.sweep.grid import Resources  # the sweep package loads with its commands, not the parser

    return Resources.parse({"partition": args.partition, "gpus": args.gpus, "cpus": args.cpus, "mem": args.mem,
                            "time": args.time, "account": args.account, "qos": args.qos,
                            "constraint": args.constraint, "tasks": args.tasks}, "command line")


def cmd_launch(args: argparse.Namespace) -> int:
    from augbench.sweep.grid import load_grid  # the sweep package loads with its commands, not the parser
    from augbench.sweep.launch import launch_sweep

    grid = load_grid(args.grid)
    root = Path(args.root) if args.root else Path("sweeps") / grid.name
    check_folder(root, "sweep folder", "--root")
    rep = launch_sweep(grid, root, executor=args.executor, overrides=parse_sets(args.set),
                       seeds=parse_seeds(args.seeds), resources=_resources(args), max_parallel=args.max_parallel,
                       dry_run=args.dry_run, wait=args.wait, retry_failed=args.retry_failed)
    paper = f" ({grid.paper})" if grid.paper else ""
    print(f"grid {grid.name}{paper}: {len(rep.runs)} runs -> {root}, executor {rep.executor}")
    if rep.runs:
        print(rep.summary().to_string(index=False))
    for line in rep.plan:
        print(line)
    if rep.failed:
        print(f"{len(rep.failed)} failed runs not retried (--retry-failed to retry them)")
    if args.dry_run:
        print("dry run: nothing submitted")
        return 0
    if not rep.submitted:
        print("nothing to submit")
        return 0
    if rep.submission:
        print(rep.submission)
    if rep.final is None:
        print(f"follow with: augbench sweep status {root}")
        return 0
    from augbench.sweep.status import format_status  # pandas: only to print a status

    print(format_status(rep.final))
    submitted = {r.run_id for r in rep.submitted}
    return 0 if all(r.state == RunState.DONE for r in rep.final.runs if r.run_id in submitted) else 1


def cmd_status(args: argparse.Namespace) -> int:
    from augbench.sweep.status import collect_status, format_status  # pandas: only to print a status

    root = Path(args.root)
    if not root.is_dir():
        raise ConfigError(f"no sweep at {root} (no such folder)")
    st = collect_status(root, scheduler=not args.no_scheduler)
    if args.json:
        print(json.dumps(st.to_json(), indent=1))
    else:
        print(format_status(st, show_done=args.all))
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    from augbench.sweep.launch import cancel  # the sweep package loads with its commands, not the parser

    root = Path(args.root)
    if not root.is_dir():
        raise ConfigError(f"no sweep at {root} (no such folder)")
    cancel(root, log=lambda m: print(m))
    return 0


def cmd_grids(args: argparse.Namespace) -> int:
    from augbench.sweep.grid import list_grids, load_grid  # the sweep package loads with its commands, not the parser

    for name in list_grids():
        grid = load_grid(name)
        head = f"{name}" + (f"  [{grid.paper}]" if grid.paper else "")
        if args.verbose:
            exp = grid.expand(skip_unregistered=True)
            head += f"  {len(exp.runs)} runs registered"
            if exp.skipped:
                head += f", {len(exp.skipped)} entries not registered yet"
        print(head)
        if grid.description:
            print(f"    {grid.description}")
        if args.verbose:
            for entry in grid.entries:
                print(f"    runs[{entry.index}] {entry.label}: {entry.method} on {', '.join(entry.benchmarks)}, "
                      f"{len(entry.seeds)} seeds")
    return 0


def register(subparsers: Any) -> None:
    """Add `augbench sweep ...` to the command line."""
    p = subparsers.add_parser("sweep", help="launch a grid of runs (SLURM, local processes, inline); status; cancel")
    sub = p.add_subparsers(dest="sweep_command", required=True)

    q = sub.add_parser("launch", help="expand a grid, skip done and running runs, submit the rest (returns at once)",
                       description="Runs live in ROOT/runs/<run id> (identity hash), so relaunching is safe: "
                                   "done and alive runs are skipped, interrupted ones resume from their checkpoint.")
    q.add_argument("grid", help="grid file (TOML) or the name of a shipped grid (augbench sweep grids)")
    q.add_argument("--executor", default="auto",
                   help="inline, local or slurm (augbench.sweep.executors); auto: slurm when sinfo answers, "
                        "else local (default)")
    q.add_argument("--root", help="sweep folder (default: sweeps/<grid name>)")
    q.add_argument("--dry-run", action="store_true", help="validate and show the plan; submit nothing")
    q.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override for every run: benchmark setting (dotted) or method hyperparameter")
    q.add_argument("--seeds", help="only these seeds, e.g. 0-2 or 0,5")
    q.add_argument("--max-parallel", type=int, help="local: workers at a time (default 1); slurm: array parallelism")
    q.add_argument("--wait", action="store_true", help="block until every submitted run has ended")
    q.add_argument("--retry-failed", action="store_true", help="resubmit runs that failed before")
    g = q.add_argument_group("SLURM options (override the grid's resources)")
    g.add_argument("--partition")
    g.add_argument("--gpus", type=int, help="GPUs per job")
    g.add_argument("--cpus", type=int, help="CPUs per job")
    g.add_argument("--mem", help="memory per job, e.g. 16G")
    g.add_argument("--time", help="time limit: minutes or [D-]HH:MM:SS")
    g.add_argument("--account")
    g.add_argument("--qos")
    g.add_argument("--constraint")
    g.add_argument("--tasks", type=int, help="tasks per job: data-parallel processes of each run (one per GPU)")
    q.set_defaults(func=cmd_launch)

    q = sub.add_parser("status", help="pending, running, done, failed and stalled runs per benchmark and method")
    q.add_argument("root")
    q.add_argument("--json", action="store_true", help="every run's state as JSON")
    q.add_argument("--all", action="store_true", help="also list done runs")
    q.add_argument("--no-scheduler", action="store_true", help="read the disk only (do not ask squeue/sacct)")
    q.set_defaults(func=cmd_status)

    q = sub.add_parser("cancel", help="scancel the sweep's SLURM jobs / stop its local processes")
    q.add_argument("root")
    q.set_defaults(func=cmd_cancel)

    q = sub.add_parser("grids", help="the shipped grids (paper tables and figures)")
    q.add_argument("-v", "--verbose", action="store_true", help="entries and registered run counts")
    q.set_defaults(func=cmd_grids)
