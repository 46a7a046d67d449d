"""Shared fixtures: an isolated dataset cache and tiny benchmark settings."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from augbench.log import configure

torch.set_num_threads(1)
configure()  # as the command line does: library warnings and info lines on stderr, in augbench's format
os.environ.setdefault("OMP_NUM_THREADS", "1")  # runs' auto run.threads: 1 here too

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


@pytest.fixture
def resumed_run(tmp_path, monkeypatch):
    """`resumed_run(cfg, stop_epoch)`: the metrics of `cfg` run uninterrupted, after asserting that a
    run stopped right after its checkpoint at the start of `stop_epoch` and then resumed ends with
    exactly the same metrics (what a method keeps in its state survives the checkpoint)."""
    from augbench.runs import execute
    from augbench.train.trainer import Trainer

    def run(cfg, stop_epoch: int) -> dict:
        reference = execute(cfg, tmp_path / "ref")
        original = Trainer.save

        def save_then_stop(self):
            original(self)
            if self.epoch == stop_epoch:
                raise KeyboardInterrupt

        monkeypatch.setattr(Trainer, "save", save_then_stop)
        with pytest.raises(KeyboardInterrupt):
            execute(cfg, tmp_path / "victim")
        monkeypatch.setattr(Trainer, "save", original)
        assert execute(cfg, tmp_path / "victim") == reference
        return reference

    return run


def pytest_collection_modifyitems(config, items):
    if slurm_available():
        return
    skip = pytest.mark.skip(reason="no SLURM cluster answers sinfo (CI starts one with scripts/slurm/cluster.sh)")
    for item in items:
        if "slurm" in item.keywords:
            item.add_marker(skip)


# ----------------------------------------------------------------------------- the repository stays clean
REPO = Path(__file__).resolve().parents[1]
_OUTPUTS = ("runs", "results", "sweeps", "figures", "docs", "augbench-demo")  # where a careless test would write


def _tree() -> dict[str, int]:
    """The repository's top-level entries and every file of its output folders, with mtimes."""
    caches = {".pytest_cache", ".ruff_cache", ".mypy_cache", "__pycache__"}
    out = {e.name: 0 for e in REPO.iterdir() if e.name not in caches and not e.name.endswith(".egg-info")}
    for top in _OUTPUTS:
        for path in (REPO / top).rglob("*") if (REPO / top).is_dir() else ():
            if "__pycache__" not in path.parts:
                out[str(path.relative_to(REPO))] = path.stat().st_mtime_ns
    return out


def pytest_sessionstart(session):
    session.config._augbench_tree = _tree()


def pytest_sessionfinish(session, exitstatus):
    before = getattr(session.config, "_augbench_tree", None)
    if before is None:
        return
    after = _tree()
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    if changed:
        print(f"\nERROR: the tests wrote into the repository ({len(changed)} files), e.g. "
              f"{', '.join(changed[:5])}; tests must write under tmp_path only")
        session.exitstatus = 1
