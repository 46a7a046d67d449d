"""Figures: each renders at its declared size from what is on disk alone (records and inspect.pt);
missing runs say so in one line, and inspect.pt files of the older layout degrade visibly."""

from __future__ import annotations

import math
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_results_helpers import write_run

from augbench.results.collect import collect
from augbench.results.figures import FIGURE_NAMES
from augbench.results.figures.class_ranges import fig_class_ranges
from augbench.results.figures.common import DPI, FIGSIZE, MissingRuns, PlotContext
from augbench.results.figures.crops import crop_sources, fig6_crops
from augbench.results.figures.registry import FIGURES, render, render_all
from augbench.results.figures.rotation import fig5_rotation

GOLDEN_RUNS = Path(__file__).parent / "golden" / "runs"
# Figures with no golden runs: the golden set has no imagenet-tta or contrastive runs.
NOT_IN_GOLDEN = {"table-2", "table-5"}
# What figures must never import: they read the run directory, never rebuild a method or a dataset.
REBUILDERS = ("augbench.benchmarks", "augbench.methods", "augbench.datasets")
RESULTS = Path(__file__).parents[1] / "augbench" / "results"
MODULES = [*sorted((RESULTS / "figures").glob("*.py")),
           *(RESULTS / f"{m}.py" for m in ("selection", "cells", "tables", "units", "paper"))]


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from the PNG header."""
    data = path.read_bytes()[:24]
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def expected_size(name: str) -> tuple[int, int]:
    key = "table" if name.startswith("table-") else name.split("-")[0] if name.startswith(("bars-", "curves-")) \
        else name
    w, h = FIGSIZE[key]
    return round(w * DPI), round(h * DPI)


def _check(paths: list[Path]) -> None:
    assert paths
    for p in paths:
        assert p.stat().st_size > 1000, p
        if p.suffix == ".png":
            assert png_size(p) == expected_size(p.stem), p.name
        else:
            assert p.suffix == ".pdf" and p.read_bytes()[:5] == b"%PDF-"


def _frame(root: Path):
    return collect(root, report=lambda _: None, running_within=0)


def forbid_rebuilding(monkeypatch: pytest.MonkeyPatch) -> None:
    """From here on, importing benchmarks, methods or datasets fails (collect, which derives variants
    from benchmark families, has run before)."""
    for name in [m for m in sys.modules if m.startswith(REBUILDERS)] + list(REBUILDERS):
        monkeypatch.setitem(sys.modules, name, None)


# ---------------------------------------------------------------------------------------------- registry
def test_figure_names_are_the_registrys():
    assert list(FIGURES) == list(FIGURE_NAMES)


def test_listing_figures_loads_no_plotting_or_torch():
    code = ("import sys, augbench.results.figures as f; assert f.FIGURE_NAMES; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'matplotlib', 'seaborn', 'torch'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_results_modules_never_rebuild_methods_or_datasets(path):
    text = path.read_text()
    for word in ("create_benchmark", "create_method", *REBUILDERS):
        assert word not in text, f"{path.name} mentions {word}"


# ---------------------------------------------------------------------------------------------- golden runs
@pytest.fixture(scope="module")
def golden_frame():
    return _frame(GOLDEN_RUNS)


def test_table_figure_renders_at_its_size(golden_frame, tmp_path):
    paths = render("table-1", golden_frame, GOLDEN_RUNS, tmp_path)
    assert sorted(p.name for p in paths) == ["table-1.pdf", "table-1.png"]
    _check(paths)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(set(FIGURES) - NOT_IN_GOLDEN))
def test_every_figure_renders_from_the_golden_records(golden_frame, tmp_path, monkeypatch, name):
    forbid_rebuilding(monkeypatch)
    paths = render(name, golden_frame, GOLDEN_RUNS, tmp_path)
    _check(paths)
    if name in ("bars", "curves"):  # one figure per benchmark of the golden set
        assert {p.stem for p in paths} == {f"{name}-{b}" for b in ("glyphs-rotation", "rawfoot-color",
                                                                   "tinyimagenet-crop")}


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_missing_runs_say_so_in_one_line(tmp_path, name):
    write_run(tmp_path / "runs", "r", benchmark="unrelated", method="none", test={"acc": 0.5}, val_acc=())
    frame = _frame(tmp_path / "runs")
    frame = frame[frame["split"] == "test"]  # no curves either
    with pytest.raises(MissingRuns) as err:
        render(name, frame if name != "bars" else frame.iloc[0:0], tmp_path / "runs", tmp_path / "out")
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(name.split("-")[0])
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_render_all_reports_and_goes_on(golden_frame, tmp_path):
    lines: list[str] = []
    paths = render_all(golden_frame, GOLDEN_RUNS, tmp_path, report=lines.append,
                       names=["table-2", "table-1", "table-5"])
    assert [p.name for p in paths] == ["table-1.png", "table-1.pdf"]
    assert lines == ["table-2: no finished runs of imagenet-tta for any row of Table 2",
                     "table-5: no finished runs of tinyimagenet-contrastive for any row of Table 5"]


# ---------------------------------------------------------------------------------------------- inspect.pt
K, SIZE = 4, 24  # saved test images per run, their side (not the benchmark's: figures read it from "x")
ANGLES = torch.tensor([0.3, -0.6, 0.0, 0.7])  # each test glyph's own rotation
CANDIDATES = torch.tensor([[0.5, 0.5, 1.0, 1.0], [0.25, 0.25, 0.5, 0.5], [0.75, 0.75, 0.5, 0.5]])
PROBS = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.3, 0.3, 0.4], [0.5, 0.25, 0.25]])
INSTA = {"parameterization": "lrp", "conditioning": "input"}


def _images(seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"x": torch.randint(0, 256, (K, 3, SIZE, SIZE), generator=g, dtype=torch.uint8),
            "y": torch.zeros(K, dtype=torch.long), "index": torch.arange(K)}


def _boxes(seed: int, s: int = 5) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    side = 0.3 + 0.5 * torch.rand(K, s, generator=g)
    return torch.stack([torch.full_like(side, 0.5), torch.full_like(side, 0.5), side, side], -1)


def _run(root: Path, name: str, benchmark: str, method: str, inspect: dict[str, torch.Tensor] | None,
         **hparams) -> Path:
    d = write_run(root, name, benchmark=benchmark, method=method, hparams=hparams,
                  test={"acc": 0.5, "coverage": 0.6, "violation": 0.1})
    if inspect is not None:
        torch.save(inspect, d / "inspect.pt")
    return d


def _glyph_run(root: Path, name: str, method: str, with_interval: bool = True, **hp) -> None:
    meta = {"meta.angle": ANGLES, "meta.interval": torch.stack([-math.pi / 2 - ANGLES, math.pi / 2 - ANGLES], -1)}
    ranges = torch.stack([-1.2 - ANGLES, 1.2 - ANGLES], -1)
    _run(root, name, "glyphs-rotation", method,
         {**_images(0), **(meta if with_interval else {}), "rotation_range": ranges}, **hp)


def test_rotation_figure_reads_true_intervals_from_inspect(tmp_path, monkeypatch):
    _glyph_run(tmp_path, "insta", "instaaug", parameterization="rotation")
    _glyph_run(tmp_path, "rr", "random-rotation")
    ctx = PlotContext(_frame(tmp_path), tmp_path)
    forbid_rebuilding(monkeypatch)
    fig = fig5_rotation(ctx, None)
    ax = fig.axes[0]
    (learned,) = [c for c in ax.collections if type(c).__name__ == "LineCollection"]
    xs = [float(seg[0][0]) for seg in learned.get_segments()]  # one bar per instance, at its rotation a
    assert xs == pytest.approx(sorted(math.degrees(a) for a in ANGLES.tolist()), abs=1e-4)
    assert fig.get_suptitle() == ("glyphs-rotation: learned per-instance rotation ranges (Figure 5)\n"
                                  "each panel one run: the median seed by coverage")
    assert ax.get_title().endswith("seed 0, the only seed")
    _check(render("fig5-rotation", ctx.frame, tmp_path, tmp_path / "out"))


def test_rotation_without_saved_intervals_says_what_is_missing(tmp_path, monkeypatch):
    old, mixed = tmp_path / "old", tmp_path / "mixed"
    for root in (old, mixed):
        _glyph_run(root, "rr", "random-rotation", with_interval=False)
    _glyph_run(mixed, "insta", "instaaug", parameterization="rotation")  # one run in the new layout: drawn
    old_ctx, mixed_ctx = PlotContext(_frame(old), old), PlotContext(_frame(mixed), mixed)
    forbid_rebuilding(monkeypatch)
    with pytest.raises(MissingRuns, match=r"^fig5-rotation: .*\(random-rotation\) holds no true intervals "
                                          r"\(meta.interval\)") as err:
        fig5_rotation(old_ctx, None)
    assert "\n" not in str(err.value)
    fig = fig5_rotation(mixed_ctx, None)
    assert len(fig.axes) == 1
    assert fig.get_suptitle().splitlines()[0].endswith("(no true intervals saved: random-rotation)")


def test_rotation_ranges_on_a_crop_benchmark_name_its_family(tmp_path, monkeypatch):
    ranges = torch.stack([-0.2 - ANGLES, 0.2 - ANGLES], -1)  # TeachAugment's affines report rotations
    _run(tmp_path, "teach", "clutter-crop", "teachaugment", {**_images(0), "rotation_range": ranges})
    ctx = PlotContext(_frame(tmp_path), tmp_path)
    forbid_rebuilding(monkeypatch)
    with pytest.raises(MissingRuns) as err:
        fig5_rotation(ctx, "clutter-crop")
    assert str(err.value) == ("fig5-rotation: clutter-crop is a crop benchmark: its test split has no true "
                              "rotation intervals (meta.interval)")


def _folder_runs(root: Path) -> None:
    """imagefolder-rotation runs as the trainer writes them: labels, per-sample ranges, no ground truth."""
    y = torch.tensor([0, 1, 0, 1])
    wide = torch.stack([-0.2 - 0.6 * y, 0.3 + 0.6 * y], -1).float()  # class 1 gets the wider range
    _run(root, "insta", "imagefolder-rotation", "instaaug",
         {**_images(0), "y": y, "meta.file_index": torch.arange(K), "rotation_range": wide},
         parameterization="rotation")
    _run(root, "rr", "imagefolder-rotation", "random-rotation",
         {**_images(0), "y": y, "meta.file_index": torch.arange(K),
          "rotation_range": torch.tensor([[-0.5, 0.5]]).expand(K, 2).clone()})


def test_rotation_on_real_images_says_they_carry_no_ground_truth(tmp_path, monkeypatch):
    _folder_runs(tmp_path)
    ctx = PlotContext(_frame(tmp_path), tmp_path)
    forbid_rebuilding(monkeypatch)
    with pytest.raises(MissingRuns) as err:
        fig5_rotation(ctx, "imagefolder-rotation")
    assert str(err.value) == ("fig5-rotation: imagefolder-rotation reads real images, which carry no ground truth: "
                              "no true rotation intervals (meta.interval) exist for them; --figure class-ranges "
                              "shows the learned ranges per class")


def test_class_ranges_draw_each_method_s_per_class_widths(tmp_path, monkeypatch):
    _folder_runs(tmp_path)
    ctx = PlotContext(_frame(tmp_path), tmp_path)
    forbid_rebuilding(monkeypatch)
    fig = fig_class_ranges(ctx, None)
    (ax,) = fig.axes
    assert ax.get_title() == "rotation range width (deg)"
    # one errorbar series per run, labelled "method (variant)"
    means = {c.get_label().split(" ")[0]: c.lines[0].get_ydata() for c in ax.containers}
    assert set(means) == {"instaaug", "random-rotation"}
    assert means["instaaug"] == pytest.approx([math.degrees(0.5), math.degrees(1.7)], abs=1e-3)
    assert means["random-rotation"] == pytest.approx([math.degrees(1.0)] * 2, abs=1e-3)
    _check(render("class-ranges", ctx.frame, tmp_path, tmp_path / "out"))
    with pytest.raises(MissingRuns, match=r"^class-ranges: no finished run of clutter-crop saved per-sample"):
        fig_class_ranges(ctx, "clutter-crop")


def _crop_runs(root: Path) -> None:
    bench = "tinyimagenet-crop"
    _run(root, "insta", bench, "instaaug", {**_images(1), "crop_probs": PROBS, "crop_boxes": _boxes(1),
                                            "const.candidate_boxes": CANDIDATES}, **INSTA)
    _run(root, "free", bench, "instaaug", {**_images(2), "crop_boxes": _boxes(2)}, **{**INSTA,
                                                                                      "conditioning": "input-free"})
    _run(root, "rc", bench, "random-crop", {**_images(3), "crop_boxes": _boxes(3, 8)}, scale_min=0.1)


def test_crop_figure_draws_saved_candidates_boxes_and_images(tmp_path, monkeypatch):
    _crop_runs(tmp_path)
    ctx = PlotContext(_frame(tmp_path), tmp_path)
    forbid_rebuilding(monkeypatch)
    sources, notes = crop_sources(ctx, "tinyimagenet-crop", n_examples=3)
    assert [(s.label, s.run_dir, s.exact) for s in sources] == [
        ("InstaAug", "insta", True), ("InstaAug w/o input", "free", False), ("Random crop", "rc", False)]
    assert notes == []
    insta, _, rc = sources
    assert len(insta.crops) == 3 and torch.equal(insta.crops[0][0], CANDIDATES) and torch.equal(insta.crops[1][1],
                                                                                                  PROBS[1])
    assert torch.equal(rc.crops[2][0], _boxes(3, 8)[2]) and rc.crops[2][1].tolist() == [1 / 8] * 8
    assert rc.images is not None and (rc.images == _images(3)["x"].permute(0, 2, 3, 1).numpy()).all()
    fig = fig6_crops(ctx, None)
    assert fig.axes[0].images[0].get_array().shape == (SIZE, SIZE, 3)  # the run's own image, at its size
    assert fig.get_suptitle() == ("tinyimagenet-crop: learned crops (Figure 6)\neach method one run, the median seed "
                                  "by acc (InstaAug: seed 0, the only seed; InstaAug w/o input: seed 0, the only seed; "
                                  "Random crop: seed 0, the only seed)")
    _check(render("fig6-crops", ctx.frame, tmp_path, tmp_path / "out"))


def test_crop_figure_of_older_runs_degrades_and_says_so(tmp_path, monkeypatch):
    bench = "tinyimagenet-crop"
    _run(tmp_path, "insta", bench, "instaaug", {"crop_probs": PROBS, "crop_boxes": _boxes(1)}, **INSTA)
    _run(tmp_path, "rc", bench, "random-crop", None, scale_min=0.1)  # random crop saved nothing before
    ctx = PlotContext(_frame(tmp_path), tmp_path)
    forbid_rebuilding(monkeypatch)
    (insta,), notes = crop_sources(ctx, bench, n_examples=3)
    assert insta.label == "InstaAug" and not insta.exact and insta.images is None
    assert notes == ["no crops saved: Random crop", "sampled crops only: InstaAug", "no test images saved: InstaAug"]
    fig = fig6_crops(ctx, None)
    assert fig.axes[0].images[0].get_array().shape == (8, 8)  # the grey placeholder
    assert fig.get_suptitle().splitlines()[0] == (
        "tinyimagenet-crop: learned crops (Figure 6) (no crops saved: Random crop; sampled crops only: InstaAug; "
        "no test images saved: InstaAug)")
    _check(render("fig6-crops", ctx.frame, tmp_path, tmp_path / "out"))


# ---------------------------------------------------------------------------------------------- which seed
def _seeded_glyph_runs(root: Path, coverages: tuple[float, ...]) -> None:
    """One InstaAug rotation run per seed, with the given ground-truth coverage; seed s's ranges are +-(1 + s)."""
    meta = {"meta.angle": ANGLES, "meta.interval": torch.stack([-math.pi / 2 - ANGLES, math.pi / 2 - ANGLES], -1)}
    for seed, cov in enumerate(coverages):
        half = torch.full_like(ANGLES, 0.1 * (1 + seed))
        d = write_run(root, f"insta-{seed}", benchmark="glyphs-rotation", method="instaaug", seed=seed,
                      hparams={"parameterization": "rotation"}, test={"acc": 0.5, "coverage": cov, "violation": 0.0})
        torch.save({**_images(seed), **meta, "rotation_range": torch.stack([-half, half], -1)}, d / "inspect.pt")


def test_rotation_figure_shows_the_median_seed_by_coverage_and_says_so(tmp_path):
    _seeded_glyph_runs(tmp_path, (0.9, 0.2, 0.5))  # median coverage 0.5: seed 2
    fig = fig5_rotation(PlotContext(_frame(tmp_path), tmp_path), None)
    ax = fig.axes[0]
    assert ax.get_title().splitlines()[-1] == "seed 2, median coverage of 3 seeds"
    (learned,) = [c for c in ax.collections if type(c).__name__ == "LineCollection"]
    assert abs(float(learned.get_segments()[0][1][1])) == pytest.approx(math.degrees(0.3), abs=1e-3)  # seed 2's
    assert "the median seed by coverage" in fig.get_suptitle()


def test_even_seed_counts_take_the_lower_middle_and_ties_the_lower_seed(tmp_path):
    _seeded_glyph_runs(tmp_path, (0.8, 0.4, 0.4, 0.1))  # sorted: 0.1 (s3), 0.4 (s1), 0.4 (s2), 0.8 (s0)
    fig = fig5_rotation(PlotContext(_frame(tmp_path), tmp_path), None)
    assert fig.axes[0].get_title().splitlines()[-1] == "seed 1, median coverage of 4 seeds"


def test_crop_figure_shows_the_median_seed_by_its_ground_truth_score(tmp_path):
    for seed, keeps in enumerate((0.3, 0.9, 0.6)):
        d = write_run(tmp_path, f"insta-{seed}", benchmark="clutter-crop", method="instaaug", seed=seed, hparams=INSTA,
                      test={"acc": 0.9 - 0.1 * seed, "keeps_object": keeps})
        torch.save({**_images(seed), "crop_boxes": _boxes(seed)}, d / "inspect.pt")
    ctx = PlotContext(_frame(tmp_path), tmp_path)
    (insta,), _ = crop_sources(ctx, "clutter-crop", n_examples=2)
    assert insta.run_dir == "insta-2" and insta.shown == "seed 2, median keeps_object of 3 seeds"
    fig = fig6_crops(ctx, None)
    assert fig.axes[0].get_title() == "InstaAug, seed 2\ncrops"
    assert "the median seed by keeps_object (InstaAug: seed 2, median keeps_object of 3 seeds)" in fig.get_suptitle()


def _color_runs(root: Path) -> None:
    bench = "rawfoot-color"
    for seed in range(3):
        for hue in (0.0, 0.2):
            write_run(root, f"rc{hue}-{seed}", benchmark=bench, method="random-color", seed=seed,
                      hparams={"hue": hue, "saturation": 0.2, "value": 0.8},
                      test={"tta_acc_easy": 0.8 - hue, "tta_acc_hard": 0.5 + hue})
        for lam, val in ((0.01, 0.7), (0.1, 0.6)):  # two Augerino configurations: the table's is lam=0.01
            write_run(root, f"aug{lam}-{seed}", benchmark=bench, method="augerino", seed=seed, hparams={"lam": lam},
                      val_acc=(val,), test={"tta_acc_easy": 0.6 + lam, "tta_acc_hard": 0.4})
        write_run(root, f"insta-{seed}", benchmark=bench, method="instaaug", seed=seed,
                  hparams={"parameterization": "color"}, test={"tta_acc_easy": 0.85, "tta_acc_hard": 0.6})


def test_id_ood_figure_names_variants_seeds_and_explains_its_shading(tmp_path):
    _color_runs(tmp_path)
    fig = render_fig7(tmp_path)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["random colour: 2 settings (mean of their seeds)", "augerino, lam=0.01 (mean ± sd of 3 seeds)",
                      "instaaug (uniform) (mean ± sd of 3 seeds)"]
    (key,) = fig.legends
    texts = " | ".join(t.get_text() for t in key.get_texts())
    for channel in ("hue jitter", "size: value jitter", "opacity: saturation jitter", "thick line", "thin line"):
        assert channel in texts
    title = fig.axes[0].get_title()
    assert "mean ± sd over seeds" in title and "every seed" not in title  # what the markers are


def render_fig7(root: Path):
    from augbench.results.figures.id_ood import fig7_id_ood

    return fig7_id_ood(PlotContext(_frame(root), root), None)


# ---------------------------------------------------------------------------------------------- bars from zero
def test_table_and_bar_figures_start_at_zero(golden_frame):
    from augbench.results.figures.table_bars import fig_bars, fig_table

    ctx = PlotContext(golden_frame, GOLDEN_RUNS)
    figs = [fig_table(ctx, "1"), fig_table(ctx, "3"), *(f for _, f in fig_bars(ctx, None))]
    for fig in figs:
        for ax in fig.axes:
            if ax.patches:  # an axes with bars
                assert ax.get_xlim()[0] == 0.0, fig.get_suptitle()
                assert all(p.get_x() == 0.0 for p in ax.patches if p.get_width() > 0)
                assert ax.texts  # each bar labelled with its mean


def test_a_negative_gain_over_chance_is_drawn_left_of_zero(tmp_path):
    from augbench.results.figures.table_bars import fig_bars

    write_run(tmp_path, "free", benchmark="clutter-crop", method="instaaug", hparams={"conditioning": "input-free"},
              test={"acc": 0.98, "keeps_object": 0.91, "keeps_object_chance": 0.95})
    write_run(tmp_path, "insta", benchmark="clutter-crop", method="instaaug",
              test={"acc": 0.98, "keeps_object": 0.95, "keeps_object_chance": 0.87})
    ((_, fig),) = list(fig_bars(PlotContext(_frame(tmp_path), tmp_path), "clutter-crop"))
    accuracy, truth = fig.axes[0], fig.axes[1]
    assert accuracy.get_xlim()[0] == 0.0
    gains = sorted(p.get_width() for p in truth.patches if abs(p.get_width()) < 10 and p.get_width() != 0)
    assert gains == pytest.approx([-4.0, 8.0])  # percent points: the input-free crops lose to chance
    assert truth.get_xlim()[0] < -4.0


# ---------------------------------------------------------------------------------------------- demo output
def test_demo_output_holds_the_e1_heatmap_when_its_runs_are(tmp_path, monkeypatch):
    from augbench import demo

    monkeypatch.setattr("augbench.results.leaderboard.build_site", lambda *a, **k: [])
    root = tmp_path / "runs"
    for lo, hi in ((1.0, 1.5), (2.0, 2.5)):
        for seed in range(2):
            write_run(root, f"ia{lo}-{seed}", benchmark="clutter-crop", method="instaaug", seed=seed,
                      hparams={"parameterization": "lrp", "conditioning": "input", "h_min": lo, "h_max": hi,
                               "lambda_rule": "dynamic"}, test={"acc": 0.5 + lo / 10, "tta_acc": 0.5})
    written = demo.write_outputs(root, tmp_path / "out", report=lambda _: None)
    assert tmp_path / "out" / "figures" / "E1-heatmap.png" in written


# ---------------------------------------------------------------------------------------------- fit for a paper
def drawn_texts(fig) -> list:
    """The texts a render draws (visible, non-empty; tick labels outside the view are never drawn), with
    their boxes on the canvas."""
    from unittest import mock

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.text import Text

    seen: list = []
    draw = Text.draw

    def record(self, renderer):
        if self.get_visible() and self.get_text().strip():
            seen.append(self)
        return draw(self, renderer)

    FigureCanvasAgg(fig)
    with mock.patch.object(Text, "draw", record):
        fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    return [(t, t.get_window_extent(renderer)) for t in dict.fromkeys(seen)]


def overlapping_texts(fig) -> list[tuple[str, str]]:
    boxes = drawn_texts(fig)
    return [(a.get_text(), b.get_text()) for i, (a, ba) in enumerate(boxes) for b, bb in boxes[i + 1:]
            if ba.overlaps(bb)]


def _demo_like_runs(root: Path) -> None:
    """What the quick demo's glyphs-rotation rows look like: five methods, two seeds each, error bars,
    per-instance ranges with their true intervals (fig5's five panels)."""
    meta = {"meta.angle": ANGLES, "meta.interval": torch.stack([-math.pi / 2 - ANGLES, math.pi / 2 - ANGLES], -1)}
    methods = (("augerino", {}), ("flowinv", {}), ("instaaug", {"parameterization": "rotation"}),
               ("random-rotation", {}), ("teachaugment", {}))
    for i, (method, hp) in enumerate(methods):
        for seed in range(2):
            half = torch.full_like(ANGLES, 0.2 * (1 + i))
            d = write_run(root, f"{method}-{seed}", benchmark="glyphs-rotation", method=method, seed=seed, hparams=hp,
                          test={"acc": 1.0 - 0.003 * seed, "tta_acc": 0.997 + 0.003 * seed,
                                "coverage": 0.15 * (1 + i) + 0.08 * seed, "violation": 0.01 * seed})
            torch.save({**_images(seed), **meta, "rotation_range": torch.stack([-half, half], -1)}, d / "inspect.pt")
    for seed in range(2):
        write_run(root, f"none-{seed}", benchmark="glyphs-rotation", method="none", seed=seed,
                  test={"acc": 1.0, "tta_acc": 1.0})


def _table_2_and_5_runs(root: Path) -> None:
    """Fake runs of the two paper tables the golden set lacks, two seeds each."""
    for seed in range(2):
        for method, hp in (("none", {}), ("random-crop", {}), ("instaaug", INSTA)):
            acc = {f"{p}tta_acc@{n}": 0.7 + 0.01 * seed for p in ("", "resnet18/", "xcit/") for n in (1, 4, 10)}
            write_run(root, f"t2-{method}-{seed}", benchmark="imagenet-tta", method=method, seed=seed, hparams=hp,
                      test={"acc": 0.7, **acc})
            write_run(root, f"t5-{method}-{seed}", benchmark="tinyimagenet-contrastive", method=method, seed=seed,
                      hparams=hp, test={"acc": 0.4 + 0.01 * seed, "tta_acc": 0.45})


@pytest.fixture(scope="module")
def every_figure(tmp_path_factory, golden_frame):
    """Every registered figure, each on the golden runs or on small fake runs where those lack its inputs."""
    import seaborn as sns

    fake = tmp_path_factory.mktemp("fake")
    _demo_like_runs(fake / "demo")
    _crop_runs(fake / "crop")
    _color_runs(fake / "color")
    _table_2_and_5_runs(fake / "tables")
    sources = [(GOLDEN_RUNS, golden_frame)] + [(fake / d, _frame(fake / d)) for d in ("demo", "crop", "color",
                                                                                      "tables")]
    figures: dict[str, object] = {}
    with sns.axes_style("whitegrid"):
        for root, frame in sources:
            ctx = PlotContext(frame, root)
            for builder in FIGURES.values():
                try:
                    for fig_name, fig in builder(ctx, None):
                        figures[f"{fig_name} ({root.name})"] = fig
                except MissingRuns:
                    continue
    assert {key.split(" ")[0].split("-")[0] if key.startswith(("bars-", "curves-")) else key.split(" ")[0]
            for key in figures} >= set(FIGURES)
    return figures


@pytest.mark.slow
def test_no_figure_has_overlapping_text(every_figure):
    overlaps = {name: overlapping_texts(fig) for name, fig in every_figure.items()}
    assert {name: pairs for name, pairs in overlaps.items() if pairs} == {}


@pytest.mark.slow
def test_no_figure_text_runs_off_the_canvas(every_figure):
    """A title longer than the figure is cut off at its printed size (a class-ranges subtitle that
    listed every series' seed did)."""
    def outside(fig) -> list[str]:
        width, height = fig.canvas.get_width_height()
        return [t.get_text()[:60] for t, box in drawn_texts(fig)
                if box.x0 < -1 or box.x1 > width + 1 or box.y0 < -1 or box.y1 > height + 1]

    off = {name: outside(fig) for name, fig in every_figure.items()}
    assert {name: texts for name, texts in off.items() if texts} == {}


@pytest.mark.slow
def test_bar_labels_clear_their_error_bars(every_figure):
    """A bar's value label starts past its error bar and the paper's diamond, never on them."""
    checked = 0
    for name, fig in every_figure.items():
        if not name.startswith(("bars-", "table-")):
            continue
        drawn = dict((id(t), box) for t, box in drawn_texts(fig))
        renderer = fig.canvas.get_renderer()
        for ax in fig.axes:
            marks = [line.get_window_extent(renderer) for line in ax.lines if len(line.get_xdata())]
            marks += [c.get_window_extent(renderer) for c in ax.collections if len(c.get_offsets())]
            for label in ax.texts:
                box = drawn.get(id(label))
                hits = [m for m in marks if box is not None and box.overlaps(m) and m.width > 0]
                assert not hits, f"{name}: label {label.get_text()} lies on an error bar or marker"
                checked += box is not None
    assert checked > 20


@pytest.mark.slow
def test_titles_say_what_is_plotted(every_figure):
    for name, fig in every_figure.items():
        titles = " ".join([fig.get_suptitle()] + [ax.get_title() for ax in fig.axes])
        assert titles.strip(), f"{name} has no title"
        if name.startswith(("bars-", "fig7-")):
            assert "mean ± sd" in titles and "every seed" not in titles, name
        if name.startswith(("fig5-", "fig6-")):
            assert "median seed" in titles, name
