"""Shared fixtures: an isolated dataset cache and tiny benchmark settings."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
import torch

torch.set_num_threads(1)

TINY = {
    "data.n_train": 96,
    "data.n_test": 32,
    "train.epochs": 1,
    "train.batch_size": 16,
    "eval.tta_views": 2,
    "run.progress": False,
}


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Each test session gets its own dataset cache; nothing leaks into ~/.cache."""
    cache = tmp_path_factory.getbasetemp() / "augbench-cache"
    monkeypatch.setenv("AUGBENCH_CACHE", str(cache))


@pytest.fixture
def tiny() -> dict:
    return dict(TINY)


def slurm_available() -> bool:
    if shutil.which("sinfo") is None:
        return False
    conf = os.environ.get("SLURM_CONF")
    if conf and not os.path.exists(conf):
        return False
    try:
        return subprocess.run(["sinfo"], capture_output=True, timeout=10, env=os.environ).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def pytest_collection_modifyitems(config, items):
    if slurm_available():
        return
    skip = pytest.mark.skip(reason="no SLURM cluster answers sinfo (CI starts one with scripts/slurm/cluster.sh)")
    for item in items:
        if "slurm" in item.keywords:
            item.add_marker(skip)
