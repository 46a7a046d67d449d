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

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from augbench.rundir import ALIVE_SECONDS, ATTEMPTS, CONFIG, STATES, STATUS, RunDir, RunState, Snapshot
from augbench.sweep.executors import Liveness, WorkerEvents, executor_of
from augbench.sweeproot import RUNS_DIR, read_manifest

SWEEP_STATES = tuple(s for s in STATES if s != RunState.ABSENT)  # a sweep's run that never started is stalled


# --------------------------------------------------------------------------------- runs
@dataclass
class RunStatus:
    run_id: str
    benchmark: str
    method: str
    label: str
    seed: int | None
    state: RunState
    detail: str = ""
    variant: str = ""
    executor: str | None = None
    job_id: str | None = None
    run_dir: str = ""
    problems: list[str] = field(default_factory=list)

    @property
    def alive(self) -> bool:
        return self.state in (RunState.PENDING, RunState.RUNNING)


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
        import pandas as pd  # pandas: only for the counts table

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


def _progress(run: RunDir, config: Mapping[str, Any] | None, problems: list[str]) -> str:
    """`epoch E/N`: epochs with a validation record, of the configured total; bad lines become problems."""
    done = run.epochs_done(problems)
    total = (config or {}).get("settings", {}).get("train.epochs")
    return f"epoch {done}/{total}" if total else f"epoch {done}"


def _state(disk: Snapshot, live: Liveness, worker: WorkerEvents, sub: Mapping[str, Any] | None) -> RunState:
    """The run directory's own state, refined by what only the manifest and the executor know."""
    status = disk.status
    resubmitted = sub is not None and status is not None and sub.get("time", 0) > status.get("time", 0)
    if disk.state == RunState.DONE:
        return RunState.DONE
    if live.alive and (status is None or resubmitted):
        return RunState.RUNNING if live.running else RunState.PENDING
    if disk.state == RunState.FAILED:
        return RunState.FAILED
    if worker.cancelled or live.cancelled:  # augbench's cancel or a user's scancel
        return RunState.CANCELLED
    return RunState.STALLED


def _detail(state: RunState, disk: Snapshot, live: Liveness, progress: str, started: bool) -> str:
    """The line `sweep status` shows after a run's state."""
    if state == RunState.DONE:
        metrics = (disk.status or {}).get("metrics") or {}
        return ", ".join(f"{k}={v:.4g}" for k, v in metrics.items() if k in ("acc", "tta_acc")
                         and isinstance(v, (int, float)))
    if state == RunState.RUNNING:
        return progress or "started"
    if state == RunState.PENDING:
        return live.note or "queued"
    if state == RunState.FAILED:
        return str((disk.status or {}).get("reason", "no reason recorded"))
    if state == RunState.CANCELLED:
        return f"cancelled at {progress}" if started else "cancelled before it started"
    note = f" ({live.note})" if live.note else ""
    return f"{f'interrupted at {progress}' if started else 'never started'}{note}; a relaunch resumes it"


def _run_state(run_id: str, run: RunDir, sub: dict[str, Any] | None, later: list[dict[str, Any]],
               polled: Mapping[str, str], now: float) -> RunStatus:
    """One run's `RunStatus`: its state (`_state`) and a detail line."""
    disk = run.state(now)
    problems = list(disk.problems)
    if disk.config is None and run.file(CONFIG).exists():
        problems.append(f"{run.file(CONFIG)}: unreadable")
    src, sub_ = disk.config or sub or {}, sub or {}
    worker = WorkerEvents.of(later)
    live = executor_of(sub).alive(sub, worker, polled) if sub is not None else None
    if live is None:  # nobody to ask: a recent heartbeat means something runs it (remote jobs)
        live = Liveness(alive=disk.age <= ALIVE_SECONDS and not worker.closed,
                        running=disk.age <= ALIVE_SECONDS and not worker.closed)
    state = _state(disk, live, worker, sub)
    detail = _detail(state, disk, live, _progress(run, disk.config, problems), run.file(CONFIG).exists())
    return RunStatus(run_id, str(src.get("benchmark", "?")), str(src.get("method", "?")),
                     str(sub_.get("label") or src.get("method", "?")), src.get("seed"), state, detail,
                     variant=str(sub_.get("variant") or ""), executor=sub_.get("executor"), job_id=sub_.get("job_id"),
                     run_dir=str(run.path), problems=problems)


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
                         and any((p / name).exists() for name in (CONFIG, ATTEMPTS, STATUS)))
        run_ids += [r for r in on_disk if r not in subs]
    schedulers: list[str] = []
    polled: dict[str, str] = {}
    if scheduler:  # one query per executor, for the runs not finished yet
        waiting: dict[str, list[dict[str, Any]]] = {}
        for rid, s in subs.items():
            if RunDir(runs_root / rid).finished(rid) is None:
                waiting.setdefault(str(s.get("executor")), []).append(s)
        for name, group in sorted(waiting.items()):
            answer = executor_of(group[0]).poll(group)
            if answer:
                schedulers.append(name)
            polled.update(answer)
    runs = [_run_state(rid, RunDir(runs_root / rid), subs.get(rid), later.get(rid, []), polled, now)
            for rid in run_ids]
    problems = list(manifest.problems)
    for r in runs:
        problems.extend(r.problems)
    return SweepStatus(root, runs, problems, ", ".join(schedulers) or None)


def format_status(st: SweepStatus, *, show_done: bool = False) -> str:
    """The human report of `augbench sweep status`."""
    lines = [f"sweep {st.root}: {len(st.runs)} runs"
             + (f" (scheduler: {st.scheduler})" if st.scheduler else "")]
    if st.runs:
        lines.append(st.counts().to_string(index=False))
    shown = (RunState.FAILED, RunState.STALLED, RunState.CANCELLED, RunState.RUNNING, RunState.PENDING)
    for state in shown + ((RunState.DONE,) if show_done else ()):
        rows = [r for r in st.runs if r.state == state]
        if not rows:
            continue
        lines.append(f"{state}:")
        for r in rows:
            where = f" [{r.executor} {r.job_id}]" if r.job_id else ""
            extra = f"  (traceback: {Path(r.run_dir) / STATUS})" if state == RunState.FAILED else ""
            variant = f" {r.variant}" if r.variant else ""
            lines.append(f"  {r.run_id} {r.benchmark}/{r.label}{variant} seed {r.seed}{where}: {r.detail}{extra}")
    if st.problems:
        lines.append(f"problems ({len(st.problems)}, skipped, never fatal):")
        lines.extend(f"  {p}" for p in st.problems)
    return "\n".join(lines)


__all__ = ["RunStatus", "SWEEP_STATES", "SweepStatus", "collect_status", "format_status"]
