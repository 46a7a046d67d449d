"""The job every executor runs: one run of a sweep, resumable, safe to start twice.

`SweepJob(root, launch)(config)` runs `augbench.runs.execute` in ROOT/runs/<run_id>. Around it:
- a lock (`flock` on the run's `.lock`): a second process given the same run (two launches,
  a requeue racing a stale job) returns at once instead of training the run twice;
- `start`/`end` events in the sweep manifest; `execute` starts the run's heartbeat at once
  (dataset loading included) and writes `<run>/attempts.jsonl`: one line per start with the
  scheduler's job id, the restart count, the checkpoint it resumed from and the launch (grid
  name, file and hash), so a run directory carries its own provenance.

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
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import submitit

from augbench.distenv import is_follower
from augbench.log import configure, logger
from augbench.rundir import RunConfig, RunDir, RunState, append_jsonl, failure_reason
from augbench.stop import STOP
from augbench.sweep.process import process_start
from augbench.sweeproot import MANIFEST, run_dir

INTERRUPTED = "interrupted"  # the outcome an end event records for a job stopped before the run ended (resumable)


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




@contextlib.contextmanager
def _stop_at_checkpoint_on_sigterm() -> Iterator[None]:
    """While a run trains, SIGTERM asks the trainer to checkpoint after its current step and exit.

    SLURM sends SIGTERM on scancel, preemption and requeue, then SIGKILL after KillWait;
    submitit ignores SIGTERM, so without this the grace period trains on and loses that work.
    """
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

    Picklable (the root path and the launch's provenance are its state), so submitit can ship it
    to a job and resubmit it from `checkpoint()` (inherited: the same callable with the same config).
    """

    def __init__(self, root: str | Path, launch: Mapping[str, Any] | None = None) -> None:
        self.root = str(root)
        self.launch = dict(launch or {})  # launch_id, grid, grid_file, grid_sha256: into each attempt

    def __call__(self, config: RunConfig) -> dict[str, Any]:
        from augbench.runs import execute  # imports torch: only the job itself needs it

        configure()  # a SLURM job enters here (idempotent where the command line configured it)
        root = Path(self.root)
        run = RunDir(run_dir(root, config.run_id))
        finished = run.finished(config.run_id)
        if finished is not None:  # e.g. a requeue racing the end
            return finished
        if is_follower(config.settings):  # another task of a data-parallel job: rank 0 keeps the books
            with _stop_at_checkpoint_on_sigterm():
                return execute(config, run.path, locked=True)
        run.path.mkdir(parents=True, exist_ok=True)
        who = scheduler_job()
        manifest = root / MANIFEST
        with run.lock() as lock:
            if not lock.acquire():
                append_jsonl(manifest, {"event": "skip", "time": time.time(), "run_id": config.run_id,
                                        "reason": f"already running in {lock.holder()}", **who})
                return {"skipped": "already running in another process"}
            append_jsonl(manifest, {"event": "start", "time": time.time(), "run_id": config.run_id, **who})
            state, reason = INTERRUPTED, None
            try:
                with _stop_at_checkpoint_on_sigterm():
                    metrics = execute(config, run.path, locked=True, attempt={**who, **self.launch})
                state = RunState.DONE
                return metrics
            except (KeyboardInterrupt, SystemExit):
                raise  # preempted, requeued or cancelled: resumable, not failed
            except BaseException as exc:
                state, reason = RunState.FAILED, failure_reason(exc)
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
    configure()
    if len(args) != 2:
        logger.error("usage: augbench.sweep.job.main([LAUNCH_FILE, INDEX])")
        return 2

    def _terminate(signum: int, frame: Any) -> None:  # cancel: stop as an interruption, not a failure
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _terminate)
    launch = load_launch(args[0])
    entry = launch["runs"][int(args[1])]
    try:
        SweepJob(launch["root"], launch.get("provenance"))(RunConfig.from_json(entry, expect_id=entry["run_id"]))
    except SystemExit as exc:
        return int(exc.code) if isinstance(exc.code, int) else 1
    except Exception:  # noqa: BLE001 - also in the run's status.json when execute got that far
        logger.exception(f"run {entry['run_id']} failed")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
