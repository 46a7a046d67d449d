"""`random-crop`: RandomResizedCrop semantics, drawn per sample and applied in one resample."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from augbench.errors import ConfigError
from augbench.hparams import HParam
from augbench.methods import AugmentationMethod, MethodContext, StepContext, Views, register_method, repeat_views
from augbench.transforms.geometry import crop

INSPECT_SAMPLES = 8  # boxes per image that `inspect` reports ("crop_boxes"), as for InstaAug
INSPECT_SEED = 0  # `inspect` draws from its own generator, seeded afresh on every call


def sample_resized_crop_boxes(n: int, image_hw: tuple[int, int], scale: tuple[float, float],
                              ratio: tuple[float, float], device: torch.device,
                              generator: torch.Generator | None = None,
                              attempts: int = 10) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Per-sample boxes (center_y, center_x, height, width) as fractions of the image.

    torchvision's RandomResizedCrop distribution, vectorised: area fraction ~ U(scale), log
    aspect ratio ~ U(log ratio), up to `attempts` draws until the box fits, else the centre
    crop that torchvision falls back to. All attempts are drawn at once for the whole batch.
    """
    h, w = image_hw
    area = torch.empty(attempts, n, device=device).uniform_(scale[0], scale[1], generator=generator)
    log_r = torch.empty(attempts, n, device=device).uniform_(math.log(ratio[0]), math.log(ratio[1]),
                                                             generator=generator)
    r = torch.exp(log_r)  # width / height in pixels
    width = torch.sqrt(area * h * w * r) / w  # box of area*h*w pixels with aspect r
    height = torch.sqrt(area * h * w / r) / h
    fits = (width <= 1) & (height <= 1)
    first = fits.to(torch.int8).argmax(0)  # first attempt that fits (0 if none)
    pick = lambda t: t.gather(0, first.unsqueeze(0)).squeeze(0)  # noqa: E731
    width, height, ok = pick(width), pick(height), fits.any(0)
    # torchvision's fallback: the whole image, cut to the nearest allowed aspect ratio
    in_ratio = w / h
    fb_w = min(1.0, max(ratio) * h / w) if in_ratio > max(ratio) else 1.0
    fb_h = min(1.0, w / (min(ratio) * h)) if in_ratio < min(ratio) else 1.0
    width = torch.where(ok, width, torch.full_like(width, fb_w))
    height = torch.where(ok, height, torch.full_like(height, fb_h))
    u = torch.rand(2, n, device=device, generator=generator)
    half = torch.full_like(width, 0.5)
    center_y = torch.where(ok, height / 2 + u[0] * (1 - height), half)
    center_x = torch.where(ok, width / 2 + u[1] * (1 - width), half)
    return center_y, center_x, height, width


@register_method("random-crop")
class RandomCrop(AugmentationMethod):
    """Random resized crops with per-sample boxes; the lower scale bound is the paper's sweep axis."""

    families = frozenset({"crop"})
    recipes = {
        "tinyimagenet-crop": {"scale_min": 0.1},  # the best of the paper's sweep (Table 1)
        "cifar10-crop": {"scale_min": 0.25},
        "cifar100-crop": {"scale_min": 0.25},
        "fashion-mnist-crop": {"scale_min": 0.3},
        "clutter-crop": {"scale_min": 0.25},
        # the SimCLR crop baseline of the base code: RandomResizedCrop scale [0.2, 1]
        "tinyimagenet-contrastive": {"scale_min": 0.2},
        "clutter-contrastive": {"scale_min": 0.2},
    }
    hparams = {
        "scale_min": HParam(0.1, float, low=1e-3, high=1.0, help="lower bound of the area fraction (paper best: 0.1)"),
        "scale_max": HParam(1.0, float, low=1e-3, high=1.0, help="upper bound of the area fraction"),
        "ratio_min": HParam(3 / 4, float, low=0.05, high=20.0, help="lower bound of the aspect ratio"),
        "ratio_max": HParam(4 / 3, float, low=0.05, high=20.0, help="upper bound of the aspect ratio"),
    }

    def __init__(self, ctx: MethodContext, **hp: Any) -> None:
        super().__init__(ctx, **hp)

        if self.hp["scale_min"] > self.hp["scale_max"] or self.hp["ratio_min"] > self.hp["ratio_max"]:
            raise ConfigError("random-crop: scale_min/ratio_min must not exceed scale_max/ratio_max")

    def boxes(self, n: int, image_hw: tuple[int, int], device: torch.device,
              generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Draw `n` boxes from the configured distribution (global RNG unless `generator` is given)."""
        return sample_resized_crop_boxes(
            n, image_hw, (self.hp["scale_min"], self.hp["scale_max"]),
            (self.hp["ratio_min"], self.hp["ratio_max"]), device, generator=generator)

    def sample(self, x: Tensor, ctx: StepContext, n_views: int = 1) -> Views:
        x = repeat_views(x, n_views)
        cy, cx, hh, ww = self.boxes(x.shape[0], (x.shape[-2], x.shape[-1]), x.device)
        return Views(crop(x, cy, cx, hh, ww), n_views, info={"box": torch.stack([cy, cx, hh, ww], -1)})

    @torch.no_grad()
    def inspect(self, x: Tensor, ctx: StepContext) -> dict[str, Tensor]:
        """`crop_boxes` (B, 8, 4): boxes (center_y, center_x, height, width) drawn per image, as fractions.

        For crop-keeping metrics and plots. They come from a generator seeded with INSPECT_SEED
        on every call, so evaluating leaves the global RNG, and every later training draw, as it was.
        """
        n, k = x.shape[0], INSPECT_SAMPLES
        gen = torch.Generator(device=x.device).manual_seed(INSPECT_SEED)
        boxes = torch.stack(self.boxes(n * k, (x.shape[-2], x.shape[-1]), x.device, generator=gen), -1)
        return {"crop_boxes": boxes.view(k, n, 4).transpose(0, 1).contiguous()}
