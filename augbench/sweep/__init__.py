"""Sweeps: grid files -> runs by identity -> inline, local processes or SLURM job arrays.

    from augbench.sweep import load_grid, launch_sweep, collect_status
    rep = launch_sweep(load_grid("table1"), "sweeps/table1", executor="slurm")
    print(collect_status("sweeps/table1").counts())

Command line: `augbench sweep launch|status|cancel|grids`. The file system is the database:
each run lives in ROOT/runs/<run_id> (hash of what determines its result, never paths or
cluster settings) and ROOT/manifest.jsonl records which job runs what, so a sweep's state can
be read from disk alone and a relaunch never repeats finished or live work.
"""


from augbench.lazy import lazy_getattr

# name -> module; imported on first use, so the CLI parser (which imports augbench.sweep.cli) stays light
_EXPORTS = {
    **dict.fromkeys(("Grid", "PlannedRun", "Resources", "find_grid", "list_grids", "load_grid", "parse_grid"),
                    "augbench.sweep.grid"),
    "SweepJob": "augbench.sweep.job",
    "run_dir": "augbench.sweeproot",
    **dict.fromkeys(("LaunchReport", "cancel", "launch_sweep", "wait_for"), "augbench.sweep.launch"),
    **dict.fromkeys(("RunStatus", "SweepStatus", "collect_status", "format_status"), "augbench.sweep.status"),
}
__all__ = sorted(_EXPORTS)


__getattr__ = lazy_getattr("augbench.sweep", _EXPORTS, globals())
