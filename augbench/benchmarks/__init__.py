"""Benchmarks by name, and the grid files of the paper's tables (TOML, next to this file).

A benchmark with validated settings comes from `augbench.settings.create_benchmark`, which
merges in the settings of the benchmark's task.
"""

from __future__ import annotations

from augbench.benchmarks.base import COMMON_SETTINGS, Benchmark, accuracy_by_group, magnitude_metrics
from augbench.registry import Registry

BENCHMARKS: Registry[type[Benchmark]] = Registry("benchmark", "augbench.benchmarks", "augbench.benchmarks")
register_benchmark = BENCHMARKS.register


def get_benchmark(name: str) -> type[Benchmark]:
    """The benchmark class registered under `name`."""
    return BENCHMARKS.get(name)


def list_benchmarks(pattern: str = "*") -> list[str]:
    """Registered benchmark names matching a shell-style pattern."""
    return BENCHMARKS.names(pattern)


__all__ = ["BENCHMARKS", "COMMON_SETTINGS", "Benchmark", "accuracy_by_group", "get_benchmark", "list_benchmarks",
           "magnitude_metrics", "register_benchmark"]
