"""A run end to end: records, determinism, identical splits across methods, exact resume after kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from augbench.rundir import read_records
from augbench.runs import execute, resolve
from augbench.train.trainer import Trainer

REPO = Path(__file__).resolve().parents[1]


def _records(run_dir: Path) -> list[dict]:
    recs = read_records(run_dir / "records.jsonl").records
    for r in recs:
        r.pop("time")
    return recs


def test_run_directory_layout(tmp_path, tiny):
    cfg = resolve("glyphs-rotation", "random-rotation", 0, tiny)
    metrics = execute(cfg, tmp_path / "run")
    run = tmp_path / "run"
    config = json.loads((run / "config.json").read_text())
    assert config["run_id"] == cfg.run_id and config["settings"]["train.epochs"] == 1
    assert set(config["versions"]) >= {"python", "torch", "torchvision", "augbench", "git_commit"}
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "done" and status["metrics"] == metrics
    splits = [r["split"] for r in _records(run)]
    assert splits[-1] == "test" and "val" in splits and "train" in splits
    assert {"acc", "tta_acc", "coverage", "violation"} <= set(metrics)
    ck = torch.load(run / "checkpoint.pt", weights_only=True)  # safe format
    assert ck["epoch"] == 1
    # a finished run is not retrained
    mtime = (run / "records.jsonl").stat().st_mtime_ns
    assert execute(cfg, run) == metrics
    assert (run / "records.jsonl").stat().st_mtime_ns == mtime


def test_identity_ignores_paths_and_devices(tiny):
    a = resolve("glyphs-rotation", "random-rotation", 0, tiny)
    b = resolve("glyphs-rotation", "random-rotation", 0, {**tiny, "run.device": "cpu", "run.log_every": 3})
    c = resolve("glyphs-rotation", "random-rotation", 1, tiny)
    d = resolve("glyphs-rotation", "random-rotation", 0, {**tiny, "max_angle": 30})
    assert a.run_id == b.run_id
    assert len({a.run_id, c.run_id, d.run_id}) == 3


def test_same_seed_gives_identical_records(tmp_path, tiny):
    cfg = resolve("glyphs-rotation", "random-rotation", 3, tiny)
    execute(cfg, tmp_path / "a")
    execute(cfg, tmp_path / "b")
    assert _records(tmp_path / "a") == _records(tmp_path / "b")


def test_methods_with_the_same_seed_see_the_same_data_and_init(tmp_path, tiny):
    trainers = []
    for method in ("none", "random-rotation"):
        cfg = resolve("glyphs-rotation", method, 5, tiny)
        from augbench.settings import create_benchmark

        bench = create_benchmark(cfg.benchmark, cfg.settings)
        trainers.append(Trainer(bench, method, cfg.hparams, 5, tmp_path / method, {}))
    a, b = trainers
    assert torch.equal(a.train_split.x, b.train_split.x) and torch.equal(a.val_split.y, b.val_split.y)
    assert torch.equal(a._order(0), b._order(0))
    for (ka, va), (kb, vb) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    other = Trainer(create_benchmark("glyphs-rotation", resolve("glyphs-rotation", "none", 6, tiny).settings),
                    "none", {}, 6, tmp_path / "other", {})
    assert not torch.equal(a.val_split.y, other.val_split.y) or not torch.equal(a._order(0), other._order(0))


def _run_cli(args: list[str], **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "augbench", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


@pytest.mark.slow
def test_resume_after_kill_9_is_exact(tmp_path):
    sets = ["data.n_train=400", "data.n_test=64", "train.epochs=2", "train.batch_size=16",
            "eval.tta_views=2", "run.checkpoint_every_steps=4", "run.log_every=1"]
    args = ["run", "glyphs-rotation", "--method", "random-rotation", "--seed", "7"]
    for s in sets:
        args += ["--set", s]
    ref = _run_cli(args + ["--out", str(tmp_path / "ref"), "--json"])
    ref_out, ref_err = ref.communicate(timeout=600)
    assert ref.returncode == 0, ref_err

    victim_dir = tmp_path / "victim"
    victim = _run_cli(args + ["--out", str(victim_dir), "--json"])
    deadline = time.time() + 300
    killed_at = None
    while time.time() < deadline and victim.poll() is None:
        recs = read_records(victim_dir / "records.jsonl").records if (victim_dir / "records.jsonl").exists() else []
        train_steps = [r["step"] for r in recs if r["split"] == "train"]
        if train_steps and max(train_steps) >= 14:  # mid-epoch 0 (22 steps an epoch), past a checkpoint
            victim.send_signal(signal.SIGKILL)
            killed_at = max(train_steps)
            break
        time.sleep(0.05)
    victim.communicate(timeout=60)
    assert killed_at is not None, "the run finished before it could be killed"
    assert not (victim_dir / "status.json").exists()

    resumed = _run_cli(args + ["--out", str(victim_dir), "--json"])
    out, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err
    assert json.loads(out) == json.loads(ref_out)
    assert _records(victim_dir) == _records(tmp_path / "ref")  # no duplicated or missing records
    a = torch.load(tmp_path / "ref" / "final_weights.pt", weights_only=True)
    b = torch.load(victim_dir / "final_weights.pt", weights_only=True)
    for part in ("model", "method"):
        assert a[part].keys() == b[part].keys()
        assert all(torch.equal(a[part][k], b[part][k]) for k in a[part])


def test_mixed_precision_and_channels_last_run(tmp_path, tiny):
    """bf16 autocast (CPU and CUDA) and channels_last go through the same trainer step."""
    cfg = resolve("glyphs-rotation", "random-rotation", 0, {**tiny, "train.amp": "bf16", "run.channels_last": True})
    metrics = execute(cfg, tmp_path / "amp")
    assert 0.0 <= metrics["acc"] <= 1.0
    assert cfg.run_id != resolve("glyphs-rotation", "random-rotation", 0, tiny).run_id  # amp is part of identity
