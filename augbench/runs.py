"""A run: (benchmark, method, resolved hyperparameters, seed) -> a run directory with results.

`resolve` validates a configuration completely before anything touches the disk; `execute`
runs it in its directory (`augbench.rundir`): it resumes an interrupted run, returns a finished
one's metrics, refuses a directory that holds another run, and runs the task's prerequisite
runs (e.g. the classifier a fixed-classifier task freezes) first.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from augbench import provenance
from augbench.benchmarks import get_benchmark
from augbench.distenv import is_follower
from augbench.errors import AugbenchError, ConfigError
from augbench.methods import get_method
from augbench.outpaths import check_folder
from augbench.overrides import VARIANT, split_overrides
from augbench.rundir import RunConfig, RunDir, RunState
from augbench.settings import create_benchmark, settings_spec
from augbench.tasks import get_task
from augbench.threads import apply_threads
from augbench.train.checkpoint import checkpoint_position, checkpoint_run_id


class RunBusy(AugbenchError):
    """Another process holds the run's lock (it is training that run right now)."""


def resolve(benchmark: str, method: str, seed: int = 0, overrides: Mapping[str, Any] | None = None) -> RunConfig:
    """Validate everything before any run starts.

    Settings: the benchmark's and its task's declarations (`augbench.settings`), then the
    overrides. Hyperparameters, each layer over the one before: the method's declared defaults,
    its recipe for the benchmark (`AugmentationMethod.recipes`), the named variant
    (`variant=NAME`), the other overrides. The config carries what readers of its run directory
    need and must not compute from the registries: its identity, the benchmark's family and
    task, the method's variant name.
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
    hp = method_cls.derive(hp, resolved)
    method_cls.check(hp, resolved)
    return RunConfig.of(benchmark, method, int(seed), resolved, hp, bench_spec=bench_spec, method_spec=method_spec,
                        family=bench_cls.family or "", benchmark_task=bench_cls.task,
                        variant=method_cls.variant_name(hp, bench_cls.family or ""))


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
    check_folder(run_dir, "run directory", "--out")


def execute(config: RunConfig, run_dir: Path | str, *, locked: bool = False, wait_for_lock: bool = False,
            announce: Callable[[Any], None] | None = None, attempt: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Run to completion in `run_dir`: resumes an interrupted run, returns a finished one's metrics.

    A directory that any file names another run in (config.json, status.json, records,
    checkpoints) is refused before anything is written. Everything that can refuse a
    configuration (device, data, model, method) is checked by building the trainer before the
    directory is created, so a refused run leaves nothing on disk. The run's lock is taken here
    unless the caller holds it (`locked`, a sweep job, whose directory exists: its heartbeat
    starts at once, dataset loading included); a second process raises `RunBusy` naming the
    holder (or waits, with `wait_for_lock`). `attempt` (a sweep job's scheduler job and launch)
    becomes a line of the run's attempts.jsonl with the checkpoint it resumes from.
    `announce(trainer)` is called once the run is about to train (what it loaded, for the CLI). A
    failure while training writes status "failed" with the reason and traceback, then re-raises.
    """
    run = RunDir(run_dir)
    check_run_dir(run.path)
    refusal = run.foreign_claim(config.run_id, checkpoint_run_id)
    if refusal is not None:
        raise ConfigError(f"{refusal}; choose another --out")
    existing = run.config()
    finished = run.finished(config.run_id)
    if finished is not None and existing is not None:
        return finished
    if is_follower(config.settings):  # a data-parallel process other than rank 0: trains, writes nothing
        run_prerequisites(config)
        apply_threads(config.settings.get("run.threads", 0))
        return dict(build_trainer(config, run.path).fit())
    with contextlib.ExitStack() as held:
        if locked:
            held.enter_context(run.heartbeat())
        if attempt is not None:
            run.add_attempt({"time": time.time(), "run_id": config.run_id,
                             "resumed_from": checkpoint_position(run.path), **attempt})
        try:
            run_prerequisites(config)
            apply_threads(config.settings.get("run.threads", 0))  # before the trainer builds anything
            trainer = build_trainer(config, run.path)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:
            if locked or existing is not None:  # the run already has a directory (a sweep's, a retry): say why
                if existing is None:
                    run.write_config(config, versions())
                run.record_failure(config.run_id, exc)
            raise
        if not locked:
            lock = run.lock()
            if not lock.acquire(blocking=wait_for_lock):
                raise RunBusy(f"{run.path} is being trained by {lock.holder()}; wait for it or choose another --out")
            held.callback(lock.release)
            held.enter_context(run.heartbeat())  # alive from the start, not only from the first step
        if announce is not None:
            announce(trainer)
        return _train_locked(config, run, trainer)


def build_trainer(config: RunConfig, run_dir: Path) -> Any:
    """The run's trainer (dataset loaded, model and method built); it writes nothing until it trains."""
    from augbench.train.trainer import Trainer  # the trainer imports models and datasets: only when training

    header = {"run_id": config.run_id, "benchmark": config.benchmark, "method": config.method, "seed": config.seed}
    bench = create_benchmark(config.benchmark, config.settings)
    return Trainer(bench, config.method, config.hparams, config.seed, run_dir, header, task=config.task)


def _train_locked(config: RunConfig, run: RunDir, trainer: Any) -> dict[str, Any]:
    if run.config() is None:
        run.write_config(config, versions(trainer.device))
    finished = run.finished(config.run_id)  # again: another process may have finished it meanwhile
    if finished is not None:
        return finished
    if run.status() is not None:  # a failed run retried
        run.clear_status()
    try:
        metrics: dict[str, Any] = trainer.fit()
    except (KeyboardInterrupt, SystemExit):  # interrupted, not failed: resumable
        raise
    except BaseException as exc:
        run.record_failure(config.run_id, exc)
        raise
    run.write_status(RunState.DONE, run_id=config.run_id, metrics=metrics, wall_time=trainer.elapsed())
    return metrics
