"""The job every executor runs: one run of a sweep, resumable, safe to start twice.

`SweepJob(root)(config)` runs `augbench.runs.execute` in ROOT/runs/<run_id>. Around it:
- a lock (`flock` on the run's `.lock`): a second process given the same run (two launches,
  a requeue racing a stale job) returns at once instead of training the run twice;
- a heartbeat thread touching `<run>/heartbeat` every HEARTBEAT_SECONDS from the very start
  (dataset loading included, where the trainer's own heartbeat is silent), so `status` and
  relaunches can tell a live run from a dead one;
- `start`/`end` events in the sweep manifest, and `<run>/attempts.jsonl`: one line per start
  with the scheduler's job id, the restart count and the checkpoint it resumed from.

Preemption and time limits (SLURM): the job is a `submitit.helpers.Checkpointable`. On the
USR2 signal submitit calls `checkpoint()`, which resubmits the same callable and config, and
requeues the job; the new attempt resumes from the trainer's last checkpoint (exact resume:
model, optimizers, RNG, data order, records offset), so it ends with the numbers of an
uninterrupted run. What is lost is the work since that checkpoint, bounded by
`run.checkpoint_minutes` (the launcher caps it below the time limit). `scontrol requeue`
kills and restarts the job without the signal; the on-disk checkpoint serves the same way.

`main([LAUNCH_FILE, INDEX])` runs entry INDEX of a launch file (the local executor's worker
processes, started as `python -c ...`).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import submitit

from augbench import rundir
from augbench.rundir import ATTEMPTS, HEARTBEAT_SECONDS, RunConfig, RunLock, append_jsonl
from augbench.sweep.layout import MANIFEST, run_dir
from augbench.sweep.process import process_start


def scheduler_job() -> dict[str, Any]:
    """Who runs this process: SLURM job id (array form `A_T` for array tasks) and restart count."""
    env = os.environ
    info: dict[str, Any] = {"host": socket.gethostname(), "pid": os.getpid(), "pid_start": process_start(os.getpid())}
    if "SLURM_JOB_ID" in env:
        if "SLURM_ARRAY_JOB_ID" in env and "SLURM_ARRAY_TASK_ID" in env:
            info["job_id"] = f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"
        else:
            info["job_id"] = env["SLURM_JOB_ID"]
        info["restart"] = int(env.get("SLURM_RESTART_COUNT", "0") or 0)
    return info


def checkpoint_position(directory: Path) -> dict[str, int] | None:
    """Epoch and step of the checkpoint the run will resume from, read without loading tensors (mmap)."""
    import torch  # only a job that starts a run needs it

    for name in (rundir.CHECKPOINT, rundir.CHECKPOINT_PREVIOUS):  # the trainer's order of preference
        path = directory / name
        if not path.exists():
            continue
        try:
            ck = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            return {"epoch": int(ck["epoch"]), "step": int(ck["global_step"])}
        except Exception:  # noqa: BLE001 - unreadable: the trainer falls back and says so
            continue
    return None


class _Heartbeat:
    """Touches `<run>/heartbeat` from a daemon thread until stopped (dies with the process)."""

    def __init__(self, directory: Path, every: float = HEARTBEAT_SECONDS) -> None:
        self.directory, self.every = directory, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="augbench-heartbeat", daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                rundir.touch_heartbeat(self.directory)
            except OSError:
                pass
            self._stop.wait(self.every)

    def __enter__(self) -> _Heartbeat:
        rundir.touch_heartbeat(self.directory)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()


@contextlib.contextmanager
def _stop_at_checkpoint_on_sigterm() -> Iterator[None]:
    """While a run trains, SIGTERM asks the trainer to checkpoint after its current step and exit.

    SLURM sends SIGTERM on scancel, preemption and requeue, then SIGKILL after KillWait;
    submitit ignores SIGTERM, so without this the grace period trains on and loses that work.
    """
    from augbench.train.trainer import STOP  # imports torch: only a job that trains needs it

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    STOP.clear()
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: STOP.set())
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        STOP.clear()


class SweepJob(submitit.helpers.Checkpointable):
    """Run one config of a sweep in ROOT/runs/<run_id>; returns its final metrics.

    Picklable (only the root path is state), so submitit can ship it to a job and resubmit it
    from `checkpoint()` (inherited: the same callable with the same config).
    """

    def __init__(self, root: str | Path) -> None:
        self.root = str(root)

    def __call__(self, config: RunConfig) -> dict[str, Any]:
        from augbench.runs import execute  # imports torch: only the job itself needs it
        from augbench.train.distributed import is_follower

        root = Path(self.root)
        directory = run_dir(root, config.run_id)
        status = rundir.read_status(directory)
        if rundir.is_done(status):  # e.g. a requeue racing the end
            return dict(status["metrics"])  # type: ignore[index]
        if is_follower(config.settings):  # another task of a data-parallel job: rank 0 keeps the books
            with _stop_at_checkpoint_on_sigterm():
                return execute(config, directory, locked=True)
        directory.mkdir(parents=True, exist_ok=True)
        who = scheduler_job()
        manifest = root / MANIFEST
        with RunLock(directory) as lock:
            if not lock.acquire():
                append_jsonl(manifest, {"event": "skip", "time": time.time(), "run_id": config.run_id,
                                        "reason": f"already running in {lock.holder()}", **who})
                return {"skipped": "already running in another process"}
            resumed = checkpoint_position(directory)
            start = {"time": time.time(), "run_id": config.run_id, "resumed_from": resumed, **who}
            append_jsonl(directory / ATTEMPTS, start)
            append_jsonl(manifest, {"event": "start", **start})
            state, reason = "interrupted", None
            try:
                with _Heartbeat(directory), _stop_at_checkpoint_on_sigterm():
                    metrics = execute(config, directory, locked=True)
                state = "done"
                return metrics
            except (KeyboardInterrupt, SystemExit):
                raise  # preempted, requeued or cancelled: resumable, not failed
            except BaseException as exc:
                state, reason = "failed", rundir.failure_reason(exc)
                raise
            finally:
                append_jsonl(manifest, {"event": "end", "time": time.time(), "run_id": config.run_id,
                                        "state": state, "reason": reason, **who})


def load_launch(path: Path | str) -> dict[str, Any]:
    """A launch file written by the local executor: root and the runs' configs."""
    return json.loads(Path(path).read_text())


def main(argv: list[str] | None = None) -> int:
    """Worker of the local executor: runs entry INDEX of LAUNCH_FILE."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: augbench.sweep.job.main([LAUNCH_FILE, INDEX])", file=sys.stderr)
        return 2

    def _terminate(signum: int, frame: Any) -> None:  # cancel: stop as an interruption, not a failure
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _terminate)
    launch = load_launch(args[0])
    entry = launch["runs"][int(args[1])]
    try:
        SweepJob(launch["root"])(RunConfig.from_json(entry, expect_id=entry["run_id"]))
    except SystemExit as exc:
        return int(exc.code) if isinstance(exc.code, int) else 1
    except Exception:  # noqa: BLE001 - also in the run's status.json when execute got that far
        traceback.print_exc()
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
