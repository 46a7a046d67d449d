"""A run: (benchmark, method, resolved hyperparameters, seed) -> a run directory with results.

The run's identity is a hash of exactly what determines its result, never paths, devices or
cluster settings, so a sweep can be moved, relaunched and collected by identity.
"""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from augbench.benchmarks import get_benchmark
from augbench.errors import ConfigError
from augbench.methods import get_method
from augbench.results import records as rec

IDENTITY_VERSION = 1  # bump when a change alters the results of existing configurations


@dataclass(frozen=True)
class RunConfig:
    """A fully resolved, validated run."""

    benchmark: str
    method: str
    seed: int
    settings: dict[str, Any] = field(default_factory=dict)
    hparams: dict[str, Any] = field(default_factory=dict)

    def identity(self) -> dict[str, Any]:
        """What determines the result: the only input of `run_id`."""
        bench_spec = get_benchmark(self.benchmark).spec()
        method_spec = get_method(self.method).spec()
        return {"version": IDENTITY_VERSION, "benchmark": self.benchmark, "method": self.method,
                "seed": self.seed, "settings": bench_spec.identity_items(self.settings),
                "hparams": method_spec.identity_items(self.hparams)}

    @property
    def run_id(self) -> str:
        blob = json.dumps(self.identity(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def to_json(self) -> dict[str, Any]:
        return {"benchmark": self.benchmark, "method": self.method, "seed": self.seed,
                "settings": self.settings, "hparams": self.hparams}


def split_overrides(benchmark: str, method: str, overrides: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Route `--set KEY=VALUE` pairs to benchmark settings or method hyperparameters.

    Dotted keys are benchmark settings (`train.epochs`), `method.NAME` or a bare name are the
    method's hyperparameters; anything else is an error naming the valid keys.
    """
    bench_params = get_benchmark(benchmark).spec().params
    method_params = get_method(method).spec().params
    settings, hparams = {}, {}
    for key, value in overrides.items():
        name = key[len("method."):] if key.startswith("method.") else key
        if key in bench_params:
            settings[key] = value
        elif name in method_params:
            hparams[name] = value
        else:
            valid = sorted(bench_params) + sorted(method_params)
            raise ConfigError(f"unknown setting {key!r} for benchmark {benchmark} and method {method}; "
                              f"valid: {', '.join(valid)}")
    return settings, hparams


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
    settings, hparams = split_overrides(benchmark, method, overrides or {})
    hp = {**bench_cls.method_defaults.get(method, {}), **hparams}
    return RunConfig(benchmark, method, int(seed), bench_cls.spec().resolve(settings), method_cls.spec().resolve(hp))


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


def run_state(run_dir: Path) -> str:
    """done / failed / started (config written, no status) / absent."""
    status = rec.read_json(Path(run_dir) / rec.STATUS)
    if status is not None:
        return str(status.get("state"))
    return "started" if (Path(run_dir) / rec.CONFIG).exists() else "absent"


def execute(config: RunConfig, run_dir: Path | str) -> dict[str, Any]:
    """Run to completion in `run_dir`: resumes an interrupted run, returns a finished one's metrics.

    A failure writes status "failed" with the reason and traceback, then re-raises.
    """
    from augbench.benchmarks import create_benchmark
    from augbench.train.trainer import Trainer

    run_dir = Path(run_dir)
    status = rec.read_json(run_dir / rec.STATUS)
    if status is not None and status.get("state") == "done":
        return status["metrics"]
    existing = rec.read_json(run_dir / rec.CONFIG)
    if existing is not None and existing.get("run_id") != config.run_id:
        raise ConfigError(f"{run_dir} holds another run ({existing.get('run_id')}); choose another --out")
    run_dir.mkdir(parents=True, exist_ok=True)
    if status is not None:  # a failed run retried: its old status must not outlive the retry
        (run_dir / rec.STATUS).unlink()
    if existing is None:
        rec.atomic_write_text(run_dir / rec.CONFIG, json.dumps(
            {"run_id": config.run_id, "identity": config.identity(), **config.to_json(),
             "versions": versions()}, indent=1))
    header = {"run_id": config.run_id, "benchmark": config.benchmark, "method": config.method, "seed": config.seed}
    try:
        bench = create_benchmark(config.benchmark, config.settings)
        metrics = Trainer(bench, config.method, config.hparams, config.seed, run_dir, header).fit()
    except (KeyboardInterrupt, SystemExit):  # interrupted, not failed: resumable
        raise
    except BaseException as exc:
        rec.write_status(run_dir, "failed", reason=f"{type(exc).__name__}: {exc}".splitlines()[0],
                         traceback=traceback.format_exc())
        raise
    rec.write_status(run_dir, "done", metrics=metrics)
    return metrics
