"""`augbench collect | table | plot | demo` from the command line."""

from __future__ import annotations

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


def test_demo_grid_skips_what_is_not_registered(tmp_path):
    from augbench.results.demo import demo_grid

    notes: list[str] = []
    grid = demo_grid([("glyphs-rotation", "none", {}), ("no-such-bench", "none", {}),
                      ("glyphs-rotation", "no-such-method", {}), ("glyphs-rotation", "random-crop", {}),
                      ("glyphs-rotation", "random-rotation", {"max_angle": [10.0, 20.0]})],
                     {"glyphs-rotation": {"data.n_train": 64}}, seeds=2, report=notes.append)
    assert len(notes) == 3
    assert "no-such-bench is not registered" in notes[0] and "no-such-method is not registered" in notes[1]
    assert "does not support the 'rotation' family" in notes[2]
    runs = grid.expand().runs
    assert len(runs) == 2 * (1 + 2)
    assert {r.config.settings["data.n_train"] for r in runs} == {64}


@pytest.mark.slow
def test_demo_end_to_end_and_resumes(tmp_path, tiny, capsys):
    from augbench.results.demo import run_demo

    grid = [("glyphs-rotation", "none", {}), ("glyphs-rotation", "random-rotation", {"max_angle": [20.0, 45.0]})]
    settings = {"glyphs-rotation": {k: v for k, v in tiny.items() if k != "run.progress"}}
    lines: list[str] = []
    failed = run_demo(tmp_path / "runs", tmp_path / "results", max_parallel=1, seeds=1, grid=grid, settings=settings,
                      report=lines.append)
    assert failed == 0
    printed = capsys.readouterr().out
    assert "**Table auto-glyphs-rotation.**" in printed and "| random-rotation |" in printed
    results = tmp_path / "results"
    assert pd.read_csv(results / "results.csv")["run_id"].nunique() == 3
    assert {p.name for p in (results / "tables").iterdir()} == {
        f"table-auto-glyphs-rotation.{s}" for s in ("csv", "md", "tex")}
    figures = {p.name for p in (results / "figures").iterdir()}
    assert {"bars-glyphs-rotation.png", "curves-glyphs-rotation.pdf", "fig5-rotation.png"} <= figures
    skipped = [line for line in lines if line.startswith("figure skipped:")]
    assert any(line.startswith("figure skipped: fig6-crops:") for line in skipped)
    assert not any("table-" in line for line in skipped)  # paper tables of absent benchmarks are not tried
    lines.clear()
    assert run_demo(tmp_path / "runs", tmp_path / "results", max_parallel=1, seeds=1, grid=grid, settings=settings,
                    report=lines.append) == 0
    assert any("3 runs (3 were already done" in line for line in lines)
