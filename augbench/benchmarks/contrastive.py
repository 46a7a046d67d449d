"""Contrastive benchmarks (paper Section 6, Table 5): SimCLR with the method's crops, linear probe.

`tinyimagenet-contrastive` is the paper's protocol; `clutter-contrastive` the same task on the
embedded clutter images (objects among other classes' fragments), small enough for a CPU.
Metrics of the `contrastive` task: `tta_acc` (linear probe, features averaged over
`eval.tta_views` test crops: Table 5's number), `acc` (probe without TTA), `knn_acc`, `loss`.
"""

from __future__ import annotations

from typing import Any

from augbench.benchmarks import register_benchmark
from augbench.benchmarks.crop import ClutterCrop, TinyImageNetCrop

# Paper D.1 (contrastive): PreActResNet-18, batch 512, 500 epochs, Adam lr 1e-3 weight decay 1e-6,
# lr x0.8 at epochs 450 and 475, TTA with 10 crops. Where the paper is silent, its code's: the last
# epoch's weights, flips, embedding size 128, a 500-step linear lr warm-up. The encoder is the
# paper's PreActResNet-18 (Section 6); the public contrastive code instead trains torchvision's
# ResNet-18 with a 3x3 stride-1 stem and max-pooling: model.name=resnet18_maxpool.
PAPER_CONTRASTIVE_SCHEDULE: dict[str, Any] = {
    "model.name": "preact_resnet18_paper", "model.proj_dim": 128, "train.epochs": 500, "train.batch_size": 512,
    "train.optimizer": "adam", "train.lr": 1e-3, "train.warmup_steps": 500, "train.weight_decay": 1e-6,
    "train.scheduler": "multistep", "train.milestones": [450, 475], "train.gamma": 0.8, "train.select": "last",
    "train.hflip": True, "eval.tta_views": 10, "eval.batch_size": 512,
}


@register_benchmark("tinyimagenet-contrastive")
class TinyImageNetContrastive(TinyImageNetCrop):
    """Tiny-ImageNet-200, SimCLR with PreActResNet-18, linear probe with 10-crop TTA (Table 5)."""

    task = "contrastive"
    paper = "Table 5"
    description = "Tiny-ImageNet-200 SimCLR + linear probe; data.root = tiny-imagenet-200 folder"
    settings = TinyImageNetCrop.settings
    defaults = dict(PAPER_CONTRASTIVE_SCHEDULE)


@register_benchmark("clutter-contrastive")
class ClutterContrastive(ClutterCrop):
    """SimCLR on the embedded clutter images: a crop must keep the object for two views to agree.

    Besides the probe accuracies, `keeps_object` scores the method's test crops against the
    known object boxes (methods that report `crop_boxes`). The classes also differ in colour
    family, so even untrained features reach a high k-NN accuracy: this stand-in exercises the
    whole protocol quickly; it is not calibrated to reproduce Table 5's gaps.
    """

    task = "contrastive"
    paper = "Table 5 (embedded stand-in)"
    description = "procedural objects on clutter, SimCLR + linear probe, runs in minutes on a CPU"
    settings = ClutterCrop.settings
    defaults = {"model.name": "small_cnn", "model.width": 0.5, "model.proj_hidden": 256, "train.epochs": 20,
                "train.batch_size": 128, "train.optimizer": "adam", "train.lr": 1e-3, "train.weight_decay": 1e-6,
                "train.scheduler": "none", "train.select": "last", "train.hflip": True, "eval.tta_views": 10,
                "eval.probe_epochs": 200}
