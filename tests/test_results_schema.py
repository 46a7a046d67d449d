"""The collected table's schema: provenance columns, documented dtypes, Parquet and CSV, old versions."""

from __future__ import annotations

import hashlib
import json

import pandas as pd
import pytest
from test_results_helpers import write_run

from augbench.cli import main
from augbench.errors import DataError
from augbench.results.collect import collect, write_frame
from augbench.results.schema import COLUMNS, PROVENANCE_COLUMNS, SCHEMA_VERSION, describe, read_frame

VERSIONS = {"python": "3.11.9", "torch": "2.5.1+cu121", "torchvision": "0.20.1", "augbench": "0.1.0",
            "git_commit": "0123456789abcdef0123456789abcdef01234567", "git_dirty": True, "cuda": "12.1",
            "platform": "Linux-6.1", "device": "cuda", "device_name": "NVIDIA H100", "threads": 8}


def _run_with_versions(root, name, **kw):
    d = write_run(root, name, **kw)
    cfg = json.loads((d / "config.json").read_text())
    cfg["versions"] = VERSIONS
    cfg["identity"]["version"] = 2
    (d / "config.json").write_text(json.dumps(cfg))
    return d


def _sweep(root):
    """A sweep root as the launcher writes it: manifest (launch, submit), the grid's copy, runs/<id>."""
    grid_text = '[[runs]]\nbenchmark = "bench"\nmethod = "none"\n'
    (root / "grids").mkdir(parents=True)
    (root / "grids" / "L1-tiny.toml").write_text(grid_text)
    d = _run_with_versions(root / "runs", "r1", test={"acc": 0.5})
    events = [{"event": "launch", "launch_id": "L1", "grid": "tiny", "grid_path": "/grids/tiny.toml"},
              {"event": "submit", "launch_id": "L1", "run_id": "r1", "executor": "inline"}]
    (root / "manifest.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    return d, hashlib.sha256(grid_text.encode()).hexdigest()


def test_provenance_columns_come_from_config_status_and_the_sweep(tmp_path):
    _, digest = _sweep(tmp_path / "sweep")
    d = _run_with_versions(tmp_path, "plain", test={"acc": 0.6}, val_acc=(0.4, 0.5))
    status = json.loads((d / "status.json").read_text())
    (d / "status.json").write_text(json.dumps({**status, "wall_time": 123.5}))
    write_run(tmp_path, "old", test={"acc": 0.7}, val_acc=(0.4, 0.5))  # no versions, no trainer clock
    frame = collect(tmp_path, report=lambda _: None, running_within=0)
    runs = frame.drop_duplicates("run_id").set_index("run_id")
    assert list(frame.columns[12:12 + len(PROVENANCE_COLUMNS)]) == list(PROVENANCE_COLUMNS)
    p = runs.loc["plain"]
    assert (p["wall_time"], p["wall_time_source"]) == (123.5, "trainer")
    assert p["git_commit"] == VERSIONS["git_commit"] and bool(p["git_dirty"]) and p["cuda_version"] == "12.1"
    assert (p["torch_version"], p["device_name"], p["threads"], p["identity_version"]) == (
        "2.5.1+cu121", "NVIDIA H100", 8, 2)
    assert pd.isna(p["launch_id"]) and p["schema_version"] == SCHEMA_VERSION
    s = runs.loc["r1"]
    assert (s["launch_id"], s["grid"], s["grid_file"], s["grid_sha256"]) == ("L1", "tiny", "/grids/tiny.toml", digest)
    o = runs.loc["old"]  # written before provenance: empty columns, wall time from the records' times
    assert pd.isna(o["git_commit"]) and pd.isna(o["git_dirty"]) and (o["wall_time"], o["wall_time_source"]) == (
        100.0, "records")  # first (val) record at T0, test record at T0 + 100


def test_launch_events_with_a_hash_win_over_the_copy(tmp_path):
    _sweep(tmp_path)
    lines = (tmp_path / "manifest.jsonl").read_text().splitlines()
    launch = {**json.loads(lines[0]), "grid_sha256": "f" * 64}
    (tmp_path / "manifest.jsonl").write_text(json.dumps(launch) + "\n" + lines[1] + "\n")
    frame = collect(tmp_path, report=lambda _: None, running_within=0)
    assert set(frame["grid_sha256"]) == {"f" * 64}


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_written_tables_read_back_with_the_documented_dtypes(tmp_path, suffix):
    _sweep(tmp_path / "runs")
    write_run(tmp_path / "runs", "b", method="random-crop", hparams={"scale_min": 0.1, "space": "auto"},
              test={"acc": 0.5})
    write_run(tmp_path / "runs", "c", method="random-crop", hparams={"scale_min": 0.5, "space": 3},
              test={"acc": 0.4})  # a hyperparameter that is text in one run and a number in another
    frame = collect(tmp_path / "runs", report=lambda _: None, running_within=0)
    path = write_frame(frame, tmp_path / f"all{suffix}")
    assert path.suffix == suffix
    if suffix == ".parquet":
        raw = pd.read_parquet(path)  # pandas alone, no augbench reader: the dtypes are in the file
        assert {c: str(raw[c].dtype) for c in COLUMNS} == {c: dtype for c, (dtype, _) in COLUMNS.items()}
    back = read_frame(path)
    assert {c: str(back[c].dtype) for c in COLUMNS} == {c: dtype for c, (dtype, _) in COLUMNS.items()}
    assert set(frame.columns) == set(back.columns) and len(back) == len(frame)
    assert back.set_index(["run_id", "split"])["acc"].to_dict() == frame.set_index(["run_id", "split"])["acc"].to_dict()


def test_an_older_schema_is_read_and_a_newer_one_refused(tmp_path):
    write_run(tmp_path / "runs", "a", test={"acc": 0.5})
    frame = collect(tmp_path / "runs", report=lambda _: None, running_within=0)
    v1 = tmp_path / "v1.csv"
    frame.drop(columns=list(PROVENANCE_COLUMNS)).to_csv(v1, index=False)  # what collect wrote before provenance
    problems: list[str] = []
    old = read_frame(v1, problems.append)
    assert set(PROVENANCE_COLUMNS) <= set(old) and old["git_commit"].isna().all()
    assert len(problems) == 1
    assert "collect schema version 1: provenance columns of later versions are empty" in problems[0]
    v9 = tmp_path / "v9.csv"
    frame.assign(schema_version=9).to_csv(v9, index=False)
    with pytest.raises(DataError, match=f"schema version 9; this augbench reads versions up to {SCHEMA_VERSION}"):
        read_frame(v9)
    (tmp_path / "junk.csv").write_text("x,y\n1,2\n")
    with pytest.raises(DataError, match="not a table written by `augbench collect`"):
        read_frame(tmp_path / "junk.csv")


def test_collect_cli_writes_parquet_and_prints_the_schema(tmp_path, capsys):
    _sweep(tmp_path / "runs")
    out = tmp_path / "all.parquet"
    assert main(["collect", str(tmp_path / "runs"), "--out", str(out), "--running-within", "0"]) == 0
    assert set(PROVENANCE_COLUMNS) <= set(pd.read_parquet(out).columns)
    capsys.readouterr()
    assert main(["collect", "--schema"]) == 0
    printed = capsys.readouterr().out
    assert printed == describe() and "| `git_dirty` | boolean |" in printed
