"""A user's own ImageFolder tree in every transformation family: `imagefolder-crop`,
`imagefolder-rotation` and `imagefolder-color`.

The split (documented in `augbench.datasets.imagefolder`): `data.root` holds either
train/<class>/ and val/<class>/ (or test/<class>/), or one tree <class>/ whose images are split
per class by `data.split_seed`, `data.test_fraction` of each class held out for testing. Images
are resized and centre-cropped to `data.image_size`. The test rows are interleaved by class (the
first of every class, then the second, ...), so the test images whose distribution parameters
inspect.pt keeps (the first `eval.inspect_samples`) cover the classes evenly; inspect.pt carries
their labels (`y`), their positions in the test split (`index`) and their files' positions in the
sorted listing (`meta.file_index`), so per-class analysis needs nothing of the loader's order.

Besides accuracy, the rotation and colour benchmarks report the mean width of the method's
learned ranges over the test set and its spread across classes (largest minus smallest class
mean): a class-dependent invariance shows as a spread well above zero.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor

from augbench.benchmarks import Benchmark, register_benchmark
from augbench.benchmarks.base import FOLDER_SCHEDULE
from augbench.benchmarks.color import PAPER_COLOR_SCHEDULE
from augbench.benchmarks.crop import (
    PAPER_CROP_SCHEDULE,
    SIZE_SETTINGS,
    CropBenchmark,
    require_root,
    sized,
)
from augbench.datasets.base import Dataset, Split
from augbench.datasets.stream import STREAM_SETTINGS, stream_options
from augbench.hparams import HParam

FOLDER_SETTINGS: dict[str, HParam] = {
    **SIZE_SETTINGS,
    **STREAM_SETTINGS,
    "data.image_size": HParam(64, int, low=8, high=1024, help="side of the square images (resize, centre crop)"),
    "data.test_fraction": HParam(0.2, float, low=0.01, high=0.9,
                                 help="one-tree layout only: fraction of each class held out for testing"),
    "data.split_seed": HParam(0, int, low=0, help="one-tree layout only: seed of the per-class split"),
}
COLOR_CHANNELS = ("hue", "saturation", "value")
MIN_CLASS_SAMPLES = 2  # classes with fewer test samples stay out of the spread across classes


def interleave_by_class(labels: Tensor) -> Tensor:
    """A permutation putting the first row of every class first, then the second of each, ...

    Rows keep their order within a class, so the result is deterministic without a seed.
    """
    n = len(labels)
    if n == 0:
        return torch.arange(0)
    by_class = torch.argsort(labels, stable=True)
    counts = torch.bincount(labels)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.empty_like(labels)
    rank[by_class] = torch.arange(n) - starts[labels[by_class]]
    return torch.argsort(rank * len(counts) + labels, stable=True)


def load_folder(bench: Benchmark) -> Dataset:
    """The tree at data.root in either layout, cut to data.n_train / data.n_test, test interleaved by class."""
    from augbench.datasets.imagefolder import load_imagefolder  # dataset code loads with the benchmark that runs

    s = bench.s
    # subclasses with settings of their own (imagenet-tta) may leave the one-tree options out
    fraction = s.get("data.test_fraction", FOLDER_SETTINGS["data.test_fraction"].default)
    seed = s.get("data.split_seed", FOLDER_SETTINGS["data.split_seed"].default)
    ds = sized(load_imagefolder(require_root(bench, "an ImageFolder tree"), s["data.image_size"],
                                test_fraction=fraction, split_seed=seed, **stream_options(s)), s)
    test = ds.test.subset(interleave_by_class(ds.test.y))
    return Dataset(ds.name, ds.train, test, ds.classes, {**ds.info, "test_order": "interleaved by class"})


def width_metrics(key: str, ranges: Tensor, labels: Tensor, scale: float = 1.0) -> dict[str, float]:
    """`key`: mean width of per-sample ranges (N, 2) times `scale`; `key`_class_spread: largest minus
    smallest class mean, over classes with at least MIN_CLASS_SAMPLES test samples."""
    width = (ranges[:, 1] - ranges[:, 0]).float() * scale
    labels = labels[: len(width)].to(width.device)
    out = {key: width.mean().item()}
    counts = torch.bincount(labels)
    sums = torch.bincount(labels, weights=width, minlength=len(counts))
    kept = counts >= MIN_CLASS_SAMPLES
    if int(kept.sum()) >= 2:
        means = sums[kept] / counts[kept]
        out[f"{key}_class_spread"] = (means.max() - means.min()).item()
    return out


@register_benchmark("imagefolder-crop")
class ImageFolderCrop(CropBenchmark):
    """A user's own ImageFolder tree with the cropping protocol (Tiny-ImageNet's schedule)."""

    description = "your data: data.root with train/<class>/ and val/<class>/ (or test/), or one <class>/ tree"
    settings = dict(FOLDER_SETTINGS)
    defaults = {**PAPER_CROP_SCHEDULE, **FOLDER_SCHEDULE}

    def load(self) -> Dataset:
        """An ImageFolder tree, resized and centre-cropped to data.image_size."""
        return load_folder(self)


@register_benchmark("imagefolder-rotation")
class ImageFolderRotation(Benchmark):
    """A user's own ImageFolder tree, rotation family: which rotations keep each image's label?

    No ground truth: `rotation_width_deg` (mean over the test set) and its spread across
    classes say how wide and how class-dependent the learned ranges are.
    """

    family = "rotation"
    paper = "Section 5.1 protocol on your data"
    description = "your data, rotations: data.root with train/ and val/ (or test/) class folders, or one tree"
    settings = {**FOLDER_SETTINGS, "data.image_size": HParam(32, int, low=8, high=1024,
                                                              help="side of the square images (resize, centre crop)")}
    # glyphs-rotation's short CPU schedule (small CNN, 15 epochs)
    defaults = {"train.epochs": 15, "train.batch_size": 64, "train.lr": 0.05, "eval.tta_views": 10,
                **FOLDER_SCHEDULE}

    def load(self) -> Dataset:
        """An ImageFolder tree, resized and centre-cropped to data.image_size."""
        return load_folder(self)

    def metrics(self, split: Split, correct: Tensor, tta_correct: Tensor | None,
                inspect: Mapping[str, Tensor]) -> dict[str, float]:
        rng = inspect.get("rotation_range")
        if rng is None:
            return {}
        return width_metrics("rotation_width_deg", rng.cpu(), split.y.cpu(), scale=180.0 / math.pi)


@register_benchmark("imagefolder-color")
class ImageFolderColor(Benchmark):
    """A user's own ImageFolder tree, colour family (RawFooT's schedule): which colour changes keep a label?

    No lighting groups: `hue_width`, `saturation_width`, `value_width` (mean learned ranges of the
    deltas) and their spreads across classes say how wide and how class-dependent they are.
    """

    family = "color"
    paper = "Section 5.4 protocol on your data"
    description = "your data, colour jitter: data.root with train/ and val/ (or test/) class folders, or one tree"
    settings = dict(FOLDER_SETTINGS)
    defaults = {**PAPER_COLOR_SCHEDULE, **FOLDER_SCHEDULE}

    def load(self) -> Dataset:
        """An ImageFolder tree, resized and centre-cropped to data.image_size."""
        return load_folder(self)

    def metrics(self, split: Split, correct: Tensor, tta_correct: Tensor | None,
                inspect: Mapping[str, Tensor]) -> dict[str, float]:
        out: dict[str, float] = {}
        for channel in COLOR_CHANNELS:
            rng = inspect.get(f"{channel}_range")
            if rng is not None:
                out.update(width_metrics(f"{channel}_width", rng.cpu(), split.y.cpu()))
        return out
