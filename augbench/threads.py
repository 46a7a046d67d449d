"""How many CPU threads torch uses in a run: one rule for single runs and sweep workers.

torch's default (every core it sees) oversubscribes a machine that several runs share: on a
shared 2-core machine a training step took 4-7x the CPU time with 2 threads than with 1.
The rule: the CPUs this process may use (its affinity mask, which SLURM and taskset
narrow), divided by the runs that share them. A local sweep's launcher hands its workers that
number as OMP_NUM_THREADS; a run with `run.threads = 0` (auto) takes OMP_NUM_THREADS when it
is set, then SLURM's per-task CPUs, then the rule for a run alone. Thread counts never change
a result's identity (`run.threads` is not part of it); config.json records the number used.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from augbench.errors import ConfigError


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one, else every CPU)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # macOS and Windows have no affinity mask
        return max(1, os.cpu_count() or 1)


def default_threads(concurrent: int = 1) -> int:
    """Threads per run when `concurrent` runs share this process's CPUs (at least 1)."""
    return max(1, available_cpus() // max(1, int(concurrent)))


def _positive(env: Mapping[str, str], name: str) -> int | None:
    value = env.get(name, "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


def resolve_threads(setting: int, env: Mapping[str, str] | None = None) -> int:
    """The thread count of `run.threads`: itself when > 0; 0 (auto): OMP_NUM_THREADS, then
    SLURM_CPUS_PER_TASK, then `default_threads()`."""
    if setting < 0:
        raise ConfigError(f"run.threads must be 0 (auto) or a positive number of threads, got {setting}")
    if setting > 0:
        return int(setting)
    env = os.environ if env is None else env
    return _positive(env, "OMP_NUM_THREADS") or _positive(env, "SLURM_CPUS_PER_TASK") or default_threads()


def apply_threads(setting: int) -> int:
    """Set torch's intra-op threads from `run.threads` (see `resolve_threads`); returns the number."""
    import torch  # only a run that trains needs torch here

    n = resolve_threads(setting)
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


__all__ = ["apply_threads", "available_cpus", "default_threads", "resolve_threads"]
