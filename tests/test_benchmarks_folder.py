"""`imagefolder-rotation` / `imagefolder-color` (and `-crop`) on small fake trees in every layout.

Checks the documented split (train/ + val/ or test/, or one tree split by a seed), the image
size setting, the family rule, and that inspect.pt carries labels, test positions and file
indices, with the test rows interleaved by class so its first samples cover every class.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from torchvision.io import encode_png, write_file

from augbench.benchmarks.folder import interleave_by_class, width_metrics
from augbench.errors import ConfigError
from augbench.runs import execute, resolve
from augbench.settings import create_benchmark

pytestmark = pytest.mark.filterwarnings("ignore:The image decoding and encoding:DeprecationWarning")

CLASSES = ("ant", "bee", "cat")
COLOURS = ((220, 30, 30), (30, 220, 30), (30, 30, 220))
TINY = {"train.epochs": 1, "train.batch_size": 4, "eval.tta_views": 2, "run.progress": False,
        "model.name": "small_cnn", "model.width": 0.25, "train.val_fraction": 0.25, "data.image_size": 12}


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("AUGBENCH_CACHE", str(tmp_path / "cache"))


def _image(path: Path, colour: tuple[int, int, int], shade: int) -> None:
    img = torch.tensor(colour, dtype=torch.uint8).view(3, 1, 1).repeat(1, 14, 18)
    img[:, :4] = shade  # a band that tells the images of one class apart
    path.parent.mkdir(parents=True, exist_ok=True)
    write_file(str(path), encode_png(img))


def make_folder(root: Path, layout: str, per_class: int = 6) -> Path:
    """layout: "val" or "test" (train/ plus that folder), or "single" (one <class>/ tree)."""
    for name, colour in zip(CLASSES, COLOURS):
        for i in range(per_class):
            part = "" if layout == "single" else ("train" if i < per_class - 2 else layout)
            _image(root / part / name / f"{i:02d}.png", colour, 10 * i)
    return root


def _test_listing(root: Path, layout: str) -> list[str]:
    """Class of each file in the sorted listing that meta.file_index points into."""
    base = root if layout == "single" else root / layout
    return [d.name for d in sorted(base.iterdir()) for _ in sorted(d.glob("*.png"))]


CASES = [
    ("imagefolder-rotation", "val", "random-rotation", {"rotation_width_deg", "rotation_width_deg_class_spread"}),
    ("imagefolder-rotation", "single", "random-rotation", {"rotation_width_deg"}),
    ("imagefolder-rotation", "test", "augerino", {"rotation_width_deg"}),
    ("imagefolder-color", "val", "random-color", {"hue_width", "saturation_width", "value_width"}),
    ("imagefolder-color", "single", "augerino", {"hue_width", "value_width_class_spread"}),
    ("imagefolder-crop", "single", "random-crop", {"crop_area"}),
    ("imagefolder-rotation", "val", "instaaug", {"rotation_width_deg", "entropy"}),  # the folder rule's defaults
]


@pytest.mark.parametrize("bench,layout,method,expected", CASES, ids=[f"{b}-{lay}-{m}" for b, lay, m, _ in CASES])
def test_folder_benchmark_runs_and_inspect_names_every_sample(bench, layout, method, expected, tmp_path):
    root = make_folder(tmp_path / "tree", layout)
    settings = {**TINY, "data.root": str(root)}
    if layout == "single":
        settings["data.test_fraction"] = 0.34  # round(0.34 * 6) = 2 test images per class
    metrics = execute(resolve(bench, method, 0, settings), tmp_path / "run")
    assert expected <= set(metrics) and 0.0 <= metrics["tta_acc"] <= 1.0

    ins = torch.load(tmp_path / "run" / "inspect.pt", weights_only=True)
    assert ins["x"].shape == (6, 3, 12, 12)  # data.image_size, two test images per class
    assert ins["index"].tolist() == list(range(6))
    assert ins["y"].tolist() == [0, 1, 2, 0, 1, 2]  # interleaved by class: any prefix covers the classes
    listing = _test_listing(root, layout)
    assert [listing[i] for i in ins["meta.file_index"].tolist()] == [CLASSES[y] for y in ins["y"].tolist()]
    # the images are those files: the class colour dominates
    assert ins["x"].float().mean(dim=(2, 3)).argmax(1).tolist() == ins["y"].tolist()


def test_global_methods_have_no_class_spread(tmp_path):
    root = make_folder(tmp_path / "tree", "val")
    metrics = execute(resolve("imagefolder-rotation", "random-rotation", 0,
                              {**TINY, "data.root": str(root), "random-rotation:max_angle": 30.0}), tmp_path / "run")
    assert metrics["rotation_width_deg"] == pytest.approx(60.0)
    assert metrics["rotation_width_deg_class_spread"] == pytest.approx(0.0, abs=1e-4)


def test_width_metrics_measure_class_dependence():
    ranges = torch.tensor([[-1.0, 1.0], [-1.0, 1.0], [0.0, 0.5], [0.0, 0.5], [0.0, 3.0]])
    labels = torch.tensor([0, 0, 1, 1, 2])  # class 2 has one sample: out of the spread
    out = width_metrics("w", ranges, labels)
    assert out["w"] == pytest.approx((2 + 2 + 0.5 + 0.5 + 3) / 5)
    assert out["w_class_spread"] == pytest.approx(1.5)
    assert "w_class_spread" not in width_metrics("w", ranges[:2], labels[:2])  # one class: no spread


def test_interleave_by_class_keeps_order_within_a_class():
    labels = torch.tensor([0, 0, 0, 1, 1, 2])
    perm = interleave_by_class(labels)
    assert labels[perm].tolist() == [0, 1, 2, 0, 1, 0] and perm.tolist() == [0, 3, 5, 1, 4, 2]


def test_image_size_and_split_settings_reach_the_loader(tmp_path):
    root = make_folder(tmp_path / "tree", "single", per_class=5)
    bench = create_benchmark("imagefolder-color", {"data.root": str(root), "data.image_size": 10,
                                                   "data.test_fraction": 0.4, "data.split_seed": 2})
    ds = bench.load()
    assert ds.image_shape == (3, 10, 10) and len(ds.test) == 6 and len(ds.train) == 9
    assert ds.info["split_seed"] == 2 and ds.info["test_order"] == "interleaved by class"


@pytest.mark.parametrize("bench,method,hp", [
    ("imagefolder-rotation", "random-crop", {}),
    ("imagefolder-rotation", "random-color", {}),
    ("imagefolder-rotation", "instaaug", {"parameterization": "lrp"}),
    ("imagefolder-crop", "augerino", {"generators": "rotation"}),
    ("imagefolder-crop", "random-rotation", {}),
    ("imagefolder-color", "augerino", {"space": "affine"}),
    ("imagefolder-color", "instaaug", {"parameterization": "rotation"}),
])
def test_folder_benchmarks_refuse_other_families(bench, method, hp):
    with pytest.raises(ConfigError, match="family"):
        resolve(bench, method, 0, {"data.root": "/nowhere", **hp})


def test_folder_benchmarks_pick_their_family_s_method_defaults():
    assert resolve("imagefolder-rotation", "instaaug").hparams["parameterization"] == "rotation"
    assert resolve("imagefolder-rotation", "augerino").hparams["generators"] == "rotation"
    assert resolve("imagefolder-color", "instaaug").hparams["parameterization"] == "color"
    assert resolve("imagefolder-color", "augerino").hparams["space"] == "hsv"
    assert resolve("imagefolder-crop", "instaaug").hparams["parameterization"] == "lrp"


FOLDER_BENCHMARKS = ("imagefolder-rotation", "imagefolder-color", "imagefolder-crop", "fashion-mnist-crop")


@pytest.mark.parametrize("bench", FOLDER_BENCHMARKS)
def test_folder_benchmarks_take_instaaug_s_defaults_from_the_schedule_rule(bench):
    """One rule for every folder benchmark, scaled by the schedule: pretraining is a tenth of the epochs."""
    from augbench.methods.instaaug.schedule_rule import FOLDER_RULE

    cfg = resolve(bench, "instaaug", 0, {"data.root": "/nowhere"})
    assert {k: cfg.hparams[k] for k in FOLDER_RULE} == FOLDER_RULE
    assert cfg.settings["train.val_checks"] == 4
    assert cfg.hparams["pretrain_epochs"] == math.ceil(0.1 * cfg.settings["train.epochs"])
    longer = resolve(bench, "instaaug", 0, {"data.root": "/nowhere", "train.epochs": 40})
    assert longer.hparams["pretrain_epochs"] == 4
    assert resolve(bench, "instaaug", 0, {"data.root": "/nowhere", "train.epochs": 3}).hparams["pretrain_epochs"] == 1
    # a one-epoch smoke test keeps its epoch for phi rather than being refused
    assert resolve(bench, "instaaug", 0, {"data.root": "/nowhere", "train.epochs": 1}).hparams["pretrain_epochs"] == 0


def test_the_rule_s_pretraining_yields_to_explicit_epochs_only_when_asked():
    with pytest.raises(ConfigError, match="pretrain_fraction=none") as err:
        resolve("imagefolder-rotation", "instaaug", 0, {"pretrain_epochs": 5})
    assert "\n" not in str(err.value)
    cfg = resolve("imagefolder-rotation", "instaaug", 0, {"pretrain_epochs": 5, "pretrain_fraction": "none"})
    assert cfg.hparams["pretrain_epochs"] == 5
    again = resolve("imagefolder-rotation", "instaaug", 0, {"pretrain_epochs": 2})  # what the rule gives: accepted
    assert again.run_id == resolve("imagefolder-rotation", "instaaug", 0).run_id


def test_dry_run_shows_the_rule_s_derived_values(capsys):
    from augbench.cli import main

    assert main(["run", "imagefolder-rotation", "--method", "instaaug", "--dry-run", "--set", "train.epochs=30"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["hparams"]["pretrain_epochs"] == 3 and out["hparams"]["range_map"] == "linear"
    assert out["sources"]["pretrain_epochs"] == "derived: pretrain_fraction=0.1 of the schedule"
    assert out["sources"]["range_map"] == "benchmark default"
