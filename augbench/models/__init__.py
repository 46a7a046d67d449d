"""Models by name: `build_model("preact_resnet18_paper", num_classes, width=1.0)`.

"preact_resnet18_paper" is the paper's Tiny-ImageNet PreActResNet-18 (stride-2 stem);
"preact_resnet18" the CIFAR-style one (stride-1 stem, 4x the compute at 64 px);
"resnet18_maxpool" the public contrastive code's encoder; "small_cnn" a CPU-sized CNN.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from augbench.errors import ConfigError
from augbench.models.networks import Classifier, PaperPreActResNet18, PreActResNet18, ResNet18MaxPool, SmallCNN

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

BACKBONES: dict[str, Callable[..., nn.Module]] = {
    "preact_resnet18": PreActResNet18,
    "preact_resnet18_paper": PaperPreActResNet18,
    "resnet18_maxpool": ResNet18MaxPool,
    "small_cnn": SmallCNN,
}


def build_model(name: str, num_outputs: int, width: float = 1.0, mean: tuple[float, ...] = IMAGENET_MEAN,
                std: tuple[float, ...] = IMAGENET_STD) -> Classifier:
    """A classifier with normalisation inside, so inputs are [0, 1] images."""
    if name not in BACKBONES:
        raise ConfigError(f"unknown model {name!r}; valid: {', '.join(sorted(BACKBONES))}")
    return Classifier(BACKBONES[name](width=width), num_outputs, mean, std)


__all__ = ["BACKBONES", "Classifier", "PaperPreActResNet18", "PreActResNet18", "ResNet18MaxPool", "SmallCNN",
           "build_model"]
