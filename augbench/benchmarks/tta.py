"""Test-time augmentation for a fixed pretrained classifier (paper Section 5.3, Table 2).

Only the method's parameters train, against a frozen classifier; the report is accuracy with
n test-time views for each n of `eval.tta_samples` (`tta_acc@1`, `tta_acc@4`, `tta_acc@10`) on
that classifier and, without retraining phi, on each classifier of `model.transfer`
(`TAG/tta_acc@n`). Baselines are any method that produces test-time views (random crop,
AutoAugment, ...): they have nothing to train, so their training epochs only run forward passes.

`imagenet-tta` reads an ImageFolder tree and local weights files (nothing is downloaded);
`clutter-tta` is the embedded stand-in, whose classifiers augbench trains itself once on the
clutter training images and caches (see `augbench.tasks.fixed_classifier`).
"""

from __future__ import annotations

from augbench.benchmarks import register_benchmark
from augbench.benchmarks.crop import SIZE_SETTINGS, ClutterCrop
from augbench.benchmarks.folder import ImageFolderCrop
from augbench.datasets.stream import STREAM_SETTINGS
from augbench.hparams import HParam


@register_benchmark("imagenet-tta")
class ImageNetTTA(ImageFolderCrop):
    """ImageNet (an ImageFolder tree) with a frozen pretrained ResNet-50; transfer to other classifiers.

    data.root holds train/<wnid>/ (the images phi trains on, all classes of the classifier; a
    tree larger than data.memory_budget_gb is streamed from its files, see `data.stream`) and
    val/<wnid>/ (the ImageNet validation set sorted into class folders). Labels follow the sorted
    folder names, which for the 1000 ImageNet wnids is the torchvision/timm class order. Images
    are resized (shorter side) and centre-cropped to data.image_size, so the no-augmentation
    accuracy differs slightly from the usual resize-256/crop-224 protocol. Example:

        --set model.weights=/w/resnet50.pth
        --set model.transfer=resnet18=resnet18=/w/resnet18.pth,xcit=timm:xcit_small_12_p16_224=/w/xcit.pth
    """

    task = "fixed-classifier"
    paper = "Table 2"
    description = "ImageNet TTA with a frozen ResNet-50 (local weights); data.root = train/ and val/ class folders"
    settings = {**SIZE_SETTINGS, **STREAM_SETTINGS, "data.image_size": HParam(224, int, low=8, high=1024)}
    defaults = {"train.epochs": 5, "train.batch_size": 100, "train.scheduler": "none", "eval.batch_size": 100,
                "eval.tta_views": 10}


@register_benchmark("clutter-tta")
class ClutterTTA(ClutterCrop):
    """Table 2 on the embedded clutter images: a small CNN trained by augbench, then frozen.

    phi trains against `augbench:small_cnn`; the transfer classifier is a PreActResNet-18
    (width 0.25) trained the same way. Both are trained once per data settings and cached.
    """

    task = "fixed-classifier"
    paper = "Table 2 (embedded stand-in)"
    description = "procedural objects on clutter, frozen classifiers trained by augbench, TTA with 1/4/10 views"
    settings = ClutterCrop.settings
    defaults = {"model.name": "augbench:small_cnn", "model.transfer": ["resnet18=augbench:preact_resnet18@0.25"],
                "train.epochs": 10, "train.batch_size": 64, "train.scheduler": "none", "eval.tta_views": 10,
                "model.pretrain_epochs": 8}
