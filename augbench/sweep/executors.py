"""Executors: how a sweep's runs are started, watched and stopped. A new executor is one class here.

    inline  one run after another in the launching process (blocks);
    local   a detached supervisor process runs at most N workers at a time and survives the
            launching shell (unlike submitit's LocalExecutor, which starts every job at once and
            kills them after its timeout); its pid is in the manifest, `sweep cancel` stops it;
    slurm   submitit's AutoExecutor, one job array per group of runs with the same resources,
            split below the cluster's MaxArraySize; jobs are `SweepJob`s, requeued on preemption.

An `Executor` has its runtime settings (`runtime_settings`: bookkeeping settings outside the
identity), `submit` (writes one submit event per run into the manifest), `poll` (what its
scheduler says about submitted jobs, in one call), `alive` (whether a submitted run is alive,
from its submit event, the worker events since and the poll) and `cancel`. `sweep status`,
`launch` and `cancel` ask the executor named in a run's submit event and never branch on names.
A new one:

    class MyQueue(Executor):
        name = "myqueue"
        def submit(self, runs, launch):      # run SweepJob(launch.root, launch.provenance)(run.config)
            ...                              # somewhere; append self.submit_event(run, launch, job_id=...)
        def alive(self, sub, worker, polled):
            ...                              # Liveness(alive=..., running=...), None if it cannot tell
        def cancel(self, subs, log):
            ...
    EXECUTORS[MyQueue.name] = MyQueue        # `sweep launch --executor myqueue`

`main(["supervise", LAUNCH_FILE])` is the local supervisor (started as `python -c ...`).
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

import submitit
from submitit.core.utils import FailedJobError, FailedSubmissionError

from augbench.errors import ConfigError
from augbench.log import configure, logger
from augbench.progress import duration
from augbench.rundir import RunConfig, append_jsonl, failure_reason
from augbench.sweep.grid import PlannedRun, Resources
from augbench.sweep.job import SweepJob, load_launch
from augbench.sweep.process import pid_alive, process_start
from augbench.sweeproot import MANIFEST
from augbench.threads import default_threads

Log = Callable[[str], None]
SIGNAL_MARGIN_MIN = 1.5  # submitit asks SLURM for USR2 90 s before the limit
DEFAULT_TIME_MIN = 60  # SLURM time limit when neither the grid nor --time gives one
# How the supervisor and workers start: `python -m` would run a second copy of a module the
# package has already imported (runpy warns); `-c` calls the imported module's main.
_ENTRY = "import sys; from {module} import main; sys.exit(main(sys.argv[1:]))"
# squeue states of a job that will still run (or runs): anything else has ended.
SLURM_RUNNING = {"RUNNING", "COMPLETING", "CONFIGURING", "RESIZING", "SIGNALING", "STAGE_OUT"}
SLURM_WAITING = {"PENDING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "SUSPENDED", "PREEMPTED"}


@dataclass(frozen=True)
class Launch:
    """One launch of a grid into a sweep root: what an executor needs to submit its runs."""

    root: Path
    launch_id: str
    grid: str = ""
    provenance: Mapping[str, Any] = field(default_factory=dict)  # each run's attempts record it
    max_parallel: int = 1
    resources: Mapping[str, Resources] = field(default_factory=dict)  # per benchmark
    log: Log = logger.info

    @property
    def manifest(self) -> Path:
        return self.root / MANIFEST


@dataclass
class Submitted:
    """What a submission started: scheduler job ids by run id, or the local supervisor's pid."""

    job_ids: dict[str, str] = field(default_factory=dict)
    supervisor_pid: int | None = None


@dataclass(frozen=True)
class WorkerEvents:
    """The worker events of one run since its latest submission: a job writes start/end (no end when
    killed), the local supervisor writes exit when its worker process is gone, whatever the cause."""

    kinds: tuple[str, ...] = ()
    last_start: Mapping[str, Any] | None = None  # the latest start event, while no end or exit followed it

    @classmethod
    def of(cls, events: Sequence[Mapping[str, Any]]) -> WorkerEvents:
        kinds = tuple(str(ev.get("event")) for ev in events)
        last = max((i for i, k in enumerate(kinds) if k == "start"), default=-1)
        closed = last >= 0 and any(k in ("end", "exit") for k in kinds[last + 1:])
        return cls(kinds, events[last] if last >= 0 and not closed else None)

    @property
    def started(self) -> bool:
        """A worker started the run and has not ended."""
        return self.last_start is not None

    @property
    def closed(self) -> bool:
        """A worker started it and has ended since."""
        return "start" in self.kinds and not self.started

    @property
    def worker_done(self) -> bool:
        """No worker holds it and one has ended, exited or skipped it."""
        return not self.started and any(k in ("end", "exit", "skip") for k in self.kinds)

    @property
    def cancelled(self) -> bool:
        return "cancel" in self.kinds


@dataclass(frozen=True)
class Liveness:
    """What an executor knows about a submitted run: alive (will run or runs), running, a note for the user."""

    alive: bool
    running: bool
    note: str = ""  # e.g. "slurm: PENDING"
    cancelled: bool = False  # the scheduler says it was cancelled (a user's scancel)


class Executor:
    """How runs are started, watched and stopped (see the module docstring)."""

    name: ClassVar[str]
    blocks: ClassVar[bool] = False  # runs in the launching process: the launch returns when they end
    poll_seconds: ClassVar[float] = 1.0  # how often `launch --wait` looks

    @classmethod
    def available(cls) -> bool:
        return True

    def resources(self, res_of: dict[str, Resources], log: Log) -> dict[str, Resources]:
        """The resources of each benchmark as submitted (default: as given)."""
        return res_of

    def runtime_settings(self, config: RunConfig, resources: Resources | None) -> RunConfig:
        """Bookkeeping settings (`run.*`, outside the identity) suited to the executor: no progress bars in workers."""
        return replace(config, settings={**config.settings, "run.progress": False})

    def submit(self, runs: Sequence[PlannedRun], launch: Launch) -> Submitted:
        raise NotImplementedError

    def plan(self, resources: Mapping[str, Resources]) -> list[str]:
        """Lines `sweep launch` prints about the plan (default: none)."""
        return []

    def describe(self, submitted: Submitted, n_runs: int, max_parallel: int) -> str | None:
        """The line `sweep launch` prints after submitting (None: nothing to add)."""
        return None

    def poll(self, subs: Iterable[Mapping[str, Any]]) -> dict[str, str]:
        """The scheduler's state of each submitted job it knows, by job id (one query for all)."""
        return {}

    def alive(self, sub: Mapping[str, Any], worker: WorkerEvents, polled: Mapping[str, str]) -> Liveness | None:
        """Whether the run of submit event `sub` is alive; None when this executor cannot tell from here."""
        return None

    def cancel(self, subs: Sequence[Mapping[str, Any]], log: Log) -> int:
        """Stop the jobs of these submit events; returns how many jobs or processes it signalled."""
        return 0

    def submit_event(self, run: PlannedRun, launch: Launch, **extra: Any) -> dict[str, Any]:
        c = run.config
        return {"event": "submit", "time": time.time(), "launch_id": launch.launch_id, "run_id": run.run_id,
                "benchmark": c.benchmark, "method": c.method, "seed": c.seed, "label": run.label,
                "variant": run.variant, "executor": self.name, "host": socket.gethostname(), **extra}


# --------------------------------------------------------------------------------- this host
class _ThisHost(Executor):
    """Processes on the launching host: their pids (with start times) say whether a run is alive."""

    def alive(self, sub: Mapping[str, Any], worker: WorkerEvents, polled: Mapping[str, str]) -> Liveness | None:
        if sub.get("host") != socket.gethostname():
            return None  # on another host only the heartbeat can tell
        # the processes decide: a killed worker's heartbeat would look alive for minutes
        pid = sub.get("supervisor_pid", sub.get("pid"))
        supervisor = bool(pid_alive(pid, sub.get("host"), sub.get("supervisor_start", sub.get("pid_start"))))
        start = worker.last_start
        running = start is not None and bool(pid_alive(start.get("pid"), start.get("host"), start.get("pid_start")))
        return Liveness(alive=running or (supervisor and not worker.worker_done),
                        running=running or (supervisor and worker.started))

    def cancel(self, subs: Sequence[Mapping[str, Any]], log: Log) -> int:
        """SIGTERM the supervisors: local workers share their supervisor's process group (one signal, one launch)."""
        pids = sorted({int(s.get("supervisor_pid") or s["pid"]) for s in subs})
        for pid in pids:
            if not pid_alive(pid, None) or pid == os.getpid():  # an inline launch cancelling itself: nothing to do
                continue
            try:
                if os.getpgid(pid) == pid:  # a local supervisor: its own session and process group
                    os.killpg(pid, signal.SIGTERM)
                else:
                    os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        return len(pids)


class InlineExecutor(_ThisHost):
    """One run after another in this process (blocks); progress bars stay on."""

    name = "inline"
    blocks = True

    def runtime_settings(self, config: RunConfig, resources: Resources | None) -> RunConfig:
        return config

    def submit(self, runs: Sequence[PlannedRun], launch: Launch) -> Submitted:
        for run in runs:
            append_jsonl(launch.manifest, self.submit_event(run, launch, pid=os.getpid(),
                                                            pid_start=process_start(os.getpid())))
        job = SweepJob(launch.root, launch.provenance)
        durations: list[float] = []
        log = launch.log
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
                log(f"failed [{i}/{len(runs)}] {name} after {duration(time.monotonic() - t0)}: "
                    f"{failure_reason(exc)}")
                continue
            durations.append(time.monotonic() - t0)
            shown = ", ".join(f"{k}={v:.4g}" for k, v in metrics.items() if k in ("acc", "tta_acc")
                              and isinstance(v, (int, float)))
            eta = f"; about {duration(sum(durations) / len(durations) * (len(runs) - i))} left" if i < len(runs) \
                else ""
            log(f"done   [{i}/{len(runs)}] {name} after {duration(durations[-1])}: {shown}{eta}")
        return Submitted()


class LocalExecutor(_ThisHost):
    """A detached supervisor running at most `max_parallel` worker processes."""

    name = "local"

    def submit(self, runs: Sequence[PlannedRun], launch: Launch) -> Submitted:
        """Start the detached supervisor; it waits until the submit events are written, then runs."""
        root = launch.root
        launch_file = root / "launches" / f"{launch.launch_id}.json"
        launch_file.parent.mkdir(parents=True, exist_ok=True)
        launch_file.write_text(json.dumps({
            "launch_id": launch.launch_id, "root": str(root.resolve()), "max_parallel": launch.max_parallel,
            "provenance": dict(launch.provenance),
            "runs": [{"run_id": r.run_id, "label": r.label, "variant": r.variant, **r.config.to_json()}
                     for r in runs]}, indent=1))
        logs = root / "logs"
        logs.mkdir(exist_ok=True)
        env = dict(os.environ)
        if "OMP_NUM_THREADS" not in env:  # N workers share the CPUs instead of oversubscribing them (run.threads auto)
            env["OMP_NUM_THREADS"] = str(default_threads(launch.max_parallel))
        with open(logs / f"supervisor-{launch.launch_id}.log", "ab") as out:
            proc = subprocess.Popen([sys.executable, "-c", _ENTRY.format(module=__name__), "supervise",
                                     str(launch_file)],
                                    stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT, env=env,
                                    start_new_session=True, close_fds=True)
        for run in runs:
            append_jsonl(launch.manifest, self.submit_event(run, launch, supervisor_pid=proc.pid,
                                                            supervisor_start=process_start(proc.pid)))
        assert proc.stdin is not None
        proc.stdin.close()  # go
        return Submitted(supervisor_pid=proc.pid)

    def describe(self, submitted: Submitted, n_runs: int, max_parallel: int) -> str | None:
        return (f"submitted {n_runs} runs to local supervisor pid {submitted.supervisor_pid} "
                f"(at most {max_parallel} at a time)")


# --------------------------------------------------------------------------------- SLURM
def _run(cmd: list[str]) -> str | None:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout if proc.returncode == 0 else None


def slurm_available() -> bool:
    """True when SLURM's client commands are installed and answer."""
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        return False
    try:
        return subprocess.run(["sinfo", "-h"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


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


class SlurmExecutor(Executor):
    """submitit job arrays; squeue and sacct say which jobs live."""

    name = "slurm"
    poll_seconds = 5.0

    @classmethod
    def available(cls) -> bool:
        return slurm_available()

    def resources(self, res_of: dict[str, Resources], log: Log) -> dict[str, Resources]:
        out = dict(res_of)
        for bench, res in res_of.items():
            if res.time_min is None:
                log(f"note: no time limit for {bench} (grid resources.time or --time); using {DEFAULT_TIME_MIN} min")
                out[bench] = replace(res, time_min=DEFAULT_TIME_MIN)
        return out

    def runtime_settings(self, config: RunConfig, resources: Resources | None) -> RunConfig:
        """Also mid-epoch checkpoints at most every quarter of the time limit (what a preemption or time-out
        can cost), unless already more frequent."""
        config = super().runtime_settings(config, resources)
        if resources is None or not resources.time_min:
            return config
        settings = dict(config.settings)
        cap = max(1.0, (resources.time_min - SIGNAL_MARGIN_MIN) / 4)
        minutes = settings.get("run.checkpoint_minutes", 0.0) or 0.0
        if minutes <= 0 or minutes > cap:
            settings["run.checkpoint_minutes"] = round(cap, 2)
        return replace(config, settings=settings)

    def submit(self, runs: Sequence[PlannedRun], launch: Launch) -> Submitted:
        """One job array per resource group, each at most MaxArraySize tasks; submit events per task."""
        groups: dict[Resources, list[PlannedRun]] = defaultdict(list)
        for run in runs:
            groups[launch.resources[run.config.benchmark]].append(run)
        limit = max_array_size()
        out = Submitted()
        for res, group in groups.items():
            executor = submitit.AutoExecutor(folder=launch.root / "slurm" / "%j", cluster="slurm")
            executor.update_parameters(name=f"augbench-{launch.grid}", **res.submitit_parameters())
            for start in range(0, len(group), limit):
                chunk = group[start:start + limit]
                try:
                    jobs = executor.map_array(SweepJob(launch.root.resolve(), launch.provenance),
                                              [r.config for r in chunk])
                except (FailedJobError, FailedSubmissionError) as exc:
                    first = next((ln for ln in str(exc).splitlines() if ln.strip()), "no message")
                    raise ConfigError(f"sbatch refused the jobs ({res.describe()}): {first}") from None
                for run, job in zip(chunk, jobs):
                    out.job_ids[run.run_id] = job.job_id
                    append_jsonl(launch.manifest, self.submit_event(run, launch, job_id=job.job_id))
        return out

    def plan(self, resources: Mapping[str, Resources]) -> list[str]:
        return [f"resources {bench}: {res.describe()}" for bench, res in sorted(resources.items())]

    def describe(self, submitted: Submitted, n_runs: int, max_parallel: int) -> str | None:
        arrays = sorted({j.split("_")[0] for j in submitted.job_ids.values()})
        return f"submitted {n_runs} runs as SLURM job(s) {', '.join(arrays)}"

    def poll(self, subs: Iterable[Mapping[str, Any]]) -> dict[str, str]:
        return slurm_states(str(s["job_id"]) for s in subs if s.get("job_id"))

    def alive(self, sub: Mapping[str, Any], worker: WorkerEvents, polled: Mapping[str, str]) -> Liveness | None:
        state = polled.get(str(sub.get("job_id"))) if sub.get("job_id") else None
        if state is None:
            return None  # the scheduler does not know the job (or was not asked)
        # the scheduler decides: a killed job's heartbeat lingers
        return Liveness(alive=state in SLURM_RUNNING or state in SLURM_WAITING, running=state in SLURM_RUNNING,
                        note=f"slurm: {state}", cancelled=state.startswith("CANCELLED"))

    def cancel(self, subs: Sequence[Mapping[str, Any]], log: Log) -> int:
        job_ids = sorted({str(s["job_id"]) for s in subs if s.get("job_id")})
        for i in range(0, len(job_ids), 200):
            proc = subprocess.run(["scancel", *job_ids[i:i + 200]], capture_output=True, text=True)
            if proc.returncode != 0:
                log(f"scancel: {proc.stderr.strip().splitlines()[0] if proc.stderr.strip() else proc.returncode}")
        return len(job_ids)


# --------------------------------------------------------------------------------- the registry
EXECUTORS: dict[str, type[Executor]] = {cls.name: cls for cls in (InlineExecutor, LocalExecutor, SlurmExecutor)}


def choose_executor(name: str) -> Executor:
    """The executor `name`; `auto` is slurm where `sinfo` answers, local otherwise."""
    if name != "auto" and name not in EXECUTORS:
        raise ConfigError(f"unknown executor {name!r}; valid: {', '.join(('auto', *EXECUTORS))}")
    if name == "auto":
        name = SlurmExecutor.name if SlurmExecutor.available() else LocalExecutor.name
    return EXECUTORS[name]()


def executor_of(sub: Mapping[str, Any] | None) -> Executor:
    """The executor a submit event names (an unknown or missing name: one that cannot tell whether a run is alive)."""
    cls = EXECUTORS.get(str((sub or {}).get("executor")))
    return cls() if cls is not None else Executor()


# --------------------------------------------------------------------------------- local supervisor
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
    configure()
    if len(args) != 2 or args[0] != "supervise":
        logger.error('usage: augbench.sweep.executors.main(["supervise", LAUNCH_FILE])')
        return 2
    return supervise(args[1])


if __name__ == "__main__":
    raise SystemExit(main())
