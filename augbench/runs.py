"""A run: (benchmark, method, resolved hyperparameters, seed) -> a run directory with results.

`resolve` validates a configuration completely before anything touches the disk; `execute`
runs it in its directory (`augbench.rundir`): it resumes an interrupted run, returns a finished
one's metrics, refuses a directory that holds another run, and runs the task's prerequisite
runs (e.g. the classifier a fixed-classifier task freezes) first.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from augbench import provenance, rundir
from augbench.benchmarks import get_benchmark
from augbench.errors import AugbenchError, ConfigError
from augbench.methods import get_method
from augbench.overrides import VARIANT, split_overrides
from augbench.rundir import RunConfig, RunLock
from augbench.settings import create_benchmark, settings_spec
from augbench.tasks import get_task
from augbench.threads import apply_threads
from augbench.train.distributed import is_follower


class RunBusy(AugbenchError):
    """Another process holds the run's lock (it is training that run right now)."""


def resolve(benchmark: str, method: str, seed: int = 0, overrides: Mapping[str, Any] | None = None) -> RunConfig:
    """Validate everything before any run starts.

    Settings: the benchmark's and its task's declarations (`augbench.settings`), then the
    overrides. Hyperparameters, each layer over the one before: the method's declared defaults,
    its recipe for the benchmark (`AugmentationMethod.recipes`), the named variant
    (`variant=NAME`), the other overrides.
    """
    bench_cls = get_benchmark(benchmark)
    method_cls = get_method(method)
    if method_cls.tasks and bench_cls.task not in method_cls.tasks:
        raise ConfigError(f"method {method} does not support the {bench_cls.task!r} task of benchmark {benchmark}; "
                          f"it supports: {', '.join(sorted(method_cls.tasks))}")
    bench_spec, method_spec = settings_spec(benchmark), method_cls.spec()
    settings, hparams = split_overrides(overrides or {}, bench_spec.params, method, method_cls.settable(),
                                        f"benchmark {benchmark} and method {method}")
    variant = hparams.pop(VARIANT, None)
    preset = method_cls.variant_preset(str(variant)) if variant is not None else {}
    hp = method_spec.resolve({**method_cls.recipes.get(benchmark, {}), **preset, **hparams})
    check_family(benchmark, method, hp)
    resolved = bench_spec.resolve(settings)
    method_cls.check(hp, resolved)
    return RunConfig(benchmark, method, int(seed), resolved, hp)


def check_family(benchmark: str, method: str, hp: Mapping[str, Any]) -> None:
    """Refuse a configuration that transforms nothing of the benchmark's family.

    The families come from the configuration, not the method's name (`families_for`): Augerino
    with rotation generators is a rotation method and a crop benchmark refuses it, as it refuses
    random-rotation. A method or benchmark without families is unrestricted.
    """
    bench_cls, method_cls = get_benchmark(benchmark), get_method(method)
    if not bench_cls.family or not method_cls.families:
        return
    families = method_cls.families_for(hp)
    if bench_cls.family in families:
        return
    if families == method_cls.families:
        raise ConfigError(f"method {method} does not support the {bench_cls.family!r} family of benchmark "
                          f"{benchmark}; it supports: {', '.join(sorted(families))}")
    what = ", ".join(sorted(families)) or "none of the benchmark families (contradictory or empty hyperparameters)"
    raise ConfigError(f"method {method} as configured transforms {what}, not the {bench_cls.family!r} family of "
                      f"benchmark {benchmark}; change its hyperparameters or the benchmark")


def versions(device: Any = None) -> dict[str, Any]:
    """Software, machine and math libraries recorded with every run (`augbench.provenance`)."""
    return provenance.versions(device)


def run_prerequisites(config: RunConfig) -> None:
    """Finish every prerequisite run of `config`'s task (each waits for a concurrent trainer of it)."""
    task = get_task(config.task or get_benchmark(config.benchmark).task)
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    for pre in task.prerequisites(config, settings_spec(config.benchmark)):
        with torch.random.fork_rng(devices=devices):  # the caller's RNG never depends on a warm cache
            execute(pre.config, pre.run_dir, wait_for_lock=True)


def check_run_dir(run_dir: Path) -> None:
    """Refuse a run directory that cannot be one, before anything is written."""
    for p in (run_dir, *run_dir.parents):
        if p.exists():
            if not p.is_dir():
                what = "is" if p == run_dir else f"lies under {p}, which is"
                raise ConfigError(f"run directory {run_dir} {what} a file, not a folder; choose another --out")
            if not os.access(p, os.W_OK | os.X_OK):
                raise ConfigError(f"run directory {run_dir}: {p} is not writable; choose another --out")
            return


def execute(config: RunConfig, run_dir: Path | str, *, locked: bool = False, wait_for_lock: bool = False,
            announce: Callable[[Any], None] | None = None) -> dict[str, Any]:
    """Run to completion in `run_dir`: resumes an interrupted run, returns a finished one's metrics.

    Everything that can refuse a configuration (device, data, model, method) is checked by
    building the trainer before the directory is created, so a refused run leaves nothing on
    disk. The run's lock is taken here unless the caller holds it (`locked`, a sweep job); a
    second process raises `RunBusy` naming the holder (or waits, with `wait_for_lock`).
    `announce(trainer)` is called once the run is about to train (what it loaded, for the CLI). A
    failure while training writes status "failed" with the reason and traceback, then re-raises.
    """
    run_dir = Path(run_dir)
    check_run_dir(run_dir)
    existing = rundir.read_config(run_dir)
    if existing is not None and existing.get("run_id") != config.run_id:
        raise ConfigError(f"{run_dir} holds another run ({existing.get('run_id')}: {existing.get('benchmark')} / "
                          f"{existing.get('method')} / seed {existing.get('seed')}); choose another --out")
    status = rundir.read_status(run_dir)
    if rundir.is_done(status) and existing is not None:
        return dict(status["metrics"])  # type: ignore[index]
    if is_follower(config.settings):  # a data-parallel process other than rank 0: trains, writes nothing
        run_prerequisites(config)
        apply_threads(config.settings.get("run.threads", 0))
        return dict(build_trainer(config, run_dir).fit())
    try:
        run_prerequisites(config)
        apply_threads(config.settings.get("run.threads", 0))  # before the trainer builds anything
        trainer = build_trainer(config, run_dir)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:
        if locked or existing is not None:  # the run already has a directory (a sweep's, a retry): say why
            if existing is None:
                rundir.write_config(run_dir, config, versions())
            rundir.write_status(run_dir, "failed", reason=rundir.failure_reason(exc),
                                traceback=traceback.format_exc())
        raise
    lock = RunLock(run_dir)
    if not locked and not lock.acquire(blocking=wait_for_lock):
        raise RunBusy(f"{run_dir} is being trained by {lock.holder()}; wait for it or choose another --out")
    try:
        if announce is not None:
            announce(trainer)
        return _train_locked(config, run_dir, trainer)
    finally:
        lock.release()


def build_trainer(config: RunConfig, run_dir: Path) -> Any:
    """The run's trainer (dataset loaded, model and method built); it writes nothing until it trains."""
    from augbench.train.trainer import Trainer  # the trainer imports models and datasets: only when training

    header = {"run_id": config.run_id, "benchmark": config.benchmark, "method": config.method, "seed": config.seed}
    bench = create_benchmark(config.benchmark, config.settings)
    return Trainer(bench, config.method, config.hparams, config.seed, run_dir, header, task=config.task)


def _train_locked(config: RunConfig, run_dir: Path, trainer: Any) -> dict[str, Any]:
    status = rundir.read_status(run_dir)  # again: another process may have finished it meanwhile
    if rundir.read_config(run_dir) is None:
        rundir.write_config(run_dir, config, versions(trainer.device))
    rundir.touch_heartbeat(run_dir)  # alive from the start, not only from the first step
    if rundir.is_done(status):
        return dict(status["metrics"])  # type: ignore[index]
    if status is not None:  # a failed run retried
        rundir.clear_status(run_dir)
    try:
        metrics: dict[str, Any] = trainer.fit()
    except (KeyboardInterrupt, SystemExit):  # interrupted, not failed: resumable
        raise
    except BaseException as exc:
        rundir.write_status(run_dir, "failed", reason=rundir.failure_reason(exc), traceback=traceback.format_exc())
        raise
    rundir.write_status(run_dir, "done", metrics=metrics, wall_time=trainer.elapsed())
    return metrics
