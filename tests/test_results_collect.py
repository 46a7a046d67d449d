"""`collect`: one frame of every record, explicit run states, problems reported and skipped."""

from __future__ import annotations

import json
import os
import time

import pandas as pd
import pytest
from test_results_helpers import write_run

from augbench.errors import DataError
from augbench.methods import get_method
from augbench.results.collect import collect, derive_variant, write_frame
from augbench.runs import resolve


def _collect(root, **kw):
    problems: list[str] = []
    return collect(root, report=problems.append, **kw), problems


def test_rows_columns_and_order(tmp_path):
    write_run(tmp_path, "b", method="random-crop", seed=1, hparams={"scale_min": 0.1, "layers": [2, 3]},
              settings={"train.epochs": 2}, val_acc=(0.4, 0.6), test={"acc": 0.55, "tta_acc": 0.57})
    write_run(tmp_path, "a", method="none", seed=0, settings={"train.epochs": 2}, val_acc=(0.3,), test={"acc": 0.5})
    df, problems = _collect(tmp_path)
    assert problems == []
    assert list(df["method"]) == ["none", "none", "random-crop", "random-crop", "random-crop"]
    assert list(df["split"]) == ["val", "test", "val", "val", "test"]
    assert {"set.train.epochs", "hp.scale_min", "hp.layers", "acc", "tta_acc", "entropy", "best_epoch"} <= set(df)
    assert df.columns[:4].tolist() == ["benchmark", "method", "variant", "seed"]
    rc = df[df["method"] == "random-crop"]
    assert rc["hp.layers"].iloc[0] == "[2, 3]"  # lists become JSON text (hashable, CSV-stable)
    assert rc[rc["split"] == "test"]["tta_acc"].item() == 0.57
    assert str(df["seed"].dtype) == "Int64" and str(df["set.train.epochs"].dtype) == "Int64"
    assert set(df["run_dir"]) == {"a", "b"}


def test_states_done_failed_running_stalled(tmp_path):
    write_run(tmp_path, "done", test={"acc": 0.5})
    write_run(tmp_path, "failed", state="failed", reason="ValueError: bad")
    write_run(tmp_path, "partial", state="none")
    write_run(tmp_path, "running", state="none", old=False)
    (tmp_path / "running" / "heartbeat").touch()
    df, _ = _collect(tmp_path)
    state = df.drop_duplicates("run_id").set_index("run_dir")["state"].to_dict()
    assert state == {"done": "done", "failed": "failed", "partial": "stalled", "running": "running"}
    assert df[df["run_dir"] == "failed"]["reason"].iloc[0] == "ValueError: bad"
    assert df[df["run_dir"] == "done"]["reason"].isna().all()
    later, _ = _collect(tmp_path, now=time.time() + 3600)  # an hour later nobody touched it: stalled
    assert later.drop_duplicates("run_id").set_index("run_dir")["state"]["running"] == "stalled"


def test_run_without_records_still_listed(tmp_path):
    d = write_run(tmp_path, "r", state="failed")
    (d / "records.jsonl").unlink()
    df, problems = _collect(tmp_path)
    assert len(df) == 1 and pd.isna(df["split"].iloc[0]) and df["state"].iloc[0] == "failed"
    assert problems == []


def test_bad_files_reported_one_line_each_and_skipped(tmp_path):
    d = write_run(tmp_path, "trunc", val_acc=(0.4, 0.5), test={"acc": 0.5}, extra_lines=("{\"run_id\": \"tr",))
    text = (d / "records.jsonl").read_text().rstrip("\n")
    (d / "records.jsonl").write_text(text)  # truncated last line, no newline
    bad = write_run(tmp_path, "corrupt", val_acc=(0.4,), test={"acc": 0.6})
    lines = (bad / "records.jsonl").read_text().splitlines()
    (bad / "records.jsonl").write_text("\n".join([lines[0], "not json", lines[1]]) + "\n")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "config.json").write_text("{broken")
    lost = write_run(tmp_path, "lost", test={"acc": 0.7})
    (lost / "records.jsonl").write_text("")  # the test record is gone, status.json still has the metrics
    df, problems = _collect(tmp_path)
    assert all("\n" not in p for p in problems) and len(problems) == 4
    assert any("trunc/records.jsonl:4: truncated last line" in p for p in problems)
    assert any("corrupt/records.jsonl:2: unreadable line" in p for p in problems)
    assert any("junk/config.json: unreadable" in p for p in problems)
    assert any("lost: no test record, final metrics taken from status.json" in p for p in problems)
    assert set(df["run_dir"]) == {"trunc", "corrupt", "lost"}
    tests = df[df["split"] == "test"].set_index("run_dir")["acc"]
    assert tests.to_dict() == {"corrupt": 0.6, "lost": 0.7, "trunc": 0.5}


def test_metric_named_like_a_column_is_kept_apart(tmp_path):
    write_run(tmp_path, "r", test={"acc": 0.5, "seed": 3.0, "hp.x": 1.0})
    df, _ = _collect(tmp_path)
    row = df[df["split"] == "test"].iloc[0]
    assert row["seed"] == 0 and row["metric.seed"] == 3.0 and row["metric.hp.x"] == 1.0


@pytest.mark.parametrize("method,hp,family,variant", [
    ("instaaug", {"parameterization": "lrp", "conditioning": "input"}, "crop", "lrp"),
    ("instaaug", {"parameterization": None, "conditioning": "input"}, "crop", "lrp"),
    ("instaaug", {"parameterization": "crop-uniform", "conditioning": "input"}, "crop", "uniform"),
    ("instaaug", {"parameterization": "color", "conditioning": "input"}, "color", "uniform"),
    ("instaaug", {"parameterization": None, "conditioning": "input"}, "rotation", "uniform"),
    ("instaaug", {"parameterization": "lrp", "conditioning": "input-free"}, "crop", "input-free"),
    ("instaaug", {"parameterization": "lrp", "conditioning": "class"}, "crop", "class-specific"),
    ("adaaug", {"ops": "lrp"}, "crop", "lrp"),
    ("adaaug", {"ops": "standard"}, "crop", ""),
    ("random-crop", {"scale_min": 0.1}, "crop", ""),
])
def test_variants_are_the_papers_names(method, hp, family, variant):
    assert derive_variant(method, hp, family) == variant
    assert get_method(method).variant_name(hp, family) == variant  # the method's own name for it


@pytest.mark.parametrize("method", ["instaaug", "adaaug"])
def test_a_variant_chosen_by_name_is_the_variant_its_runs_group_by(method):
    cls = get_method(method)
    for name in cls.variants:
        cfg = resolve("tinyimagenet-crop", method, 0, {"variant": name})
        assert cls.variant_name(cfg.hparams, "crop") == derive_variant(method, cfg.hparams, "crop") == name


def test_variant_column_uses_the_benchmark_family(tmp_path):
    write_run(tmp_path, "r", benchmark="clutter-crop", method="instaaug", hparams={"parameterization": None},
              test={"acc": 0.5})
    df, _ = _collect(tmp_path)
    assert set(df["variant"]) == {"lrp"}


def test_write_frame_csv_and_parquet_fallback(tmp_path, capsys):
    write_run(tmp_path / "runs", "r", test={"acc": 0.5})
    df, _ = _collect(tmp_path / "runs")
    path = write_frame(df, tmp_path / "out" / "results.csv")
    back = pd.read_csv(path)
    assert back[back["split"] == "test"]["acc"].tolist() == [0.5] and len(back) == len(df)
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        path = write_frame(df, tmp_path / "out" / "results.parquet")
        assert path.suffix == ".csv" and "pyarrow is not installed" in capsys.readouterr().err


def test_missing_root_is_a_one_line_error(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        collect(tmp_path / "nope")


def test_empty_root_gives_an_empty_frame(tmp_path):
    df, problems = _collect(tmp_path)
    assert df.empty and problems == [] and "benchmark" in df


@pytest.mark.slow
def test_collects_a_real_run(tmp_path, tiny):
    from augbench.runs import execute, resolve

    cfg = resolve("glyphs-rotation", "random-rotation", 0, {**tiny, "train.epochs": 2})
    execute(cfg, tmp_path / "runs" / cfg.run_id)
    df, problems = _collect(tmp_path / "runs")
    assert problems == []
    assert df["run_id"].unique().tolist() == [cfg.run_id] and set(df["state"]) == {"done"}
    assert df["split"].value_counts().to_dict() == {"train": 2, "val": 2, "test": 1}
    test = df[df["split"] == "test"].iloc[0]
    status = json.loads((tmp_path / "runs" / cfg.run_id / "status.json").read_text())
    assert test["tta_acc"] == status["metrics"]["tta_acc"] and test["coverage"] == status["metrics"]["coverage"]
    assert test["hp.max_angle"] == 45.0 and test["set.train.epochs"] == 2
    assert "set.run.device" not in df  # only identity settings
    assert os.path.basename(test["run_dir"]) == cfg.run_id


def test_variant_and_family_come_from_config_json_where_it_records_them(tmp_path):
    """results import no method: the variant `resolve` recorded wins over the legacy rules."""
    d = write_run(tmp_path, "r", benchmark="clutter-crop", method="instaaug", hparams={"parameterization": None},
                  test={"acc": 0.5})
    config = json.loads((d / "config.json").read_text())
    (d / "config.json").write_text(json.dumps({**config, "family": "crop", "variant": "input-free"}))
    df, _ = _collect(tmp_path)
    assert set(df["variant"]) == {"input-free"}
