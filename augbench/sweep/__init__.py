"""Sweeps: grid files -> runs by identity -> inline, local processes or SLURM job arrays.

    from augbench.sweep import load_grid, launch_sweep, collect_status
    rep = launch_sweep(load_grid("table1"), "sweeps/table1", executor="slurm")
    print(collect_status("sweeps/table1").counts())

Command line: `augbench sweep launch|status|cancel|grids`. The file system is the database:
each run lives in ROOT/runs/<run_id> (hash of what determines its result, never paths or
cluster settings) and ROOT/manifest.jsonl records which job runs what, so a sweep's state can
be read from disk alone and a relaunch never repeats finished or live work.
"""

from augbench.sweep.grid import Grid, PlannedRun, Resources, find_grid, list_grids, load_grid, parse_grid
from augbench.sweep.job import SweepJob, run_dir
from augbench.sweep.launch import LaunchReport, cancel, launch_sweep, wait_for
from augbench.sweep.status import RunStatus, SweepStatus, collect_status, format_status

__all__ = ["Grid", "LaunchReport", "PlannedRun", "Resources", "RunStatus", "SweepJob", "SweepStatus", "cancel",
           "collect_status", "find_grid", "format_status", "launch_sweep", "list_grids", "load_grid", "parse_grid",
           "run_dir", "wait_for"]
