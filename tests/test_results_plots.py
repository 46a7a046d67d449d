"""Figures: every one renders from the golden records at its declared size; missing runs say so."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
import torch
from test_results_helpers import write_run

from augbench.results import plots
from augbench.results.collect import collect

GOLDEN_RUNS = Path(__file__).parent / "golden" / "runs"
# Figures with no golden runs: the golden set has no imagenet-tta or contrastive runs.
NOT_IN_GOLDEN = {"table-2", "table-5"}


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from the PNG header."""
    data = path.read_bytes()[:24]
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def expected_size(name: str) -> tuple[int, int]:
    key = "table" if name.startswith("table-") else name.split("-")[0] if name.startswith(("bars-", "curves-")) \
        else name
    w, h = plots.FIGSIZE[key]
    return round(w * plots.DPI), round(h * plots.DPI)


@pytest.fixture(scope="module")
def golden_frame():
    return collect(GOLDEN_RUNS, running_within=0, report=lambda _: None)


def _check(paths: list[Path]) -> None:
    assert paths
    for p in paths:
        assert p.stat().st_size > 1000, p
        if p.suffix == ".png":
            assert png_size(p) == expected_size(p.stem), p.name
        else:
            assert p.suffix == ".pdf" and p.read_bytes()[:5] == b"%PDF-"


def test_table_figure_renders_at_its_size(golden_frame, tmp_path):
    paths = plots.render("table-1", golden_frame, GOLDEN_RUNS, tmp_path)
    assert sorted(p.name for p in paths) == ["table-1.pdf", "table-1.png"]
    _check(paths)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(set(plots.FIGURES) - NOT_IN_GOLDEN))
def test_every_figure_renders_from_the_golden_records(golden_frame, tmp_path, name):
    paths = plots.render(name, golden_frame, GOLDEN_RUNS, tmp_path)
    _check(paths)
    if name in ("bars", "curves"):  # one figure per benchmark of the golden set
        assert {p.stem for p in paths} == {f"{name}-{b}" for b in ("glyphs-rotation", "rawfoot-color",
                                                                   "tinyimagenet-crop")}


@pytest.mark.parametrize("name", sorted(plots.FIGURES))
def test_missing_runs_say_so_in_one_line(tmp_path, name):
    write_run(tmp_path / "runs", "r", benchmark="unrelated", method="none", test={"acc": 0.5}, val_acc=())
    frame = collect(tmp_path / "runs", report=lambda _: None)
    frame = frame[frame["split"] == "test"]  # no curves either
    with pytest.raises(plots.MissingRuns) as err:
        plots.render(name, frame if name != "bars" else frame.iloc[0:0], tmp_path / "runs", tmp_path / "out")
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(name.split("-")[0])
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_render_all_reports_and_goes_on(golden_frame, tmp_path):
    lines: list[str] = []
    paths = plots.render_all(golden_frame, GOLDEN_RUNS, tmp_path, report=lines.append,
                             names=["table-2", "table-1", "table-5"])
    assert [p.name for p in paths] == ["table-1.png", "table-1.pdf"]
    assert lines == ["table-2: no finished runs of imagenet-tta for any row of Table 2",
                     "table-5: no finished runs of tinyimagenet-contrastive for any row of Table 5"]


def test_crop_figure_weights_candidates_by_their_probabilities(tmp_path, monkeypatch):
    """With crop_probs and the method's candidate boxes, densities are the exact probabilities."""
    root = tmp_path / "runs"
    d = write_run(root, "insta", benchmark="tinyimagenet-crop", method="instaaug",
                  hparams={"parameterization": "lrp", "conditioning": "input"}, test={"acc": 0.5})
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    torch.save({"crop_probs": probs}, d / "inspect.pt")
    cands = torch.tensor([[0.25, 0.25, 0.5, 0.5], [0.75, 0.75, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0]])
    monkeypatch.setattr(plots, "candidate_boxes", lambda ctx, run_dir: cands)
    ctx = plots.PlotContext(collect(root, report=lambda _: None), root)
    (label, run_dir, per), = plots._crop_sources(ctx, "tinyimagenet-crop", n_examples=2, n_random=10)
    assert label == "InstaAug" and run_dir == "insta"
    assert torch.equal(per[0][0], cands) and torch.equal(per[1][1], probs[1])
    paths = plots.render("fig6-crops", ctx.frame, root, tmp_path / "out")
    _check(paths)


def test_rotation_figure_uses_the_benchmarks_true_intervals(tmp_path, tiny):
    """Without an "interval" in inspect, the glyph test split is regenerated from the run's settings."""
    from augbench.benchmarks import create_benchmark

    root = tmp_path / "runs"
    settings = {"data.n_train": 8, "data.n_test": 8}
    d = write_run(root, "rot", benchmark="glyphs-rotation", method="random-rotation", settings=settings,
                  test={"acc": 0.5, "coverage": 0.5, "violation": 0.0})
    torch.save({"rotation_range": torch.tensor([[-0.5, 0.5]]).expand(8, 2).clone()}, d / "inspect.pt")
    ctx = plots.PlotContext(collect(root, report=lambda _: None), root)
    split, why = plots._load_split(ctx, "rot", 8)
    assert why is None
    truth = create_benchmark("glyphs-rotation", settings).load().test.meta["interval"]
    assert torch.equal(split.meta["interval"], truth)
    _check(plots.render("fig5-rotation", ctx.frame, root, tmp_path / "out"))
