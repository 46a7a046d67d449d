"""`glyphs-rotation`: the paper's rotated-sprites experiment (Section 5.1, Figure 5), embedded."""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor

from augbench.benchmarks import Benchmark, register_benchmark
from augbench.datasets.base import Dataset, Split
from augbench.datasets.glyphs import interval_metrics, make_glyphs
from augbench.hparams import HParam


@register_benchmark("glyphs-rotation")
class GlyphsRotation(Benchmark):
    """Four classes (glyph x upright/upside-down) rotated within +-pi/4: a known local invariance.

    Besides accuracy it scores a method's per-instance rotation range ("rotation_range" from
    `inspect`, radians) against each test instance's true label-preserving interval.
    """

    family = "rotation"
    paper = "Figure 5"
    embedded = True
    description = "procedural glyphs, 4 classes, rotation invariance known per instance"
    settings = {
        "data.n_train": HParam(2000, int, low=8),
        "data.n_test": HParam(1000, int, low=8),
        "data.image_size": HParam(32, int, low=8, high=256),
        "data.seed": HParam(0, int, low=0, help="generator seed: fixed, so every run sees the same data"),
    }
    defaults = {"train.epochs": 15, "train.batch_size": 64, "train.lr": 0.05, "eval.tta_views": 10}

    def load(self) -> Dataset:
        s = self.s
        return make_glyphs(s["data.n_train"], s["data.n_test"], s["data.image_size"], s["data.seed"])

    def metrics(self, split: Split, correct: Tensor, tta_correct: Tensor | None,
                inspect: Mapping[str, Tensor]) -> dict[str, float]:
        rng = inspect.get("rotation_range")
        if rng is None:
            return {}
        m = interval_metrics(rng.float().cpu(), split.meta["interval"][: len(rng)].float().cpu())
        return {"coverage": m["coverage"].mean().item(), "violation": m["violation"].mean().item()}
