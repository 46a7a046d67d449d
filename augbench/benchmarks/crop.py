"""Cropping benchmarks: the paper's Tiny-ImageNet protocol (Table 1, E.1, Figures 6, E.1),
the same protocol on CIFAR, Fashion-MNIST and the embedded `clutter-crop`, whose object boxes
say which crops keep the label. A user's ImageFolder tree (`imagefolder-crop`) is in
`augbench.benchmarks.folder`, beside its rotation and colour counterparts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import torch
from torch import Tensor

from augbench.benchmarks import Benchmark, magnitude_metrics, register_benchmark
from augbench.benchmarks.base import FOLDER_SCHEDULE, STAND_IN_SCHEDULE
from augbench.datasets.base import Dataset, Split
from augbench.errors import DataError
from augbench.hparams import HParam

ROOT = HParam("", str, identity=False, help="dataset folder (official layout)")
#: clutter-crop's fragile images: the object within an eighth of the side of a border (4 px of 32, as far
#: as the 4-px pad-and-crop alone moves the content), where shifts, shears and rotations cut it
EDGE_MARGIN = 1 / 8

# Paper D.1: PreActResNet-18 width 1, SGD lr 0.2 momentum 0.9 wd 1e-4, batch 100, lr x0.9 after
# 10 epochs without validation improvement, at most 150 epochs, TTA 50. Where the paper is
# silent, its code's: the network (3x3 stride-2 stem, 1.11 GFLOPs at 64 px), Nesterov momentum,
# flips for every method.
PAPER_CROP_SCHEDULE: dict[str, Any] = {
    "model.name": "preact_resnet18_paper", "train.epochs": 150, "train.batch_size": 100, "train.lr": 0.2,
    "train.momentum": 0.9, "train.nesterov": True, "train.weight_decay": 1e-4, "train.scheduler": "plateau",
    "train.plateau_factor": 0.9, "train.plateau_patience": 10, "train.hflip": True, "eval.tta_views": 50,
    "eval.batch_size": 500,
}
#: The classifier's linear lr warm-up: the paper is silent; its code warms up over the first 1000
#: steps of a run from scratch (Tiny-ImageNet) and over 500 steps in the contrastive runs.
WARMUP_SETTINGS = {
    "train.warmup_steps": HParam(0, int, low=0, help="linear warm-up of the classifier's lr over the first N steps"),
}


def require_root(bench: Benchmark, what: str) -> str:
    """The data root, or a one-line error saying how to give it."""
    root = bench.s["data.root"]
    if not root:
        raise DataError(f"{bench.name} reads {what} from disk: pass --set data.root=PATH")
    return root


def subsample(split: Split, n: int | None, seed: int) -> Split:
    """A fixed random subset of `n` rows (the same for every run): the size knob of real datasets."""
    if n is None or n >= len(split):
        return split
    perm = torch.randperm(len(split), generator=torch.Generator().manual_seed(seed))[:n]
    return split.subset(perm.sort().values)


def sized(ds: Dataset, s: Mapping[str, Any]) -> Dataset:
    """`ds` cut to `data.n_train` / `data.n_test` rows."""
    return Dataset(ds.name, subsample(ds.train, s["data.n_train"], 0), subsample(ds.test, s["data.n_test"], 1),
                   ds.classes, ds.info)


SIZE_SETTINGS = {
    "data.root": ROOT,
    "data.n_train": HParam(None, int, low=1, nullable=True, help="use a fixed subset of the training set"),
    "data.n_test": HParam(None, int, low=1, nullable=True, help="use a fixed subset of the test set"),
}


def crop_metrics(split: Split, inspect: Mapping[str, Tensor]) -> dict[str, float]:
    """Mean size of the method's sampled crops (area fraction), when it reports them."""
    boxes = inspect.get("crop_boxes")  # (N, S, 4): center_y, center_x, height, width
    if boxes is None:
        return {}
    return {"crop_area": (boxes[..., 2] * boxes[..., 3]).mean().item()}


class CropBenchmark(Benchmark):
    family = "crop"

    def metrics(self, split: Split, correct: Tensor, tta_correct: Tensor | None,
                inspect: Mapping[str, Tensor]) -> dict[str, float]:
        return crop_metrics(split, inspect)


@register_benchmark("tinyimagenet-crop")
class TinyImageNetCrop(CropBenchmark):
    """Tiny-ImageNet-200 (official val as test), PreActResNet-18, the paper's schedule."""

    paper = "Table 1, Table E.1, Figures 6 and E.1"
    description = "Tiny-ImageNet-200 64x64, 200 classes; data.root = tiny-imagenet-200 folder"
    settings = {**SIZE_SETTINGS, **WARMUP_SETTINGS}
    defaults = {**PAPER_CROP_SCHEDULE, "train.warmup_steps": 1000}

    def load(self) -> Dataset:
        """Tiny-ImageNet-200 from data.root (wnids.txt order = label order)."""
        from augbench.datasets.tinyimagenet import load_tinyimagenet  # dataset code loads with the benchmark that runs

        return sized(load_tinyimagenet(require_root(self, "Tiny-ImageNet-200")), self.s)


class _CifarCrop(CropBenchmark):
    paper = "Table 1 protocol on CIFAR"
    which: Literal["cifar10", "cifar100"] = "cifar10"
    settings = {**SIZE_SETTINGS, **WARMUP_SETTINGS}
    # 32 px: the CIFAR-style PreActResNet-18 (stride-1 stem, last map 4x4); the paper ran no CIFAR
    defaults = {**PAPER_CROP_SCHEDULE, "train.warmup_steps": 1000, "model.name": "preact_resnet18", "train.lr": 0.1,
                "train.weight_decay": 5e-4}

    def load(self) -> Dataset:
        """CIFAR in torchvision's python format from data.root."""
        from augbench.datasets.cifar import load_cifar  # dataset code loads with the benchmark that runs

        return sized(load_cifar(require_root(self, self.which.upper()), self.which), self.s)


@register_benchmark("cifar10-crop")
class Cifar10Crop(_CifarCrop):
    """CIFAR-10, PreActResNet-18, the Tiny-ImageNet cropping protocol at 32x32."""

    description = "CIFAR-10 32x32; data.root = folder holding cifar-10-batches-py"
    which = "cifar10"


@register_benchmark("cifar100-crop")
class Cifar100Crop(_CifarCrop):
    """CIFAR-100, PreActResNet-18, the Tiny-ImageNet cropping protocol at 32x32."""

    description = "CIFAR-100 32x32; data.root = folder holding cifar-100-python"
    which = "cifar100"


@register_benchmark("fashion-mnist-crop")
class FashionMnistCrop(CropBenchmark):
    """Fashion-MNIST (real images that install offline with Debian's dataset-fashion-mnist)."""

    description = "Fashion-MNIST 28x28 from /usr/share/datasets/fashion-mnist or data.root"
    embedded = False
    settings = {**SIZE_SETTINGS, "data.n_train": HParam(10000, int, low=1, nullable=True),
                "data.n_test": HParam(2000, int, low=1, nullable=True)}
    defaults = {"train.epochs": 10, "train.batch_size": 64, "train.lr": 0.05, "eval.tta_views": 10,
                **FOLDER_SCHEDULE}

    def load(self) -> Dataset:
        """Fashion-MNIST IDX files (the Debian package's folder unless data.root is given)."""
        from augbench.datasets.fashion_mnist import load_fashion_mnist  # loads with the benchmark that runs

        return sized(load_fashion_mnist(self.s["data.root"] or None), self.s)


@register_benchmark("clutter-crop")
class ClutterCrop(CropBenchmark):
    """Objects on clutter made of other classes' fragments: crops that miss the object change the label.

    Besides accuracy: the fraction of the method's sampled test crops that keep at least half of
    the object (`keeps_object`), from the known object boxes, and the fraction the same crops
    would keep at uniformly random positions (`keeps_object_chance`, the matched-area reference).
    For methods with a per-image magnitude: its mean on images whose object lies within
    `EDGE_MARGIN` of the side from a border, which shifts, shears and rotations push out of view
    (`magnitude_fragile`), and on the others (`magnitude_robust`).
    """

    paper = "Table 1 (embedded stand-in)"
    embedded = True
    description = "procedural objects on clutter, 4 classes, object boxes known"
    settings = {
        "data.n_train": HParam(3000, int, low=8),
        "data.n_test": HParam(1000, int, low=8),
        "data.image_size": HParam(32, int, low=16, high=256),
        "data.num_classes": HParam(4, int, low=2),
        "data.seed": HParam(0, int, low=0),
        # 0.5: objects 6-10 px on 32 px images. At 1 (11-20 px) the 16 local LRP candidates (24 px,
        # all covering the image centre) keep the object at any position 97% of the time, so where a
        # crop lies hardly changes the loss and input-dependent placement has nothing to learn from.
        "data.object_scale": HParam(0.5, float, low=0.1, high=1.5,
                                    help="size of the object and fragments (1: half-sizes 0.18-0.32 of the side)"),
    }
    defaults = {"train.epochs": 15, "train.batch_size": 64, "train.lr": 0.05, "train.hflip": True,
                "eval.tta_views": 10, **STAND_IN_SCHEDULE}

    def load(self) -> Dataset:
        """Generated clutter images with object boxes (deterministic in data.seed, cached)."""
        from augbench.datasets.clutter import make_clutter  # dataset code loads with the benchmark that runs

        s = self.s
        return make_clutter(s["data.n_train"], s["data.n_test"], s["data.image_size"], s["data.num_classes"],
                            s["data.seed"], object_scale=s["data.object_scale"])

    def metrics(self, split: Split, correct: Tensor, tta_correct: Tensor | None,
                inspect: Mapping[str, Tensor]) -> dict[str, float]:
        from augbench.datasets.clutter import crop_keeps_object  # the generator's ground truth, with the run
        from augbench.transforms.geometry import boxes_to_pixels

        out = crop_metrics(split, inspect)
        boxes = inspect.get("crop_boxes")
        if boxes is not None:
            n, k = boxes.shape[:2]
            flat = boxes.reshape(n * k, 4).float()
            cy, cx, bh, bw = flat.unbind(-1)
            hw = (int(split.x.shape[-2]), int(split.x.shape[-1]))
            px = boxes_to_pixels(cy, cx, bh, bw, image_hw=hw)
            obj = split.meta["box"][:n].float().repeat_interleave(k, 0)
            out["keeps_object"] = crop_keeps_object(px, obj).float().mean().item()
            # the same crops at uniformly random positions: what their sizes alone would keep, the
            # matched-area reference that tells input-dependent placement from smaller or larger crops
            gen = torch.Generator().manual_seed(0)
            ry, rx = torch.rand(n * k, generator=gen), torch.rand(n * k, generator=gen)
            cy, cx = bh / 2 + ry * (1 - bh).clamp_min(0), bw / 2 + rx * (1 - bw).clamp_min(0)
            px = boxes_to_pixels(cy, cx, bh, bw, image_hw=hw)
            out["keeps_object_chance"] = crop_keeps_object(px, obj).float().mean().item()
        box = split.meta["box"].float()
        size = torch.tensor([split.x.shape[-1], split.x.shape[-2]], dtype=box.dtype, device=box.device)  # (W, H)
        margin = torch.minimum(box[:, :2], size - box[:, 2:]).amin(dim=1)
        out.update(magnitude_metrics(split.y, inspect, margin < EDGE_MARGIN * split.x.shape[-1]))
        return out
