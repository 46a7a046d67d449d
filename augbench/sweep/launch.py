"""Launch a grid: skip what is done or alive, submit the rest, record everything in a manifest.

Sweep root layout (the file system is the job database)::

    ROOT/manifest.jsonl          append-only events: launch, submit (run -> job id / pid),
                                 start, end, exit, skip, cancel
    ROOT/runs/<run_id>/          one run directory per identity (augbench.rundir)
    ROOT/grids/<launch>-<name>.toml  the grid file of each launch, as it was
    ROOT/launches/<launch>.json  the runs of a local launch (read by its supervisor)
    ROOT/logs/                   local supervisor and worker logs
    ROOT/slurm/                  submitit's job folders (sbatch scripts, pickles, logs)

Executors:
- inline: one run after another in this process (blocks);
- local: a detached supervisor process runs at most N workers at a time and survives the
  launching shell (unlike submitit's LocalExecutor, which starts every job at once and kills
  them after its timeout); its pid is in the manifest, `sweep cancel` stops it;
- slurm: submitit's AutoExecutor, one job array per group of runs with the same resources,
  split below the cluster's MaxArraySize; jobs are `SweepJob`s, requeued on preemption.

`main(["supervise", LAUNCH_FILE])` is the local supervisor (started as `python -c ...`).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from augbench.errors import ConfigError
from augbench.rundir import append_jsonl, failure_reason
from augbench.sweep.grid import Grid, PlannedRun, Resources
from augbench.sweep.job import SweepJob, load_launch
from augbench.sweep.layout import MANIFEST
from augbench.sweep.process import pid_alive, process_start
from augbench.sweep.status import RunStatus, SweepStatus, collect_status, max_array_size, read_manifest, slurm_available
from augbench.threads import default_threads

if TYPE_CHECKING:
    from augbench.rundir import RunConfig

EXECUTORS = ("auto", "inline", "local", "slurm")
DEFAULT_TIME_MIN = 60  # SLURM time limit when neither the grid nor --time gives one
SIGNAL_MARGIN_MIN = 1.5  # submitit asks SLURM for USR2 90 s before the limit

Log = Callable[[str], None]
# How the supervisor and workers start: `python -m` would run a second copy of a module the
# package has already imported (runpy warns); `-c` calls the imported module's main.
_ENTRY = "import sys; from {module} import main; sys.exit(main(sys.argv[1:]))"


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr)


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
    resources: dict[str, Resources] = field(default_factory=dict)  # per benchmark, as submitted

    def summary(self) -> Any:
        """Per (benchmark, method label): runs in the grid, done, alive, failed, submitted now."""
        import pandas as pd

        kind: dict[str, str] = {r: "done" for r in self.done}
        kind.update({r: "alive" for r in self.alive})
        kind.update({r: "failed" for r in self.failed})
        kind.update({r.run_id: "submit" for r in self.submitted})
        rows = [{"benchmark": r.config.benchmark, "method": r.label, "kind": kind.get(r.run_id, "submit")}
                for r in self.runs]
        cols = ["done", "alive", "failed", "submit"]
        if not rows:
            return pd.DataFrame(columns=["benchmark", "method", "runs", *cols])
        df = pd.DataFrame(rows)
        table = pd.crosstab([df["benchmark"], df["method"]], df["kind"]).reindex(columns=cols, fill_value=0)
        table.insert(0, "runs", table.sum(axis=1))
        return table.reset_index()


# --------------------------------------------------------------------------------- planning
def choose_executor(name: str) -> str:
    """`auto` is slurm where `sinfo` answers, local otherwise."""
    if name not in EXECUTORS:
        raise ConfigError(f"unknown executor {name!r}; valid: {', '.join(EXECUTORS)}")
    if name == "auto":
        return "slurm" if slurm_available() else "local"
    return name


def runtime_settings(config: RunConfig, executor: str, resources: Resources | None) -> RunConfig:
    """Bookkeeping settings (`run.*`, outside the identity) suited to the executor.

    No progress bars in workers; under SLURM, mid-epoch checkpoints at most every quarter of
    the time limit (what a preemption or time-out can cost), unless already more frequent.
    """
    settings = dict(config.settings)
    if executor != "inline":
        settings["run.progress"] = False
    if executor == "slurm" and resources is not None and resources.time_min:
        cap = max(1.0, (resources.time_min - SIGNAL_MARGIN_MIN) / 4)
        minutes = settings.get("run.checkpoint_minutes", 0.0) or 0.0
        if minutes <= 0 or minutes > cap:
            settings["run.checkpoint_minutes"] = round(cap, 2)
    return replace(config, settings=settings)


def classify(runs: Sequence[PlannedRun], status: SweepStatus, retry_failed: bool
             ) -> tuple[list[str], list[str], list[str], list[PlannedRun]]:
    """(done, alive, failed-not-retried, to submit): nothing done or alive is ever resubmitted."""
    states = status.by_id()
    done, alive, failed, todo = [], [], [], []
    for run in runs:
        st = states.get(run.run_id)
        if st is None:
            todo.append(run)
        elif st.state == "done":
            done.append(run.run_id)
        elif st.alive:
            alive.append(run.run_id)
        elif st.state == "failed" and not retry_failed:
            failed.append(run.run_id)
        else:  # stalled, cancelled, or failed with --retry-failed: resumes from its checkpoint
            todo.append(run)
    return done, alive, failed, todo


# --------------------------------------------------------------------------------- launch
def launch_sweep(grid: Grid, root: Path | str, *, executor: str = "auto", overrides: Mapping[str, Any] | None = None,
                 seeds: Sequence[int] | None = None, resources: Resources | None = None,
                 max_parallel: int | None = None, dry_run: bool = False, wait: bool = False,
                 retry_failed: bool = False, log: Log = _stderr, poll_seconds: float | None = None,
                 skip_unregistered: bool = False) -> LaunchReport:
    """Expand `grid`, skip done and alive runs, submit the rest; never blocks unless `wait`.

    The inline executor blocks by nature. Every invalid name or value in the grid, the
    overrides or the resources is a one-line ConfigError before anything is submitted
    (with `skip_unregistered`, entries whose method or benchmark is not registered are
    logged and skipped instead).
    """
    root = Path(root)
    executor = choose_executor(executor)
    if max_parallel is not None and max_parallel < 1:
        raise ConfigError(f"--max-parallel must be at least 1, got {max_parallel}")
    expansion = grid.expand(overrides, seeds, skip_unregistered=skip_unregistered)
    for note in expansion.skipped:
        log(f"skipping {note}")
    cli_res = resources or Resources()
    if max_parallel is not None:
        cli_res = cli_res.merged(Resources(array_parallelism=max_parallel))
    res_of = {b: grid.resources_for(b).merged(cli_res) for b in {r.config.benchmark for r in expansion.runs}}
    if executor == "slurm":
        for bench, res in res_of.items():
            if res.time_min is None:
                log(f"note: no time limit for {bench} (grid resources.time or --time); using {DEFAULT_TIME_MIN} min")
                res_of[bench] = replace(res, time_min=DEFAULT_TIME_MIN)
    runs = [PlannedRun(runtime_settings(r.config, executor, res_of[r.config.benchmark]), r.label, r.variant)
            for r in expansion.runs]
    launch_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    status = collect_status(root)
    done, alive, failed, todo = classify(runs, status, retry_failed)
    report = LaunchReport(launch_id, executor, root, runs, done, alive, failed, todo, resources=res_of)
    if dry_run or not todo:
        return report

    manifest = root / MANIFEST
    root.mkdir(parents=True, exist_ok=True)
    grid_text = Path(grid.path).read_text() if grid.path is not None else None
    grid_hash = None if grid_text is None else hashlib.sha256(grid_text.encode()).hexdigest()  # provenance
    if grid_text is not None:
        (root / "grids").mkdir(exist_ok=True)
        (root / "grids" / f"{launch_id}-{grid.name}.toml").write_text(grid_text)
    append_jsonl(manifest, {"event": "launch", "time": time.time(), "launch_id": launch_id, "grid": grid.name,
                            "grid_path": str(grid.path) if grid.path else None,
                            "grid_sha256": grid_hash,
                            "executor": executor,
                            "runs": len(runs), "submit": len(todo), "done": len(done), "alive": len(alive),
                            "failed": len(failed), "host": socket.gethostname(), "pid": os.getpid()})
    if executor == "slurm":
        report.job_ids = _submit_slurm(todo, root, grid.name, launch_id, res_of)
    elif executor == "local":
        report.supervisor_pid = _submit_local(todo, root, launch_id, max_parallel or 1)
    else:
        _run_inline(todo, root, launch_id, log)
    if wait and executor != "inline":
        report.final = wait_for(root, [r.run_id for r in todo], log=log,
                                poll_seconds=poll_seconds or (5.0 if executor == "slurm" else 1.0))
    elif executor == "inline":
        report.final = collect_status(root, scheduler=False)
    return report


def _submit_event(run: PlannedRun, launch_id: str, executor: str, **extra: Any) -> dict[str, Any]:
    c = run.config
    return {"event": "submit", "time": time.time(), "launch_id": launch_id, "run_id": run.run_id,
            "benchmark": c.benchmark, "method": c.method, "seed": c.seed, "label": run.label,
            "variant": run.variant,
            "executor": executor, "host": socket.gethostname(), **extra}


def _run_inline(runs: Sequence[PlannedRun], root: Path, launch_id: str, log: Log) -> None:
    manifest = root / MANIFEST
    for run in runs:
        append_jsonl(manifest, _submit_event(run, launch_id, "inline", pid=os.getpid(),
                                             pid_start=process_start(os.getpid())))
    job = SweepJob(root)
    durations: list[float] = []
    for i, run in enumerate(runs, 1):
        c = run.config
        variant = f" {run.variant}" if run.variant else ""
        name = f"{run.run_id} {c.benchmark}/{run.label}{variant} seed {c.seed}"
        log(f"start  [{i}/{len(runs)}] {name}")
        t0 = time.monotonic()
        try:
            metrics = job(c)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:  # noqa: BLE001 - recorded in the run's status.json; go on
            log(f"failed [{i}/{len(runs)}] {name} after {_duration(time.monotonic() - t0)}: {failure_reason(exc)}")
            continue
        durations.append(time.monotonic() - t0)
        shown = ", ".join(f"{k}={v:.4g}" for k, v in metrics.items() if k in ("acc", "tta_acc")
                          and isinstance(v, (int, float)))
        eta = f"; about {_duration(sum(durations) / len(durations) * (len(runs) - i))} left" if i < len(runs) else ""
        log(f"done   [{i}/{len(runs)}] {name} after {_duration(durations[-1])}: {shown}{eta}")


def _submit_local(runs: Sequence[PlannedRun], root: Path, launch_id: str, max_parallel: int) -> int:
    """Start the detached supervisor; it waits until the submit events are written, then runs."""
    launch_file = root / "launches" / f"{launch_id}.json"
    launch_file.parent.mkdir(parents=True, exist_ok=True)
    launch_file.write_text(json.dumps({
        "launch_id": launch_id, "root": str(root.resolve()), "max_parallel": max_parallel,
        "runs": [{"run_id": r.run_id, "label": r.label, "variant": r.variant, **r.config.to_json()} for r in runs]},
        indent=1))
    logs = root / "logs"
    logs.mkdir(exist_ok=True)
    env = dict(os.environ)
    if "OMP_NUM_THREADS" not in env:  # N workers share the CPUs instead of oversubscribing them (run.threads auto)
        env["OMP_NUM_THREADS"] = str(default_threads(max_parallel))
    with open(logs / f"supervisor-{launch_id}.log", "ab") as out:
        proc = subprocess.Popen([sys.executable, "-c", _ENTRY.format(module="augbench.sweep.launch"),
                                 "supervise", str(launch_file)],
                                stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True, close_fds=True)
    manifest = root / MANIFEST
    for run in runs:
        append_jsonl(manifest, _submit_event(run, launch_id, "local", supervisor_pid=proc.pid,
                                             supervisor_start=process_start(proc.pid)))
    assert proc.stdin is not None
    proc.stdin.close()  # go
    return proc.pid


def _submit_slurm(runs: Sequence[PlannedRun], root: Path, grid_name: str, launch_id: str,
                  res_of: Mapping[str, Resources]) -> dict[str, str]:
    """One job array per resource group, each at most MaxArraySize tasks; submit events per task."""
    import submitit
    from submitit.core.utils import FailedJobError, FailedSubmissionError

    groups: dict[Resources, list[PlannedRun]] = defaultdict(list)
    for run in runs:
        groups[res_of[run.config.benchmark]].append(run)
    limit = max_array_size()
    manifest = root / MANIFEST
    job_ids: dict[str, str] = {}
    for res, group in groups.items():
        executor = submitit.AutoExecutor(folder=root / "slurm" / "%j", cluster="slurm")
        executor.update_parameters(name=f"augbench-{grid_name}", **res.submitit_parameters())
        for start in range(0, len(group), limit):
            chunk = group[start:start + limit]
            try:
                jobs = executor.map_array(SweepJob(root.resolve()), [r.config for r in chunk])
            except (FailedJobError, FailedSubmissionError) as exc:
                first = next((ln for ln in str(exc).splitlines() if ln.strip()), "no message")
                raise ConfigError(f"sbatch refused the jobs ({res.describe()}): {first}") from None
            for run, job in zip(chunk, jobs):
                job_ids[run.run_id] = job.job_id
                append_jsonl(manifest, _submit_event(run, launch_id, "slurm", job_id=job.job_id))
    return job_ids


# --------------------------------------------------------------------------------- wait / cancel
def _run_name(r: RunStatus) -> str:
    variant = f" {r.variant}" if r.variant else ""
    return f"{r.run_id} {r.benchmark}/{r.label}{variant} seed {r.seed}"


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s"


def wait_for(root: Path, run_ids: Sequence[str], *, log: Log = _stderr, poll_seconds: float = 5.0,
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
            if r.state == "running":
                started[r.run_id] = now
                log(f"start  {_run_name(r)}")
            elif r.state in ("done", "failed", "stalled", "cancelled") and before is not None:
                took = now - started[r.run_id] if r.run_id in started else None
                if took is not None and r.state == "done":
                    durations.append(took)
                finished_now = True
                when = f" after {_duration(took)}" if took is not None else ""
                log(f"{r.state:<6} {_run_name(r)}{when}: {r.detail}")
        parallel = max(parallel, sum(r.state == "running" for r in mine))
        left = sum(r.state in ("pending", "running") for r in mine)
        if not left or (deadline is not None and now > deadline):
            return st
        if finished_now and durations:
            eta = sum(durations) / len(durations) * left / parallel
            log(f"       {len(mine) - left}/{len(mine)} finished, about {_duration(eta)} left")
        time.sleep(poll_seconds)


def cancel(root: Path | str, *, log: Log = _stderr) -> list[str]:
    """Stop every alive run of the sweep: scancel its SLURM jobs, SIGTERM local supervisors.

    Local workers share their supervisor's process group, so one signal stops a whole local
    launch. Returns the ids of the runs cancelled; writes a cancel event for each.
    """
    root = Path(root)
    st = collect_status(root)
    subs = read_manifest(root).submissions()
    alive = [r for r in st.runs if r.alive and r.run_id in subs]
    job_ids = sorted({str(subs[r.run_id]["job_id"]) for r in alive if subs[r.run_id].get("executor") == "slurm"})
    pids = sorted({int(subs[r.run_id].get("supervisor_pid") or subs[r.run_id]["pid"])
                   for r in alive if subs[r.run_id].get("executor") in ("local", "inline")})
    for i in range(0, len(job_ids), 200):
        proc = subprocess.run(["scancel", *job_ids[i:i + 200]], capture_output=True, text=True)
        if proc.returncode != 0:
            log(f"scancel: {proc.stderr.strip().splitlines()[0] if proc.stderr.strip() else proc.returncode}")
    for pid in pids:
        if not pid_alive(pid, None):
            continue
        try:
            if pid == os.getpid():
                continue  # an inline launch cancelling itself: nothing to signal
            if os.getpgid(pid) == pid:  # a local supervisor: its own session and process group
                os.killpg(pid, signal.SIGTERM)
            else:
                os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    manifest = root / MANIFEST
    for r in alive:
        sub = subs[r.run_id]
        append_jsonl(manifest, {"event": "cancel", "time": time.time(), "run_id": r.run_id,
                                "executor": sub.get("executor"), "job_id": sub.get("job_id"),
                                "pid": sub.get("supervisor_pid") or sub.get("pid")})
    if alive:
        log(f"cancelled {len(alive)} runs ({len(job_ids)} SLURM jobs, {len(pids)} local processes)")
    else:
        log("nothing to cancel: no run is pending or running")
    return [r.run_id for r in alive]


# --------------------------------------------------------------------------------- supervisor
def supervise(launch_file: Path | str) -> int:
    """Run a local launch's workers, at most `max_parallel` at a time (the detached supervisor)."""
    launch_data = load_launch(launch_file)
    root = Path(launch_data["root"])
    manifest = root / MANIFEST
    n = max(1, int(launch_data["max_parallel"]))
    entries = launch_data["runs"]
    sys.stdin.read()  # the launcher closes our stdin once its submit events are written
    stopping = False

    def _stop(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _stop)
    queue = list(range(len(entries)))
    running: dict[int, tuple[subprocess.Popen[bytes], Any]] = {}
    signalled: set[int] = set()
    (root / "logs").mkdir(parents=True, exist_ok=True)
    while (queue and not stopping) or running:
        while queue and not stopping and len(running) < n:
            i = queue.pop(0)
            out = open(root / "logs" / f"{entries[i]['run_id']}.log", "ab")
            proc = subprocess.Popen([sys.executable, "-c", _ENTRY.format(module="augbench.sweep.job"),
                                     str(launch_file), str(i)],
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
            running[i] = (proc, out)
        time.sleep(0.2)
        for i, (proc, out) in list(running.items()):
            rc = proc.poll()
            if rc is None:
                if stopping and i not in signalled:  # a cancel that signalled only us
                    proc.send_signal(signal.SIGTERM)
                    signalled.add(i)
                continue
            out.close()
            del running[i]
            append_jsonl(manifest, {"event": "exit", "time": time.time(), "run_id": entries[i]["run_id"],
                                    "pid": proc.pid, "rc": rc, "launch_id": launch_data["launch_id"]})
    append_jsonl(manifest, {"event": "supervisor_end", "time": time.time(), "launch_id": launch_data["launch_id"],
                            "pid": os.getpid(), "stopped": stopping})
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2 or args[0] != "supervise":
        print("usage: augbench.sweep.launch.main([\"supervise\", LAUNCH_FILE])", file=sys.stderr)
        return 2
    return supervise(args[1])


if __name__ == "__main__":
    raise SystemExit(main())
