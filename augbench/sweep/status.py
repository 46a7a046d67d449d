"""The state of every run of a sweep, read from disk and, where there is one, the scheduler.

States (explicit, so a relaunch treats each correctly and nobody deletes a live run):
- done: `status.json` says so;
- failed: `status.json` holds the reason and traceback (relaunch retries only with --retry-failed);
- running: the run's heartbeat is recent, or the scheduler/worker process runs it;
- pending: submitted and waiting (SLURM queue, or the local supervisor's queue);
- cancelled: `augbench sweep cancel` stopped it;
- stalled: nothing runs it any more (killed, node lost, time limit without requeue): a relaunch
  resumes it from its last checkpoint.

Nothing here raises on a damaged sweep: unreadable manifest lines, records or status files are
listed as problems, and the scheduler being unreachable only means it is not asked.
"""

from __future__ import annotations

import getpass
import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from augbench import rundir
from augbench.rundir import ALIVE_SECONDS, ATTEMPTS, STATES
from augbench.sweep.layout import MANIFEST, RUNS_DIR
from augbench.sweep.process import pid_alive

SWEEP_STATES = tuple(s for s in STATES if s != "absent")  # a sweep's run that never started is stalled
# squeue states of a job that will still run (or runs): anything else has ended.
SLURM_RUNNING = {"RUNNING", "COMPLETING", "CONFIGURING", "RESIZING", "SIGNALING", "STAGE_OUT"}
SLURM_WAITING = {"PENDING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "SUSPENDED", "PREEMPTED"}


# --------------------------------------------------------------------------------- manifest
@dataclass
class Manifest:
    """ROOT/manifest.jsonl read tolerantly: events in file order and the lines it skipped."""

    events: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def submissions(self) -> dict[str, dict[str, Any]]:
        """The latest submit event of each run."""
        out: dict[str, dict[str, Any]] = {}
        for ev in self.events:
            if ev.get("event") == "submit" and "run_id" in ev:
                out[ev["run_id"]] = ev
        return out


def read_manifest(root: Path) -> Manifest:
    """Every readable event of the sweep's manifest, with its position (`_seq`)."""
    out = Manifest()
    path = Path(root) / MANIFEST
    if not path.exists():
        return out
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        out.problems.append(f"{path}: unreadable ({exc.strerror})")
        return out
    for i, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            ev = json.loads(line)
            if not isinstance(ev, dict) or "event" not in ev:
                raise ValueError
        except ValueError:
            out.problems.append(f"{path}:{i}: unreadable manifest line, skipped")
            continue
        ev["_seq"] = i
        out.events.append(ev)
    return out


# --------------------------------------------------------------------------------- processes
# --------------------------------------------------------------------------------- scheduler
def slurm_available() -> bool:
    """True when SLURM's client commands are installed and answer."""
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        return False
    try:
        return subprocess.run(["sinfo", "-h"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def _run(cmd: list[str]) -> str | None:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout if proc.returncode == 0 else None


def slurm_states(job_ids: Iterable[str]) -> dict[str, str]:
    """State of each job id (`123` or array task `123_4`): squeue for live jobs, sacct for ended ones.

    Jobs neither command knows are left out. Array tasks still pending show in squeue as
    `123_[4-9]` without `-r`; `-r` lists them one per line.
    """
    wanted = {str(j) for j in job_ids if j}
    if not wanted or shutil.which("squeue") is None:
        return {}
    states: dict[str, str] = {}
    out = _run(["squeue", "-h", "-r", "-u", getpass.getuser(), "-o", "%i|%T"])
    for line in (out or "").splitlines():
        jid, _, state = line.strip().partition("|")
        if jid in wanted:
            states[jid] = state.strip()
    rest = sorted(wanted - set(states))
    if rest and shutil.which("sacct") is not None:
        for i in range(0, len(rest), 200):
            out = _run(["sacct", "-n", "-X", "-P", "-o", "JobID,State", "-j", ",".join(rest[i:i + 200])])
            for line in (out or "").splitlines():
                jid, _, state = line.strip().partition("|")
                if jid in wanted and jid not in states:
                    states[jid] = state.split()[0] if state.split() else state  # "CANCELLED by 0"
    return states


def max_array_size(default: int = 1001) -> int:
    """MaxArraySize of the cluster (`scontrol show config`): array task ids stay below it."""
    out = _run(["scontrol", "show", "config"]) if shutil.which("scontrol") else None
    for line in (out or "").splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "MaxArraySize" and value.strip().isdigit():
            return int(value.strip())
    return default


# --------------------------------------------------------------------------------- runs
@dataclass
class RunStatus:
    run_id: str
    benchmark: str
    method: str
    label: str
    seed: int | None
    state: str
    detail: str = ""
    variant: str = ""
    executor: str | None = None
    job_id: str | None = None
    run_dir: str = ""
    problems: list[str] = field(default_factory=list)

    @property
    def alive(self) -> bool:
        return self.state in ("pending", "running")


@dataclass
class SweepStatus:
    root: Path
    runs: list[RunStatus]
    problems: list[str]
    scheduler: str | None

    def by_id(self) -> dict[str, RunStatus]:
        return {r.run_id: r for r in self.runs}

    def counts(self) -> Any:
        """A DataFrame: one row per (benchmark, method label), one column per state, and totals."""
        import pandas as pd

        rows = [{"benchmark": r.benchmark, "method": r.label, "state": r.state} for r in self.runs]
        if not rows:
            return pd.DataFrame(columns=["benchmark", "method", *SWEEP_STATES, "total"])
        df = pd.DataFrame(rows)
        table = pd.crosstab([df["benchmark"], df["method"]], df["state"])
        table = table.reindex(columns=list(SWEEP_STATES), fill_value=0)
        table["total"] = table.sum(axis=1)
        return table.reset_index()

    def to_json(self) -> dict[str, Any]:
        return {"root": str(self.root), "scheduler": self.scheduler, "problems": self.problems,
                "runs": [asdict(r) for r in self.runs]}


def _progress(directory: Path, config: Mapping[str, Any] | None, problems: list[str]) -> str:
    """`epoch E/N`: epochs with a validation record, of the configured total; bad lines become problems."""
    done = rundir.epochs_done(directory, problems)
    total = (config or {}).get("settings", {}).get("train.epochs")
    return f"epoch {done}/{total}" if total else f"epoch {done}"


def _run_state(run_id: str, directory: Path, sub: dict[str, Any] | None, later: list[dict[str, Any]],
               sched: Mapping[str, str], now: float) -> RunStatus:
    """The directory's own state (`rundir.run_state`) refined by the manifest and the scheduler."""
    disk = rundir.run_state(directory, now)
    problems = list(disk.problems)
    if disk.config is None and (directory / rundir.CONFIG).exists():
        problems.append(f"{directory / rundir.CONFIG}: unreadable")
    config, status = disk.config, disk.status
    src = config or sub or {}
    rs = RunStatus(run_id, str(src.get("benchmark", "?")), str(src.get("method", "?")),
                   str((sub or {}).get("label") or src.get("method", "?")), src.get("seed"), "stalled",
                   variant=str((sub or {}).get("variant") or ""),
                   executor=(sub or {}).get("executor"), job_id=(sub or {}).get("job_id"), run_dir=str(directory))
    progress = _progress(directory, config, problems)
    rs.problems = problems

    # Worker events since the latest submission: a job writes start/end (no end when killed), the
    # local supervisor writes exit when its worker process is gone, whatever the cause.
    kinds = [ev.get("event") for ev in later]
    last_start = max((i for i, k in enumerate(kinds) if k == "start"), default=-1)
    closed = last_start >= 0 and any(k in ("end", "exit") for k in kinds[last_start + 1:])
    started = last_start >= 0 and not closed
    worker_done = not started and any(k in ("end", "exit", "skip") for k in kinds)

    alive, running = False, False
    ex = (sub or {}).get("executor")
    sched_state = sched.get(str(sub["job_id"])) if ex == "slurm" and sub and sub.get("job_id") else None
    if sched_state is not None:  # the scheduler knows the job: it decides (a killed job's heartbeat lingers)
        alive = sched_state in SLURM_RUNNING or sched_state in SLURM_WAITING
        running = sched_state in SLURM_RUNNING
    elif ex in ("local", "inline") and sub is not None and sub.get("host") == socket.gethostname():
        # on this host the processes decide: a killed worker's heartbeat would look alive for minutes
        pid = sub.get("supervisor_pid", sub.get("pid"))
        supervisor = bool(pid_alive(pid, sub.get("host"), sub.get("supervisor_start", sub.get("pid_start"))))
        worker = started and bool(pid_alive(later[last_start].get("pid"), later[last_start].get("host"),
                                            later[last_start].get("pid_start")))
        alive = worker or (supervisor and not worker_done)
        running = worker or (supervisor and started)
    elif disk.age <= ALIVE_SECONDS and not closed:  # a recent heartbeat: something runs it (remote jobs)
        alive = running = True
    submitted_after_status = sub is not None and status is not None and sub.get("time", 0) > status.get("time", 0)
    has_config = (directory / rundir.CONFIG).exists()

    if disk.state == "done":
        rs.state = "done"
        metrics = (status or {}).get("metrics") or {}
        rs.detail = ", ".join(f"{k}={v:.4g}" for k, v in metrics.items() if k in ("acc", "tta_acc")
                              and isinstance(v, (int, float)))
    elif alive and (status is None or submitted_after_status):
        rs.state = "running" if running else "pending"
        rs.detail = (progress or "started") if running else (f"slurm: {sched_state}" if sched_state else "queued")
    elif disk.state == "failed":
        rs.state = "failed"
        rs.detail = str((status or {}).get("reason", "no reason recorded"))
    elif "cancel" in kinds or (sched_state or "").startswith("CANCELLED"):  # augbench's cancel or a user's scancel
        rs.state = "cancelled"
        rs.detail = f"cancelled at {progress}" if has_config else "cancelled before it started"
    else:
        rs.state = "stalled"
        where = f"interrupted at {progress}" if has_config else "never started"
        why = f" (slurm: {sched_state})" if sched_state else ""
        rs.detail = f"{where}{why}; a relaunch resumes it"
    return rs


def collect_status(root: Path | str, *, scheduler: bool = True, now: float | None = None) -> SweepStatus:
    """The state of every run the manifest submitted or the disk holds."""
    root = Path(root)
    now = time.time() if now is None else now
    manifest = read_manifest(root)
    subs = manifest.submissions()
    later: dict[str, list[dict[str, Any]]] = {}
    for ev in manifest.events:
        rid = ev.get("run_id")
        if rid is None or ev.get("event") == "submit":
            continue
        sub = subs.get(rid)
        if sub is None or ev["_seq"] > sub["_seq"]:
            later.setdefault(rid, []).append(ev)
    run_ids = list(subs)
    runs_root = root / RUNS_DIR
    if runs_root.is_dir():
        on_disk = sorted(p.name for p in runs_root.iterdir() if p.is_dir()
                         and any((p / name).exists() for name in (rundir.CONFIG, ATTEMPTS, rundir.STATUS)))
        run_ids += [r for r in on_disk if r not in subs]
    sched_name = None
    sched: dict[str, str] = {}
    slurm_ids = [str(s["job_id"]) for s in subs.values() if s.get("executor") == "slurm" and s.get("job_id")]
    if scheduler and slurm_ids and shutil.which("squeue") is not None:
        sched_name = "slurm"
        pending = [s for rid, s in subs.items() if s.get("executor") == "slurm"
                   and not rundir.is_done(rundir.read_status(runs_root / rid))]
        sched = slurm_states(str(s["job_id"]) for s in pending if s.get("job_id"))
    runs = [_run_state(rid, runs_root / rid, subs.get(rid), later.get(rid, []), sched, now) for rid in run_ids]
    problems = list(manifest.problems)
    for r in runs:
        problems.extend(r.problems)
    return SweepStatus(root, runs, problems, sched_name)


def format_status(st: SweepStatus, *, show_done: bool = False) -> str:
    """The human report of `augbench sweep status`."""
    lines = [f"sweep {st.root}: {len(st.runs)} runs"
             + (f" (scheduler: {st.scheduler})" if st.scheduler else "")]
    if st.runs:
        lines.append(st.counts().to_string(index=False))
    for state in ("failed", "stalled", "cancelled", "running", "pending") + (("done",) if show_done else ()):
        rows = [r for r in st.runs if r.state == state]
        if not rows:
            continue
        lines.append(f"{state}:")
        for r in rows:
            where = f" [{r.executor} {r.job_id}]" if r.job_id else ""
            extra = f"  (traceback: {Path(r.run_dir) / rundir.STATUS})" if state == "failed" else ""
            variant = f" {r.variant}" if r.variant else ""
            lines.append(f"  {r.run_id} {r.benchmark}/{r.label}{variant} seed {r.seed}{where}: {r.detail}{extra}")
    if st.problems:
        lines.append(f"problems ({len(st.problems)}, skipped, never fatal):")
        lines.extend(f"  {p}" for p in st.problems)
    return "\n".join(lines)


__all__ = ["Manifest", "RunStatus", "SWEEP_STATES", "SweepStatus", "collect_status", "format_status",
           "max_array_size", "read_manifest", "slurm_available", "slurm_states"]
