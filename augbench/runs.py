"""A run: (benchmark, method, resolved hyperparameters, seed) -> a run directory with results.

`resolve` validates a configuration completely before anything touches the disk; `execute`
runs it in its directory (`augbench.rundir`): it resumes an interrupted run, returns a finished
one's metrics, refuses a directory that holds another run, and runs the task's prerequisite
runs (e.g. the classifier a fixed-classifier task freezes) first.
"""

from __future__ import annotations

import platform
import subprocess
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from augbench import rundir
from augbench.benchmarks import create_benchmark, get_benchmark
from augbench.errors import AugbenchError, ConfigError
from augbench.methods import get_method
from augbench.overrides import split_overrides
from augbench.rundir import RunConfig, RunLock
from augbench.tasks import get_task


class RunBusy(AugbenchError):
    """Another process holds the run's lock (it is training that run right now)."""


def resolve(benchmark: str, method: str, seed: int = 0, overrides: Mapping[str, Any] | None = None) -> RunConfig:
    """Validate everything before any run starts; benchmark-specific method defaults apply first."""
    bench_cls = get_benchmark(benchmark)
    method_cls = get_method(method)
    if bench_cls.family and method_cls.families and bench_cls.family not in method_cls.families:
        raise ConfigError(f"method {method} does not support the {bench_cls.family!r} family of benchmark "
                          f"{benchmark}; it supports: {', '.join(sorted(method_cls.families))}")
    if method_cls.tasks and bench_cls.task not in method_cls.tasks:
        raise ConfigError(f"method {method} does not support the {bench_cls.task!r} task of benchmark {benchmark}; "
                          f"it supports: {', '.join(sorted(method_cls.tasks))}")
    bench_spec, method_spec = bench_cls.spec(), method_cls.spec()
    settings, hparams = split_overrides(overrides or {}, bench_spec.params, method, method_spec.params,
                                        f"benchmark {benchmark} and method {method}")
    hp = {**bench_cls.method_defaults.get(method, {}), **hparams}
    return RunConfig(benchmark, method, int(seed), bench_spec.resolve(settings), method_spec.resolve(hp))


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def versions() -> dict[str, Any]:
    """Software versions recorded with every run."""
    import torch
    import torchvision

    from augbench import __version__

    return {"python": platform.python_version(), "torch": torch.__version__,
            "torchvision": torchvision.__version__, "augbench": __version__, "git_commit": _git_commit(),
            "platform": platform.platform()}


def run_prerequisites(config: RunConfig) -> None:
    """Finish every prerequisite run of `config`'s task (each waits for a concurrent trainer of it)."""
    task = get_task(config.task or get_benchmark(config.benchmark).task)
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    for pre in task.prerequisites(config):
        with torch.random.fork_rng(devices=devices):  # the caller's RNG never depends on a warm cache
            execute(pre.config, pre.run_dir, wait_for_lock=True)


def execute(config: RunConfig, run_dir: Path | str, *, locked: bool = False,
            wait_for_lock: bool = False) -> dict[str, Any]:
    """Run to completion in `run_dir`: resumes an interrupted run, returns a finished one's metrics.

    The run's lock is taken here unless the caller holds it (`locked`, a sweep job); a second
    process raises `RunBusy` naming the holder (or waits, with `wait_for_lock`). A failure writes
    status "failed" with the reason and traceback, then re-raises.
    """
    run_dir = Path(run_dir)
    existing = rundir.read_config(run_dir)
    if existing is not None and existing.get("run_id") != config.run_id:
        raise ConfigError(f"{run_dir} holds another run ({existing.get('run_id')}: {existing.get('benchmark')} / "
                          f"{existing.get('method')} / seed {existing.get('seed')}); choose another --out")
    status = rundir.read_status(run_dir)
    if rundir.is_done(status) and existing is not None:
        return dict(status["metrics"])  # type: ignore[index]
    lock = RunLock(run_dir)
    if not locked and not lock.acquire(blocking=wait_for_lock):
        raise RunBusy(f"{run_dir} is being trained by {lock.holder()}; wait for it or choose another --out")
    try:
        return _execute_locked(config, run_dir)
    finally:
        lock.release()


def _execute_locked(config: RunConfig, run_dir: Path) -> dict[str, Any]:
    from augbench.train.trainer import Trainer  # the trainer imports models and datasets: only when training

    status = rundir.read_status(run_dir)  # again: another process may have finished it meanwhile
    if rundir.read_config(run_dir) is None:
        rundir.write_config(run_dir, config, versions())
    rundir.touch_heartbeat(run_dir)  # alive from the start (data loading), not only from the first step
    if rundir.is_done(status):
        return dict(status["metrics"])  # type: ignore[index]
    if status is not None:  # a failed run retried
        rundir.clear_status(run_dir)
    run_prerequisites(config)
    header = {"run_id": config.run_id, "benchmark": config.benchmark, "method": config.method, "seed": config.seed}
    try:
        bench = create_benchmark(config.benchmark, config.settings)
        metrics = Trainer(bench, config.method, config.hparams, config.seed, run_dir, header, task=config.task).fit()
    except (KeyboardInterrupt, SystemExit):  # interrupted, not failed: resumable
        raise
    except BaseException as exc:
        rundir.write_status(run_dir, "failed", reason=rundir.failure_reason(exc), traceback=traceback.format_exc())
        raise
    rundir.write_status(run_dir, "done", metrics=metrics)
    return metrics
