"""`none`: no augmentation (the paper's "No augmentation" row, which keeps horizontal flips)."""

from __future__ import annotations

import torch
from torch import Tensor

from augbench.hparams import HParam
from augbench.methods import AugmentationMethod, StepContext, Views, register_method, repeat_views
from augbench.transforms.geometry import hflip


@register_method("none")
class NoAugmentation(AugmentationMethod):
    """Identity, optionally with random horizontal flips; exact identity when `flip` is off."""

    families = frozenset({"crop", "rotation", "color", "policy"})
    hparams = {"flip": HParam(False, bool, help="random horizontal flips (p = 0.5)")}

    def sample(self, x: Tensor, ctx: StepContext, n_views: int = 1) -> Views:
        x = repeat_views(x, n_views)
        if self.hp["flip"] and ctx.training:
            x = hflip(x, torch.rand(x.shape[0], device=x.device) < 0.5)
        return Views(x, n_views)

    def identical_test_views(self) -> bool:
        """Flips are drawn in training only: every test view is the input."""
        return True
