"""`random-color`: fixed HSV jitter ranges, the "Random aug" colour baseline (InstaAug paper Table 3).

Per sample and channel, delta ~ U[-r, r]; hue is shifted by delta (fractions of a turn, mod 1),
saturation and value are scaled by 1 + delta and clamped (`transforms.color.hsv_jitter`, the
same transform the learned colour methods act through, so only the ranges differ). The paper
sweeps hue over 0..0.5 by 0.1 and saturation and value over 0..1 by 0.2 (Appendix D.2);
its best setting, h, s, v = 0.0, 0.2, 0.8, is the default.
"""

from __future__ import annotations

import torch
from torch import Tensor

from augbench.errors import ConfigError
from augbench.hparams import HParam
from augbench.methods import AugmentationMethod, MethodContext, StepContext, Views, register_method, repeat_views
from augbench.transforms.color import hsv_jitter

CHANNELS: tuple[str, ...] = ("hue", "saturation", "value")


@register_method("random-color")
class RandomColor(AugmentationMethod):
    """Symmetric uniform HSV jitter with the same ranges for every input; test-time views alike."""

    families = frozenset({"color"})
    recipes = {"rawfoot-color": {"hue": 0.0, "saturation": 0.2, "value": 0.8}}  # the paper's best (D.2)
    hparams = {
        "hue": HParam(0.0, float, low=0.0, high=0.5, help="hue shift range r: U[-r, r] of a full turn"),
        "saturation": HParam(0.2, float, low=0.0, high=1.0, help="saturation factor 1 + U[-r, r]"),
        "value": HParam(0.8, float, low=0.0, high=1.0, help="value (brightness) factor 1 + U[-r, r]"),
    }

    def __init__(self, ctx: MethodContext, **hp: object) -> None:
        super().__init__(ctx, **hp)
        if ctx.image_shape[0] != 3:
            raise ConfigError(f"random-color needs RGB images, got {ctx.image_shape[0]} channels")

    def ranges(self) -> tuple[float, float, float]:
        """The half-widths r of the hue, saturation and value deltas."""
        return self.hp["hue"], self.hp["saturation"], self.hp["value"]

    def identical_test_views(self) -> bool:
        """All ranges zero: `sample` returns the input itself, every view alike."""
        return not any(self.ranges())

    def sample(self, x: Tensor, ctx: StepContext, n_views: int = 1) -> Views:
        x = repeat_views(x, n_views)
        if not any(self.ranges()):  # all ranges zero: exactly the identity, no HSV round trip
            return Views(x, n_views)
        r = torch.tensor(self.ranges(), device=x.device, dtype=x.dtype)
        delta = (2 * torch.rand(x.shape[0], 3, device=x.device, dtype=x.dtype) - 1) * r
        return Views(hsv_jitter(x, *delta.unbind(-1)), n_views, info={"delta": delta})

    @torch.no_grad()
    def inspect(self, x: Tensor, ctx: StepContext) -> dict[str, Tensor]:
        b = x.shape[0]
        return {f"{name}_range": torch.tensor([-r, r], device=x.device).expand(b, 2).clone()
                for name, r in zip(CHANNELS, self.ranges())}
