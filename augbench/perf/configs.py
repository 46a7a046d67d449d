"""The configurations `augbench bench` times methods at (data only: the CLI reads them without torch)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from augbench.errors import ConfigError

MEASURES: tuple[str, ...] = ("augment", "step", "tta")


@dataclass(frozen=True)
class BenchConfig:
    """A model, input size and batch to time methods at, on the settings of one benchmark.

    `benchmark` supplies the transformation family (which methods run), the per-method
    hyperparameter defaults and the schedule; `settings` override its model and batch.
    """

    name: str
    benchmark: str
    image_size: int
    num_classes: int
    settings: Mapping[str, Any] = field(default_factory=dict)
    channels: int = 3
    description: str = ""


CONFIGS: dict[str, BenchConfig] = {
    cfg.name: cfg
    for cfg in (
        # Paper D.1/D.3: Tiny-ImageNet cropping, PreActResNet-18, 64x64, batch 100, 200 classes.
        BenchConfig("paper", "tinyimagenet-crop", 64, 200,
                    {"model.name": "preact_resnet18_paper", "train.batch_size": 100},
                    description="PreActResNet-18, 64x64, batch 100, 200 classes (paper D.1, D.3)"),
        BenchConfig("embedded", "clutter-crop", 32, 4, {"model.name": "small_cnn", "train.batch_size": 64},
                    description="the embedded demo: small_cnn, 32x32, batch 64, 4 classes"),
        BenchConfig("tiny", "clutter-crop", 32, 4,
                    {"model.name": "small_cnn", "model.width": 0.25, "train.batch_size": 8, "eval.tta_views": 4},
                    description="a seconds-long smoke test: small_cnn x0.25, 32x32, batch 8"),
    )
}


def get_config(name: str) -> BenchConfig:
    if name not in CONFIGS:
        raise ConfigError(f"unknown bench config {name!r}; valid: {', '.join(sorted(CONFIGS))}")
    return CONFIGS[name]
