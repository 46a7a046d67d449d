"""`scripts/gpu_check.sh --dry`: every step of the GPU script runs on the CPU at a tiny size, so
the script cannot rot between the occasions a GPU is at hand."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_gpu_script_runs_dry_on_the_cpu(tmp_path):
    env = {**os.environ, "OUT_DIR": str(tmp_path), "PYTHON": sys.executable, "PYTHONPATH": str(ROOT),
           "OMP_NUM_THREADS": "1"}
    run = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh"), "--dry"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=1500)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    out = run.stdout
    for step in ("1. tests that skip without CUDA", "2. tinyimagenet-crop InstaAug", "3. host-device syncs",
                 "4. per-op images/s", "5. augbench bench --config paper", "every step passed"):
        assert step in out, step
    assert "test_transforms_ops.py" in (tmp_path / "tests.txt").read_text()  # the CUDA tests still collect
    epochs = (tmp_path / "epochs.txt").read_text()
    assert "epoch 150/150: train" in epochs and "extrapolated to 150 epochs" in epochs and "budget of 1 h" in epochs
    syncs = pd.read_csv(tmp_path / "syncs.csv")
    assert {"instaaug", "random-crop", "autoaugment"} <= set(syncs["method"])
    assert (syncs.set_index("method").loc["instaaug", "method_calls_per_step"]) == 0
    ops = pd.read_csv(tmp_path / "ops.csv")
    assert {"random-resized-crop", "randaugment", "rotate"} <= set(ops["op"])
    paper = pd.read_csv(tmp_path / "paper.csv")
    assert (paper["status"] == "ok").all() and "instaaug" in set(paper["method"])
