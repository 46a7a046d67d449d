"""Launch a grid: skip what is done or alive, submit the rest, record everything in a manifest.

The sweep root's layout is `augbench.sweeproot`'s; how runs are submitted, watched and stopped
is their executor's (`augbench.sweep.executors`: inline, local, slurm).
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from augbench.errors import ConfigError
from augbench.log import logger
from augbench.progress import duration
from augbench.rundir import RunState, append_jsonl
from augbench.sweep.executors import Launch, Submitted, choose_executor, executor_of
from augbench.sweep.grid import Grid, PlannedRun, Resources
from augbench.sweep.status import RunStatus, SweepStatus, collect_status
from augbench.sweeproot import MANIFEST, grid_copy, read_manifest

Log = Callable[[str], None]


@dataclass
class LaunchReport:
    """What a launch did (or, with dry_run, would do)."""

    launch_id: str
    executor: str
    root: Path
    runs: list[PlannedRun]
    done: list[str] = field(default_factory=list)
    alive: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # failed before, not retried
    submitted: list[PlannedRun] = field(default_factory=list)
    job_ids: dict[str, str] = field(default_factory=dict)
    supervisor_pid: int | None = None
    final: SweepStatus | None = None
    plan: list[str] = field(default_factory=list)  # the executor's lines about the plan (SLURM resources)
    submission: str | None = None  # the executor's line about what it submitted
    resources: dict[str, Resources] = field(default_factory=dict)  # per benchmark, as submitted

    def summary(self) -> Any:
        """Per (benchmark, method label): runs in the grid, done, alive, failed, submitted now."""
        import pandas as pd  # pandas: only for the summary table

        kind: dict[str, str] = {r: RunState.DONE for r in self.done}
        kind.update({r: "alive" for r in self.alive})
        kind.update({r: RunState.FAILED for r in self.failed})
        kind.update({r.run_id: "submit" for r in self.submitted})
        rows = [{"benchmark": r.config.benchmark, "method": r.label, "kind": kind.get(r.run_id, "submit")}
                for r in self.runs]
        cols = [RunState.DONE, "alive", RunState.FAILED, "submit"]
        if not rows:
            return pd.DataFrame(columns=["benchmark", "method", "runs", *cols])
        df = pd.DataFrame(rows)
        table = pd.crosstab([df["benchmark"], df["method"]], df["kind"]).reindex(columns=cols, fill_value=0)
        table.insert(0, "runs", table.sum(axis=1))
        return table.reset_index()


# --------------------------------------------------------------------------------- planning
def classify(runs: Sequence[PlannedRun], status: SweepStatus, retry_failed: bool
             ) -> tuple[list[str], list[str], list[str], list[PlannedRun]]:
    """(done, alive, failed-not-retried, to submit): nothing done or alive is ever resubmitted."""
    states = status.by_id()
    done, alive, failed, todo = [], [], [], []
    for run in runs:
        st = states.get(run.run_id)
        if st is None:
            todo.append(run)
        elif st.state == RunState.DONE:
            done.append(run.run_id)
        elif st.alive:
            alive.append(run.run_id)
        elif st.state == RunState.FAILED and not retry_failed:
            failed.append(run.run_id)
        else:  # stalled, cancelled, or failed with --retry-failed: resumes from its checkpoint
            todo.append(run)
    return done, alive, failed, todo


# --------------------------------------------------------------------------------- launch
def launch_sweep(grid: Grid, root: Path | str, *, executor: str = "auto", overrides: Mapping[str, Any] | None = None,
                 seeds: Sequence[int] | None = None, resources: Resources | None = None,
                 max_parallel: int | None = None, dry_run: bool = False, wait: bool = False,
                 retry_failed: bool = False, log: Log = logger.info, poll_seconds: float | None = None,
                 skip_unregistered: bool = False) -> LaunchReport:
    """Expand `grid`, skip done and alive runs, submit the rest; never blocks unless `wait`.

    The inline executor blocks by nature. Every invalid name or value in the grid, the
    overrides or the resources is a one-line ConfigError before anything is submitted
    (with `skip_unregistered`, entries whose method or benchmark is not registered are
    logged and skipped instead).
    """
    root = Path(root)
    runner = choose_executor(executor)
    if max_parallel is not None and max_parallel < 1:
        raise ConfigError(f"--max-parallel must be at least 1, got {max_parallel}")
    expansion = grid.expand(overrides, seeds, skip_unregistered=skip_unregistered)
    for note in expansion.skipped:
        log(f"skipping {note}")
    cli_res = resources or Resources()
    if max_parallel is not None:
        cli_res = cli_res.merged(Resources(array_parallelism=max_parallel))
    res_of = runner.resources({b: grid.resources_for(b).merged(cli_res)
                               for b in {r.config.benchmark for r in expansion.runs}}, log)
    runs = [PlannedRun(runner.runtime_settings(r.config, res_of[r.config.benchmark]), r.label, r.variant)
            for r in expansion.runs]
    launch_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    status = collect_status(root)
    done, alive, failed, todo = classify(runs, status, retry_failed)
    report = LaunchReport(launch_id, runner.name, root, runs, done, alive, failed, todo, resources=res_of,
                          plan=runner.plan(res_of))
    if dry_run or not todo:
        return report

    root.mkdir(parents=True, exist_ok=True)
    grid_text = Path(grid.path).read_text() if grid.path is not None else None
    grid_hash = None if grid_text is None else hashlib.sha256(grid_text.encode()).hexdigest()  # provenance
    if grid_text is not None:
        grid_copy(root, launch_id, grid.name).parent.mkdir(exist_ok=True)
        grid_copy(root, launch_id, grid.name).write_text(grid_text)
    grid_file = str(grid.path) if grid.path else None
    append_jsonl(root / MANIFEST, {"event": "launch", "time": time.time(), "launch_id": launch_id,
                                   "grid": grid.name, "grid_path": grid_file, "grid_sha256": grid_hash,
                                   "executor": runner.name,
                                   "runs": len(runs), "submit": len(todo), "done": len(done), "alive": len(alive),
                                   "failed": len(failed), "host": socket.gethostname(), "pid": os.getpid()})
    launch = Launch(root, launch_id, grid.name, {"launch_id": launch_id, "grid": grid.name, "grid_file": grid_file,
                                                 "grid_sha256": grid_hash},
                    max_parallel or 1, res_of, log)
    submitted: Submitted = runner.submit(todo, launch)
    report.job_ids, report.supervisor_pid = submitted.job_ids, submitted.supervisor_pid
    report.submission = runner.describe(submitted, len(todo), max_parallel or 1)
    if runner.blocks:
        report.final = collect_status(root, scheduler=False)
    elif wait:
        report.final = wait_for(root, [r.run_id for r in todo], log=log,
                                poll_seconds=poll_seconds or runner.poll_seconds)
    return report


# --------------------------------------------------------------------------------- wait / cancel
def _run_name(r: RunStatus) -> str:
    variant = f" {r.variant}" if r.variant else ""
    return f"{r.run_id} {r.benchmark}/{r.label}{variant} seed {r.seed}"


def wait_for(root: Path, run_ids: Sequence[str], *, log: Log = logger.info, poll_seconds: float = 5.0,
             timeout: float | None = None) -> SweepStatus:
    """Block until none of `run_ids` is pending or running.

    Logs each run as it starts and as it ends (its result or failure, its duration) and, after
    each finished run, an estimate of the time left (the finished runs' mean duration x the
    remaining runs / the most runs seen running at once).
    """
    wanted = set(run_ids)
    deadline = None if timeout is None else time.monotonic() + timeout
    seen: dict[str, str] = {}
    started: dict[str, float] = {}
    durations: list[float] = []
    parallel = 1
    while True:
        st = collect_status(root)
        mine = [r for r in st.runs if r.run_id in wanted]
        now = time.monotonic()
        finished_now = False
        for r in mine:
            before = seen.get(r.run_id)
            if r.state == before:
                continue
            seen[r.run_id] = r.state
            if r.state == RunState.RUNNING:
                started[r.run_id] = now
                log(f"start  {_run_name(r)}")
            elif not r.alive and before is not None:  # ended: done, failed, stalled or cancelled
                took = now - started[r.run_id] if r.run_id in started else None
                if took is not None and r.state == RunState.DONE:
                    durations.append(took)
                finished_now = True
                when = f" after {duration(took)}" if took is not None else ""
                log(f"{r.state:<6} {_run_name(r)}{when}: {r.detail}")
        parallel = max(parallel, sum(r.state == RunState.RUNNING for r in mine))
        left = sum(r.alive for r in mine)
        if not left or (deadline is not None and now > deadline):
            return st
        if finished_now and durations:
            eta = sum(durations) / len(durations) * left / parallel
            log(f"       {len(mine) - left}/{len(mine)} finished, about {duration(eta)} left")
        time.sleep(poll_seconds)


def cancel(root: Path | str, *, log: Log = logger.info) -> list[str]:
    """Stop every alive run of the sweep through its executor (scancel, SIGTERM to local supervisors).

    Returns the ids of the runs cancelled; writes a cancel event for each.
    """
    root = Path(root)
    st = collect_status(root)
    subs = read_manifest(root).submissions()
    alive = [r for r in st.runs if r.alive and r.run_id in subs]
    by_executor: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in alive:
        by_executor[str(subs[r.run_id].get("executor"))].append(subs[r.run_id])
    signalled = {name: executor_of(group[0]).cancel(group, log) for name, group in sorted(by_executor.items())}
    for r in alive:
        sub = subs[r.run_id]
        append_jsonl(root / MANIFEST, {"event": "cancel", "time": time.time(), "run_id": r.run_id,
                                       "executor": sub.get("executor"), "job_id": sub.get("job_id"),
                                       "pid": sub.get("supervisor_pid") or sub.get("pid")})
    if alive:
        log(f"cancelled {len(alive)} runs (" + ", ".join(f"{name}: {n} jobs or processes signalled"
                                                         for name, n in signalled.items()) + ")")
    else:
        log("nothing to cancel: no run is pending or running")
    return [r.run_id for r in alive]
