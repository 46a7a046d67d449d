"""`augbench collect | table | plot | demo` from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from augbench.cli import main

GOLDEN_RUNS = Path(__file__).parent / "golden" / "runs"


def test_collect_writes_the_frame_and_prints_a_summary(tmp_path, capsys):
    out = tmp_path / "all.csv"
    assert main(["collect", str(GOLDEN_RUNS), "--out", str(out), "--running-within", "0"]) == 0
    captured = capsys.readouterr()
    assert any(line.split() == ["tinyimagenet-crop", "augerino", "failed", "1"] for line in captured.out.splitlines())
    assert "truncated last line, skipped" in captured.err  # problems: stderr, one line each
    frame = pd.read_csv(out)
    assert frame["run_id"].nunique() == 33 and {"hp.scale_min", "set.train.epochs", "tta_acc"} <= set(frame)


def test_table_prints_and_writes_each_format(tmp_path, capsys):
    for fmt, suffix in (("md", "md"), ("latex", "tex"), ("csv", "csv")):
        assert main(["table", str(GOLDEN_RUNS), "--table", "1", "--format", fmt, "--out", str(tmp_path)]) == 0
        printed = capsys.readouterr().out
        assert printed.strip() == (tmp_path / f"table-1.{suffix}").read_text().strip()
    assert main(["table", str(GOLDEN_RUNS), "--table", "auto", "--benchmark", "glyphs-rotation"]) == 0
    assert "| instaaug (uniform) |" in capsys.readouterr().out


def test_bad_table_is_a_one_line_error(capsys):
    assert main(["table", str(GOLDEN_RUNS), "--table", "7"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown table '7'" in err


def test_plot_writes_png_and_pdf_or_says_what_is_missing(tmp_path, capsys):
    assert main(["plot", str(GOLDEN_RUNS), "--figure", "table-3", "--out", str(tmp_path)]) == 0
    assert {p.name for p in tmp_path.iterdir()} == {"table-3.png", "table-3.pdf"}
    capsys.readouterr()
    assert main(["plot", str(GOLDEN_RUNS), "--figure", "table-5", "--out", str(tmp_path / "x")]) == 1
    assert capsys.readouterr().err.splitlines()[-1] == (
        "augbench: table-5: no finished runs of tinyimagenet-contrastive for any row of Table 5")
    assert main(["plot", str(GOLDEN_RUNS), "--figure", "nope"]) == 2


def test_empty_folder(tmp_path, capsys):
    assert main(["collect", str(tmp_path)]) == 0
    assert "no runs found" in capsys.readouterr().out
    assert main(["table", str(tmp_path), "--table", "auto"]) == 2
    assert main(["table", str(tmp_path), "--table", "1"]) == 0  # the paper's layout, every cell missing
    assert "| No augmentation | no | — | 55.06 ± 0.10 | — |" in capsys.readouterr().out


def _grid_file(path, entries, settings):
    """A demo-like grid file: one [[runs]] per (benchmark, method, {hparam: [values]}), shared settings."""
    lines = ['name = "g"', "seeds = 1"]
    for bench, method, hps in entries:
        lines += ["[[runs]]", f'benchmark = "{bench}"', f'method = "{method}"']
        if hps:
            lines.append("hparams = { " + ", ".join(f"{k} = {v!r}" for k, v in hps.items()) + " }")
        lines.append("settings = { " + ", ".join(f'"{k}" = {json.dumps(v)}' for k, v in settings.items()) + " }")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_demo_grid_is_a_grid_file_and_unregistered_entries_are_skipped(tmp_path):
    from augbench.demo import run_demo
    from augbench.sweep.grid import load_grid

    demo = load_grid("demo").expand(seeds=range(2))
    assert {r.config.benchmark for r in demo.runs} == {"glyphs-rotation", "clutter-crop", "texture-color"}
    assert len(demo.runs) == 2 * 25 and not demo.skipped
    grid = _grid_file(tmp_path / "g.toml", [("glyphs-rotation", "none", {}), ("no-such-bench", "none", {}),
                                           ("glyphs-rotation", "no-such-method", {})], {"data.n_train": 64})
    notes: list[str] = []
    with pytest.MonkeyPatch.context() as mp:  # no training: only the expansion and its notes matter here
        mp.setattr("augbench.demo.write_outputs", lambda root, out, report: [])
        mp.setattr("augbench.sweep.job.SweepJob.__call__", lambda self, config: {"acc": 0.0})
        run_demo(tmp_path / "runs", tmp_path / "results", max_parallel=1, seeds=2, grid=grid, report=notes.append)
    skipped = [n for n in notes if "skipping" in n]
    assert len(skipped) == 2
    assert "'no-such-bench' not registered" in skipped[0] and "'no-such-method' not registered" in skipped[1]
    assert any("2 runs" in n for n in notes)


@pytest.mark.slow
def test_demo_end_to_end_and_resumes(tmp_path, tiny, capsys):
    from augbench.demo import run_demo

    grid = _grid_file(tmp_path / "g.toml", [("glyphs-rotation", "none", {}),
                                           ("glyphs-rotation", "random-rotation", {"max_angle": [20.0, 45.0]})],
                      {k: v for k, v in tiny.items() if k != "run.progress"})
    lines: list[str] = []
    failed = run_demo(tmp_path / "runs", tmp_path / "results", max_parallel=1, seeds=1, grid=grid, report=lines.append)
    assert failed == 0
    printed = capsys.readouterr().out
    assert "**Table auto-glyphs-rotation.**" in printed and "| random-rotation |" in printed
    results = tmp_path / "results"
    assert pd.read_csv(results / "results.csv")["run_id"].nunique() == 3
    assert {p.name for p in (results / "tables").iterdir()} == {
        f"table-auto-glyphs-rotation.{s}" for s in ("csv", "md", "tex")}
    figures = {p.name for p in (results / "figures").iterdir()}
    assert {"bars-glyphs-rotation.png", "curves-glyphs-rotation.pdf", "fig5-rotation.png"} <= figures
    assert (results / "leaderboard" / "glyphs-rotation" / "random-rotation.html").is_file()  # the HTML leaderboard
    progress = [line for line in lines if line.startswith("demo: ")]
    assert any(line.startswith("demo: start  [1/3]") and "glyphs-rotation/none seed 0" in line for line in progress)
    assert any(line.startswith("demo: done   [3/3]") and " after " in line and "acc=" in line for line in progress)
    assert any("left" in line for line in progress if line.startswith("demo: done   [1/3]"))  # an ETA
    skipped = [line for line in lines if line.startswith("figure skipped:")]
    assert any(line.startswith("figure skipped: fig6-crops:") for line in skipped)
    assert not any("table-" in line for line in skipped)  # paper tables of absent benchmarks are not tried
    lines.clear()
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(results.rglob("*")) if p.is_file()}
    assert run_demo(tmp_path / "runs", tmp_path / "results", max_parallel=1, seeds=1, grid=grid,
                    report=lines.append) == 0
    after = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(results.rglob("*")) if p.is_file()}
    assert after == before  # the same runs: no file rewritten, no timestamp or creation date churns
    assert any("3 runs (3 were already done" in line for line in lines)
