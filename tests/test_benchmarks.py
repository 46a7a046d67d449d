"""Every benchmark runs a tiny configuration end to end; real-data ones on fake official trees."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# fake trees in the official layouts, built by the loaders' own tests
from test_datasets_cifar import make_cifar10
from test_datasets_fashion_mnist import make_files as make_fashion_mnist
from test_datasets_imagefolder import make_tree as make_imagefolder
from test_datasets_rawfoot import LIGHTINGS as RAWFOOT_LIGHTINGS
from test_datasets_rawfoot import make_tree as make_rawfoot
from test_datasets_tinyimagenet import make_tree as make_tinyimagenet

from augbench.benchmarks import get_benchmark, list_benchmarks
from augbench.cli import main
from augbench.methods import get_method
from augbench.runs import execute, resolve

SMALL_TRAIN = {"train.epochs": 1, "train.batch_size": 4, "eval.tta_views": 2, "run.progress": False,
               "model.name": "small_cnn", "model.width": 0.25, "train.val_fraction": 0.25}

EMBEDDED_CASES = {
    "glyphs-rotation": ("random-rotation", {"data.n_train": 64, "data.n_test": 16}, {"coverage", "violation"}),
    "clutter-crop": ("random-crop", {"data.n_train": 64, "data.n_test": 16}, {"keeps_object", "crop_area"}),
    "texture-color": ("none", {"data.n_train_per_class": 8, "data.n_test_per_class": 1}, {"acc_id", "acc_ood"}),
}


def test_every_embedded_benchmark_is_covered():
    embedded = {n for n in list_benchmarks() if get_benchmark(n).embedded}
    assert embedded >= set(EMBEDDED_CASES)


@pytest.mark.parametrize("bench", sorted(EMBEDDED_CASES))
def test_embedded_benchmark_end_to_end(bench, tmp_path):
    method, data, expected = EMBEDDED_CASES[bench]
    cfg = resolve(bench, method, 0, {**SMALL_TRAIN, **data})
    metrics = execute(cfg, tmp_path / "run")
    assert expected <= set(metrics) and 0.0 <= metrics["acc"] <= 1.0


def _tinyimagenet(tmp: Path) -> dict:
    return {"data.root": str(make_tinyimagenet(tmp / "tiny-imagenet-200"))}


def _cifar(tmp: Path) -> dict:
    make_cifar10(tmp / "cifar", per_batch=4)
    return {"data.root": str(tmp / "cifar")}


def _imagefolder(tmp: Path) -> dict:
    return {"data.root": str(make_imagefolder(tmp / "folder")), "data.image_size": 16}


def _rawfoot(tmp: Path) -> dict:
    make_rawfoot(tmp / "rawfoot")
    return {"data.root": str(tmp / "rawfoot"), "data.d45": RAWFOOT_LIGHTINGS[0], "data.patches_per_image": 4,
            "data.test_patches_per_image": 1, "data.patch_size": 8, "data.image_size": 8}


def _fashion(tmp: Path) -> dict:
    make_fashion_mnist(tmp / "fmnist", n_train=12)
    return {"data.root": str(tmp / "fmnist")}


REAL_CASES = {
    "tinyimagenet-crop": (_tinyimagenet, "random-crop", set()),
    "cifar10-crop": (_cifar, "random-crop", set()),
    "imagefolder-crop": (_imagefolder, "random-crop", set()),
    "imagefolder-rotation": (_imagefolder, "random-rotation", {"rotation_width_deg"}),
    "imagefolder-color": (_imagefolder, "random-color", {"hue_width"}),
    "rawfoot-color": (_rawfoot, "none", {"acc_easy"}),
    "fashion-mnist-crop": (_fashion, "random-crop", set()),
}


@pytest.mark.parametrize("bench", sorted(REAL_CASES))
def test_real_data_benchmark_on_fake_official_tree(bench, tmp_path):
    build, method, expected = REAL_CASES[bench]
    cfg = resolve(bench, method, 0, {**SMALL_TRAIN, **build(tmp_path)})
    metrics = execute(cfg, tmp_path / "run")
    assert expected <= set(metrics) and 0.0 <= metrics["tta_acc"] <= 1.0


# the newer learned methods on every paper benchmark of their family, with that benchmark's
# method defaults; FlowInv's 10 burn-in epochs would leave its flow untouched in one epoch
NEWER_ON_PAPER = [("flowinv", b, {"method.burnin_epochs": 0}) for b in ("tinyimagenet-crop", "cifar10-crop")] + [
    (m, b, {}) for m in ("madaug", "teachaugment", "entaugment", "adaaugment", "sra")
    for b in ("tinyimagenet-crop", "cifar10-crop", "rawfoot-color")]


@pytest.mark.parametrize("method,bench,extra", NEWER_ON_PAPER, ids=[f"{m}-{b}" for m, b, _ in NEWER_ON_PAPER])
def test_newer_methods_run_on_the_paper_benchmarks_of_their_family(method, bench, extra, tmp_path):
    build = REAL_CASES[bench][0]
    cfg = resolve(bench, method, 0, {**SMALL_TRAIN, **build(tmp_path), **extra})
    for name, value in get_method(method).recipes.get(bench, {}).items():
        if f"method.{name}" not in extra:
            assert cfg.hparams[name] == value, (name, cfg.hparams[name])  # the benchmark's recipe is in force
    metrics = execute(cfg, tmp_path / "run")
    assert 0.0 <= metrics["tta_acc"] <= 1.0


def test_the_cifar_recipes_of_the_per_sample_magnitude_methods_are_in_force():
    """Their CIFAR pipelines' Cutout: 16 px on CIFAR-10; EntAugment and AdaAugment 8 px on CIFAR-100."""
    cutout = {(m, b): resolve(b, m).hparams["cutout"] for m in ("entaugment", "adaaugment", "sra")
              for b in ("cifar10-crop", "cifar100-crop")}
    assert cutout == {("entaugment", "cifar10-crop"): 16, ("entaugment", "cifar100-crop"): 8,
                      ("adaaugment", "cifar10-crop"): 16, ("adaaugment", "cifar100-crop"): 8,
                      ("sra", "cifar10-crop"): 16, ("sra", "cifar100-crop"): 16}


@pytest.mark.skipif(not os.path.exists("/usr/share/datasets/fashion-mnist"),
                    reason="Debian package dataset-fashion-mnist not installed")
def test_fashion_mnist_reads_the_debian_package(tmp_path):
    cfg = resolve("fashion-mnist-crop", "random-crop", 0,
                  {**SMALL_TRAIN, "data.n_train": 64, "data.n_test": 32, "train.batch_size": 16})
    assert execute(cfg, tmp_path / "run")["acc"] >= 0.0


@pytest.mark.parametrize("bench", ["tinyimagenet-crop", "rawfoot-color", "cifar100-crop"])
def test_missing_or_broken_data_root_is_one_line_exit_2(bench, tmp_path, capsys):
    method = "none"
    assert main(["run", bench, "--method", method, "--set", "train.epochs=1"]) == 2
    assert "pass --set data.root=PATH" in capsys.readouterr().err
    assert main(["run", bench, "--method", method, "--set", f"data.root={tmp_path / 'nowhere'}",
                 "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("augbench: error")]
    assert len(errors) == 1 and str(tmp_path / "nowhere") in errors[0] and "Traceback" not in err
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_clutter_crop_scores_magnitudes_by_the_objects_distance_to_the_border():
    """Objects within an eighth of the side of a border are the fragile ones (shifts push them out)."""
    import torch

    from augbench.datasets.base import Split
    from augbench.settings import create_benchmark

    boxes = torch.tensor([[0.0, 10, 8, 18], [12, 12, 20, 20], [26, 5, 32, 11], [10, 9, 18, 17]])
    split = Split(torch.zeros(4, 3, 32, 32, dtype=torch.uint8), torch.zeros(4, dtype=torch.long), {"box": boxes})
    bench = create_benchmark("clutter-crop", {})
    m = bench.metrics(split, torch.ones(4, dtype=torch.bool), None, {"magnitude": torch.tensor([0.2, 0.9, 0.4, 0.7])})
    assert m["magnitude_fragile"] == pytest.approx(0.3) and m["magnitude_robust"] == pytest.approx(0.8)
    assert m["magnitude"] == pytest.approx(0.55)
    assert "magnitude" not in bench.metrics(split, torch.ones(4, dtype=torch.bool), None, {})
