"""`random-rotation`: a fixed uniform angle range, the global rotation baseline."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from augbench.hparams import HParam
from augbench.methods import AugmentationMethod, StepContext, Views, register_method, repeat_views
from augbench.transforms.geometry import rotate


@register_method("random-rotation")
class RandomRotation(AugmentationMethod):
    """Angles ~ U[-max_angle, max_angle] (degrees), drawn per sample; the same range for every input."""

    families = frozenset({"rotation"})
    hparams = {"max_angle": HParam(45.0, float, low=0.0, high=180.0, help="half-width of the range, degrees")}

    def _range(self, n: int, device: torch.device) -> Tensor:
        half = math.radians(self.hp["max_angle"])
        return torch.tensor([-half, half], device=device).expand(n, 2)

    def sample(self, x: Tensor, ctx: StepContext, n_views: int = 1) -> Views:
        x = repeat_views(x, n_views)
        lo, hi = self._range(x.shape[0], x.device).unbind(-1)
        angle = lo + (hi - lo) * torch.rand(x.shape[0], device=x.device)
        return Views(rotate(x, angle), n_views, info={"angle": angle})

    @torch.no_grad()
    def inspect(self, x: Tensor, ctx: StepContext) -> dict[str, Tensor]:
        return {"rotation_range": self._range(x.shape[0], x.device).clone()}
