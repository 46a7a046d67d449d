"""A real run records its provenance (versions, device, wall time) and, when asked, TensorBoard scalars."""

from __future__ import annotations

import json

import pytest

from augbench.results.collect import collect
from augbench.rundir import TENSORBOARD, read_records
from augbench.runs import execute, resolve


def test_a_run_records_provenance_and_its_wall_time(tmp_path, tiny):
    cfg = resolve("glyphs-rotation", "none", 0, {**tiny, "run.device": "cpu"})
    execute(cfg, tmp_path / "run")
    versions = json.loads((tmp_path / "run" / "config.json").read_text())["versions"]
    assert {"git_commit", "git_dirty", "cuda", "device", "device_name", "threads", "torch"} <= set(versions)
    assert versions["device"] == "cpu" and versions["device_name"]
    status = json.loads((tmp_path / "run" / "status.json").read_text())
    assert status["wall_time"] > 0 and "wall_time" not in status["metrics"]  # bookkeeping, not a metric
    row = collect(tmp_path, report=lambda _: None).drop_duplicates("run_id").iloc[0]
    assert row["wall_time_source"] == "trainer" and row["wall_time"] == pytest.approx(status["wall_time"])
    assert row["device"] == "cpu" and row["identity_version"] == cfg.identity()["version"]
    assert not (tmp_path / "run" / TENSORBOARD).exists()  # off by default


def test_tensorboard_writes_the_same_scalars_as_the_records(tmp_path, tiny):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = resolve("glyphs-rotation", "random-rotation", 0, {**tiny, "train.epochs": 2, "run.log_every": 2,
                                                           "run.tensorboard": True})
    execute(cfg, tmp_path / "run")
    events = EventAccumulator(str(tmp_path / "run" / TENSORBOARD))
    events.Reload()
    logged = {(tag, e.step): e.value for tag in events.Tags()["scalars"] for e in events.Scalars(tag)}
    expected = {(f"{r['split']}/{k}", r["step"]): float(v) for r in read_records(tmp_path / "run" / "records.jsonl")
                .records for k, v in r["metrics"].items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    assert set(logged) == set(expected)
    assert all(logged[k] == pytest.approx(v, rel=1e-6) for k, v in expected.items())  # float32 in event files
    assert {"train/loss", "val/acc", "test/acc"} <= {tag for tag, _ in logged}
