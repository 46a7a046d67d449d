"""`run.threads`: one rule for single runs and local sweep workers, applied at the start of a run,
recorded in config.json, never part of a run's identity."""

from __future__ import annotations

import json
import os

import pytest
import torch

from augbench import threads
from augbench.benchmarks.base import COMMON_SETTINGS
from augbench.errors import ConfigError
from augbench.runs import execute, resolve
from augbench.sweep import executors


@pytest.fixture
def eight_cpus(monkeypatch):
    """A process allowed on 8 CPUs, with no thread variables set."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    for name in ("OMP_NUM_THREADS", "SLURM_CPUS_PER_TASK"):
        monkeypatch.delenv(name, raising=False)


def test_default_divides_the_allowed_cpus_among_concurrent_runs(eight_cpus):
    assert threads.available_cpus() == 8
    assert [threads.default_threads(n) for n in (1, 2, 3, 8, 20)] == [8, 4, 2, 1, 1]


def test_auto_takes_omp_then_slurm_then_the_cpus(eight_cpus):
    assert threads.resolve_threads(3) == 3  # an explicit setting wins
    assert threads.resolve_threads(0) == 8
    assert threads.resolve_threads(0, {"SLURM_CPUS_PER_TASK": "4"}) == 4
    assert threads.resolve_threads(0, {"OMP_NUM_THREADS": "2", "SLURM_CPUS_PER_TASK": "4"}) == 2
    assert threads.resolve_threads(0, {"OMP_NUM_THREADS": "zero"}) == 8  # unreadable: ignored
    with pytest.raises(ConfigError, match="run.threads"):
        threads.resolve_threads(-1)


def test_the_setting_is_not_part_of_the_identity(tiny):
    assert COMMON_SETTINGS["run.threads"].identity is False
    a = resolve("glyphs-rotation", "none", 0, tiny)
    b = resolve("glyphs-rotation", "none", 0, {**tiny, "run.threads": 3})
    assert a.run_id == b.run_id and b.settings["run.threads"] == 3 and a.settings["run.threads"] == 0
    with pytest.raises(ConfigError):
        resolve("glyphs-rotation", "none", 0, {**tiny, "run.threads": -1})


def test_a_run_sets_its_threads_and_records_them(tmp_path, tiny):
    before = torch.get_num_threads()
    try:
        execute(resolve("glyphs-rotation", "none", 0, {**tiny, "run.threads": 2}), tmp_path / "run")
        assert torch.get_num_threads() == 2
        config = json.loads((tmp_path / "run" / "config.json").read_text())
        assert config["versions"]["threads"] == 2 and config["settings"]["run.threads"] == 2
    finally:
        torch.set_num_threads(before)


def test_auto_in_a_run_follows_omp_num_threads(tmp_path, tiny, monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    try:
        torch.set_num_threads(2)
        execute(resolve("glyphs-rotation", "none", 0, tiny), tmp_path / "run")
        assert torch.get_num_threads() == 1
        assert json.loads((tmp_path / "run" / "config.json").read_text())["versions"]["threads"] == 1
    finally:
        torch.set_num_threads(before)


def test_local_sweep_workers_get_the_same_rule(tmp_path, monkeypatch, eight_cpus):
    seen: dict[str, str] = {}

    class FakeProcess:
        pid = os.getpid()

        def __init__(self, args, env, **kwargs):
            seen.update(env)
            self.stdin = self

        def close(self) -> None:
            pass

    monkeypatch.setattr(executors.subprocess, "Popen", FakeProcess)
    executors.LocalExecutor().submit([], executors.Launch(tmp_path, "launch-1", max_parallel=3))
    assert seen["OMP_NUM_THREADS"] == str(threads.default_threads(3)) == "2"
