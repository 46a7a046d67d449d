"""What FlowInv's flow parameters w in (-1, 1)^d mean: one space per augbench family, plus full affine.

- "rotation" (d = 1, rotation benchmarks): the rotation component of the affine
  parameterization, angle = pi w radians (counter-clockwise), as the public code scales its
  rotation coefficient; w = 0 is the identity. `summarize` reports "rotation_range" (B, 2):
  the [q, 1 - q] quantiles of the sampled angles (the public code plots the 1st and 99th
  percentiles), the interval the ground-truth coverage/violation metrics read.
- "crop" (d = 4, crop benchmarks): the paper's four crop parameters (centre x, centre y,
  width, height). With u = (w + 1) / 2 in (0, 1): height = m + (1 - m) u_h (m =
  `min_side`), centre_y = height / 2 + u_y (1 - height), the same for x, so every crop lies
  inside the image and the map is a bijection onto those boxes. The full image is a boundary
  point, so the base starts at `init_side` (large central crops). `summarize` reports
  "crop_boxes" (B, S, 4) as (center_y, center_x, height, width) fractions.
- "affine" (d = 6, any geometric benchmark): the paper's CIFAR-10 space, Augerino's six Lie
  algebra generators (tx, ty, rotation, scale, stretch, shear) with coefficients w, the
  rotation's times pi and translations times `trans_scale`, T = expm(sum_i w_i G_i).
  "rotation_range" comes from the rotation coefficient (exact for pure rotations).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from augbench.errors import ConfigError
from augbench.methods.augerino import GENERATORS, affine_generators, affine_transform
from augbench.transforms.geometry import crop, rotate, warp

SPACES = ("rotation", "crop", "affine")
FAMILIES = {"rotation": frozenset({"rotation"}), "crop": frozenset({"crop"}), "affine": frozenset({"rotation", "crop"})}
INSPECT_BOXES = 8  # sampled crops per input in "crop_boxes", as other crop methods report


class Space:
    """Maps flow parameters (N, dim) to transformed images and to `inspect` summaries."""

    name = ""
    dim = 0

    def apply(self, x: Tensor, w: Tensor) -> Tensor:
        """Transform image n of x (N, C, H, W) by parameters w[n], differentiably in w."""
        raise NotImplementedError

    def summarize(self, w: Tensor, quantile: float) -> dict[str, Tensor]:
        """Per-input summaries of S draws w (S, B, dim), first dimension B."""
        raise NotImplementedError

    def start(self, out_bound: float) -> Tensor:
        """(dim,) parameters w where the distribution starts."""
        return torch.zeros(self.dim)


def rotation_summary(angle: Tensor, quantile: float) -> dict[str, Tensor]:
    """Angles (S, B) -> "rotation_range" (B, 2): the [q, 1 - q] quantiles, and its width (B,)."""
    q = torch.tensor([quantile, 1 - quantile], device=angle.device, dtype=angle.dtype)
    rng = torch.quantile(angle, q, dim=0).T.contiguous()
    return {"rotation_range": rng, "rotation_width": rng[:, 1] - rng[:, 0]}


class RotationSpace(Space):
    name, dim = "rotation", 1

    def apply(self, x: Tensor, w: Tensor) -> Tensor:
        return rotate(x, math.pi * w[:, 0])

    def summarize(self, w: Tensor, quantile: float) -> dict[str, Tensor]:
        return rotation_summary(math.pi * w[..., 0], quantile)


class CropSpace(Space):
    name, dim = "crop", 4

    def __init__(self, min_side: float, init_side: float) -> None:
        if not min_side < init_side < 1:
            raise ConfigError(f"flowinv: crop_init_side must lie in (crop_min_side, 1), got {init_side} "
                              f"with crop_min_side {min_side}")
        self.min_side, self.init_side = min_side, init_side

    def boxes(self, w: Tensor) -> Tensor:
        """Parameters (..., 4) (u_y, u_x, u_h, u_w) in (-1, 1) -> boxes (..., 4) (center_y, center_x, height, width)."""
        u = (w + 1) / 2
        m = self.min_side
        height, width = m + (1 - m) * u[..., 2], m + (1 - m) * u[..., 3]
        return torch.stack([height / 2 + u[..., 0] * (1 - height), width / 2 + u[..., 1] * (1 - width),
                            height, width], -1)

    def apply(self, x: Tensor, w: Tensor) -> Tensor:
        cy, cx, h, wd = self.boxes(w).unbind(-1)
        return crop(x, cy, cx, h, wd)

    def summarize(self, w: Tensor, quantile: float) -> dict[str, Tensor]:
        boxes = self.boxes(w[:INSPECT_BOXES]).transpose(0, 1).contiguous()  # (B, S, 4)
        return {"crop_boxes": boxes}

    def start(self, out_bound: float) -> Tensor:
        """Sizes start at `init_side`, centres in the middle."""
        w = 2 * (self.init_side - self.min_side) / (1 - self.min_side) - 1
        if not abs(w) < out_bound:
            raise ConfigError(f"flowinv: crop_init_side {self.init_side} is out of reach of tanh_width {out_bound}")
        return torch.tensor([0.0, 0.0, w, w])


class AffineSpace(Space):
    name, dim = "affine", 6

    def __init__(self, trans_scale: float) -> None:
        self.trans_scale = trans_scale
        self.scale = torch.ones(6)
        self.scale[GENERATORS.index("rotation")] = math.pi

    def coefficients(self, w: Tensor) -> Tensor:
        """Lie-algebra coefficients (N, 6) in GENERATORS order: the rotation's in radians."""
        return w * self.scale.to(w.device, w.dtype)

    def apply(self, x: Tensor, w: Tensor) -> Tensor:
        eps = self.coefficients(w)
        gens = affine_generators(GENERATORS, tuple(x.shape[-2:]), self.trans_scale, x.device, eps.dtype)
        return warp(x, affine_transform(eps, gens))

    def summarize(self, w: Tensor, quantile: float) -> dict[str, Tensor]:
        return rotation_summary(math.pi * w[..., GENERATORS.index("rotation")], quantile)


def build_space(name: str, families: frozenset[str], min_side: float, init_side: float,
                trans_scale: float) -> Space:
    """The space `name` (auto: the benchmark family's own), checked against the family."""
    if name == "auto":
        name = next((f for f in ("rotation", "crop") if f in families), "")
        if not name:
            raise ConfigError(f"flowinv: no space for the benchmark family {sorted(families)}; set space "
                              f"(one of {', '.join(SPACES)})")
    if families and not FAMILIES[name] & families:
        raise ConfigError(f"flowinv: space={name} transforms {'/'.join(sorted(FAMILIES[name]))}, but the "
                          f"benchmark's family is {', '.join(sorted(families))}")
    if name == "rotation":
        return RotationSpace()
    if name == "crop":
        return CropSpace(min_side, init_side)
    return AffineSpace(trans_scale)
