"""What a run of a benchmark can set: its declarations, merged from the benchmark and its task.

A benchmark names its task (`Benchmark.task`) and a task declares settings of its own
(`Task.settings`, e.g. the fixed-classifier task's `model.weights`). They meet here, above
both registries, so that benchmarks/ never imports the task registry and tasks/ never imports
the benchmark registry:

    settings_spec("clutter-tta").resolve({"train.epochs": 3})   # COMMON + task's + benchmark's
    create_benchmark("clutter-tta", resolved)                  # the benchmark, validated
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from augbench.benchmarks import BENCHMARKS, COMMON_SETTINGS, Benchmark
from augbench.hparams import HParam, Spec
from augbench.tasks import get_task


def settings_spec(benchmark: str) -> Spec:
    """Every setting of `benchmark` with its defaults: the common ones, its task's, its own, then its `defaults`."""
    cls = BENCHMARKS.get(benchmark)
    params: dict[str, HParam] = dict(COMMON_SETTINGS)
    params.update(get_task(cls.task).settings)
    params.update(cls.settings)
    for key, value in cls.defaults.items():
        params[key] = replace(params[key], default=value)
    return Spec(f"benchmark {cls.name}", params)


def create_benchmark(name: str, settings: Mapping[str, Any] | None = None) -> Benchmark:
    """A benchmark with validated settings (`settings_spec`'s defaults where `settings` gives none)."""
    spec = settings_spec(name)
    return BENCHMARKS.get(name)(spec.resolve(settings), spec)


__all__ = ["create_benchmark", "settings_spec"]
