"""Colour benchmarks: RawFooT (Tables 3 and 4, Figure 7) and the embedded `texture-color`.

Both train under one (or a few) lighting conditions and test under many, reporting accuracy
on the general test set and on the near (easy / in-distribution) and far (hard /
out-of-distribution) lighting groups.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from augbench.benchmarks import Benchmark, accuracy_by_group, magnitude_metrics, register_benchmark
from augbench.benchmarks.base import STAND_IN_SCHEDULE
from augbench.benchmarks.crop import ROOT, require_root
from augbench.datasets.base import Dataset, Split
from augbench.hparams import HParam

# Paper D.2: PreActResNet-18 width 1 (the network its D.1 names for Tiny-ImageNet: at 64 px its code's,
# 3x3 stride-2 stem), SGD lr 0.02 momentum 0.9 wd 1e-4, 50 epochs, no lr schedule; phi at 1e-5.
# Where the paper is silent, its code's: batch 100, Nesterov momentum, flips.
PAPER_COLOR_SCHEDULE: dict[str, Any] = {
    "model.name": "preact_resnet18_paper", "train.epochs": 50, "train.batch_size": 100, "train.lr": 0.02,
    "train.momentum": 0.9, "train.nesterov": True, "train.weight_decay": 1e-4, "train.scheduler": "none",
    "train.hflip": True, "eval.tta_views": 10,
}
# Table D.1 of the paper.
RAWFOOT_GROUPS = {"easy": [1, 2, 3, 4, 10, *range(14, 32)], "hard": [5, 6, 7, 8, 9, 11, 12, 13, *range(32, 47)]}


def group_metrics(split: Split, key: str, groups: Mapping[str, list[int]], correct: Tensor,
                  tta_correct: Tensor | None) -> dict[str, float]:
    out = accuracy_by_group(correct, split.meta[key][: len(correct)], groups, "acc_")
    if tta_correct is not None:
        out.update(accuracy_by_group(tta_correct, split.meta[key][: len(tta_correct)], groups, "tta_acc_"))
    return out


@register_benchmark("rawfoot-color")
class RawFootColor(Benchmark):
    """RawFooT: 68 textures x 46 lightings; train patches from upper halves, test from lower halves."""

    family = "color"
    paper = "Tables 3 and 4, Figure 7"
    description = "RawFooT food textures; data.root = folder of NNNN-LL.png files"
    settings = {
        "data.root": ROOT,
        "data.train_lightings": HParam([], int, is_list=True,
                                       help="training lighting indices; empty: D45 alone (data.d45)"),
        "data.random_lightings": HParam(0, int, low=0, high=46,
                                        help="Table 4: train on k lightings drawn by data.lighting_seed"),
        "data.lighting_seed": HParam(0, int, low=0),
        "data.d45": HParam(1, int, low=1, high=46, help="index of D45 in the dataset's lighting order"),
        "data.patches_per_image": HParam(200, int, low=1),
        "data.test_patches_per_image": HParam(20, int, low=1),
        "data.patch_size": HParam(200, int, low=8),
        "data.image_size": HParam(64, int, low=8, help="patches are resized to this side"),
    }
    defaults = dict(PAPER_COLOR_SCHEDULE)

    def train_lightings(self) -> list[int]:
        s = self.s
        if s["data.train_lightings"]:
            return sorted(s["data.train_lightings"])
        if s["data.random_lightings"]:
            g = torch.Generator().manual_seed(s["data.lighting_seed"])
            return sorted((torch.randperm(46, generator=g)[: s["data.random_lightings"]] + 1).tolist())
        return [s["data.d45"]]

    def load(self) -> Dataset:
        """RawFooT patches: upper halves for training, lower halves of every lighting for testing."""
        from augbench.datasets.rawfoot import load_rawfoot  # dataset code loads with the benchmark that runs

        s = self.s
        return load_rawfoot(require_root(self, "RawFooT"), self.train_lightings(), s["data.patches_per_image"],
                            s["data.patch_size"], seed=0, test_patches_per_image=s["data.test_patches_per_image"],
                            out_size=s["data.image_size"])

    def metrics(self, split: Split, correct: Tensor, tta_correct: Tensor | None,
                inspect: Mapping[str, Tensor]) -> dict[str, float]:
        return group_metrics(split, "lighting", RAWFOOT_GROUPS, correct, tta_correct)


@register_benchmark("texture-color")
class TextureColor(Benchmark):
    """Procedural textures: some classes differ only by hue, others only by pattern.

    Trained under one simulated illuminant, tested under many; reports general, in- and
    out-of-distribution accuracy, whether learned hue ranges are narrow exactly for the
    hue-defined classes (`hue_width_defined` vs `hue_width_free`), and how much of each
    instance's label-preserving arc of hue shifts they cover (`hue_coverage`) and how much of
    them lies outside it (`hue_violation`). A global range that leaves no hue class's arc lies
    within +-0.065 turns (where lemon's and lime's arcs overlap): it covers at most 13% of a
    pattern class's circle and 26% of a hue class's half-turn arc. For methods with a per-image
    magnitude: its mean on the hue-defined classes, whose label desaturation and other colour ops
    destroy (`magnitude_fragile`), and on the pattern classes (`magnitude_robust`).
    """

    family = "color"
    paper = "Tables 3 and 4, Figure 7 (embedded stand-in)"
    embedded = True
    description = "procedural textures, hue-defined and pattern-defined classes, many test illuminants"
    settings = {
        "data.n_train_per_class": HParam(300, int, low=1),
        "data.n_test_per_class": HParam(20, int, low=1),
        "data.image_size": HParam(32, int, low=8, high=256),
        "data.seed": HParam(0, int, low=0),
    }
    defaults = {"train.epochs": 15, "train.batch_size": 64, "train.lr": 0.05, "eval.tta_views": 10,
                **STAND_IN_SCHEDULE}

    def load(self) -> Dataset:
        """Generated textures (deterministic in data.seed, cached)."""
        from augbench.datasets.texture import make_texture  # dataset code loads with the benchmark that runs

        s = self.s
        ds = make_texture(s["data.n_train_per_class"], s["data.n_test_per_class"], s["data.image_size"], s["data.seed"])
        self._info = ds.info
        return ds

    def metrics(self, split: Split, correct: Tensor, tta_correct: Tensor | None,
                inspect: Mapping[str, Tensor]) -> dict[str, float]:
        from augbench.datasets.glyphs import interval_metrics  # the generators' ground truth, with the run
        from augbench.datasets.texture import HUE_DEFINED_CLASSES, hue_range_narrowness, hue_safe_shifts, make_texture

        info = getattr(self, "_info", None) or make_texture(1, 1, self.s["data.image_size"], self.s["data.seed"]).info
        out = group_metrics(split, "illuminant", info["groups"], correct, tta_correct)
        hue = inspect.get("hue_range")
        if hue is not None:
            y = split.y[: len(hue)].cpu()
            m = hue_range_narrowness(hue.float(), y, HUE_DEFINED_CLASSES)
            out.update({"hue_width_defined": m["hue_defined"], "hue_width_free": m["hue_free"]})
            safe = interval_metrics(hue.float().cpu(), hue_safe_shifts(split.meta["hue"][: len(hue)].cpu(), y))
            out.update(hue_coverage=safe["coverage"].mean().item(), hue_violation=safe["violation"].mean().item())
        out.update(magnitude_metrics(split.y, inspect, torch.isin(split.y, torch.tensor(HUE_DEFINED_CLASSES))))
        return out
