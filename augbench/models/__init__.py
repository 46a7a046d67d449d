"""Models by name: `build_model("preact_resnet18", num_classes, width=1.0)`."""

from __future__ import annotations

from typing import Callable

from torch import nn

from augbench.errors import ConfigError
from augbench.models.networks import Classifier, PreActResNet18, SmallCNN

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

BACKBONES: dict[str, Callable[..., nn.Module]] = {
    "preact_resnet18": PreActResNet18,
    "small_cnn": SmallCNN,
}


def build_model(name: str, num_outputs: int, width: float = 1.0, mean: tuple[float, ...] = IMAGENET_MEAN,
                std: tuple[float, ...] = IMAGENET_STD) -> Classifier:
    """A classifier with normalisation inside, so inputs are [0, 1] images."""
    if name not in BACKBONES:
        raise ConfigError(f"unknown model {name!r}; valid: {', '.join(sorted(BACKBONES))}")
    return Classifier(BACKBONES[name](width=width), num_outputs, mean, std)


__all__ = ["BACKBONES", "Classifier", "PreActResNet18", "SmallCNN", "build_model"]
