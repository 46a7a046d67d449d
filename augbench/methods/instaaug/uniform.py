"""InstaAug's uniform parameterization (Section 3.3): phi(x) -> a range per transformation dimension.

Each dimension d gets an interval [lo_d, hi_d], NOT forced to be symmetric; a transformation is
theta_d = lo_d + r_d (hi_d - lo_d), r_d ~ U(0, 1) independently (reparameterised, so the task
loss reaches phi through a differentiable transform). Entropy of the product of uniforms in
closed form: sum_d log(hi_d - lo_d) (the public code used the widths themselves as a proxy:
`entropy="width"`). Note the paper's entropy bounds are on the *parameters* of tau (its
footnote 3), so with the closed form Hmin/Hmax are differential entropies (may be negative).

Kinds (raw outputs of phi -> ranges, following the public code):
- "rotation": a, b = pi * sigmoid(raw - 2); theta in [-b, a] radians (counter-clockwise).
- "color": per HSV channel a, b = max_c * sigmoid(raw - 4); delta in [-b, a]; hue shifted
  by delta (turns, mod 1), saturation and value scaled by (1 + delta)
  (`augbench.transforms.color.hsv_jitter`). max = (0.5, 0.8, 0.8) by default (hue +-0.5 is
  the whole circle; the public release caps hue and saturation at 0).
- "crop" (InstaAug w/o LRP): a square crop; side s in [s_lo, s_hi] (fraction of the image,
  at least 0.1), and the centre's relative position u_y, u_x in [lo, hi] within the room the
  side leaves (centre = s/2 + u (1 - s)), so the crop always stays inside the image. Endpoints
  are sigmoids of free outputs in either order, as in the public code; init: s in [0.95, 0.99],
  u in [0.25, 0.75].

Every range contains the identity transformation at init for rotation and colour ([-b, a]
with a, b > 0); for crops the identity is s = 1.

Default entropy bounds (`default_entropy_bounds`): rotation 1.0/1.15 (tuned on
glyphs-rotation: the label-preserving interval has width pi, log pi = 1.14); colour -4.5/-3.5
and crop -1.5/-0.5 (not from the paper: set them per benchmark); with `entropy="width"`
(0, inf), i.e. lambda stays at lambda0, like the public rotation config.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from augbench.errors import ConfigError
from augbench.methods import Views, repeat_views
from augbench.methods.instaaug.lrp import GlobalHead, PhiTrunk, map_sizes, trunk_depth
from augbench.methods.instaaug.parameterization import INSPECT_SAMPLES, Parameterization, sampled_boxes
from augbench.transforms.color import hsv_jitter, rgb_to_hsv
from augbench.transforms.geometry import crop, rotate

KINDS = ("rotation", "color", "crop")
CROP_MIN_SIDE = 0.1
# raw-output offsets at init (public code): rotation sigmoid(raw - 2), colour sigmoid(raw - 4)
_ROTATION_OFFSET = -2.0
_COLOR_OFFSET = -4.0
_CROP_INIT = (3.0, 4.6, -1.1, 1.1, -1.1, 1.1)  # logits of (s_a, s_b, uy_a, uy_b, ux_a, ux_b)
ENTROPY_BOUNDS = {"rotation": (1.0, 1.15), "color": (-4.5, -3.5), "crop": (-1.5, -0.5)}


def part_entropy(lo: Tensor, hi: Tensor, kind: str = "closed") -> Tensor:
    """Entropy of each U(lo_d, hi_d), (B, D) -> (B, D): the additive parts of `uniform_entropy`.

    "closed": log(hi_d - lo_d) (exact differential entropy; widths floored at 1e-8 so a
    collapsed range gives a large negative number, not -inf). "width": hi_d - lo_d, the
    public code's proxy.
    """
    width = hi - lo
    if kind == "closed":
        return torch.log(width.clamp_min(1e-8))
    if kind == "width":
        return width
    raise ConfigError(f"unknown entropy {kind!r}; valid: closed, width")


def uniform_entropy(lo: Tensor, hi: Tensor, kind: str = "closed") -> Tensor:
    """Entropy of a product of U(lo_d, hi_d) per row, (B, D) -> (B,): the sum of `part_entropy`."""
    return part_entropy(lo, hi, kind).sum(-1)


def rsample_uniform(lo: Tensor, hi: Tensor, n_views: int) -> Tensor:
    """(n_views * B, D) view-major draws of U(lo, hi) per row, differentiable in lo and hi."""
    lo_v = lo.repeat(n_views, 1)
    hi_v = hi.repeat(n_views, 1)
    r = torch.rand_like(lo_v)
    return lo_v + r * (hi_v - lo_v)


class UniformParameterization(Parameterization):
    """Raw outputs (B, n_raw) <-> ranges (B, D) <-> transformed images, for one kind.

    theta_d ~ U(lo_d, hi_d) independently per dimension, reparameterised; `entropy` is
    "closed" (sum log width) or "width" (the public code's proxy). `image_hw` is needed only
    to build phi (`network`).
    """

    def __init__(self, kind: str, color_max: tuple[float, float, float] = (0.5, 0.8, 0.8),
                 rotation_max: float = math.pi, entropy: str = "closed",
                 image_hw: tuple[int, int] | None = None) -> None:
        super().__init__()
        if kind not in KINDS:
            raise ConfigError(f"unknown uniform parameterization {kind!r}; valid: {', '.join(KINDS)}")
        self.kind = kind
        self.family = kind  # the kinds are named after the benchmark families they transform
        self.color_max = tuple(float(c) for c in color_max)
        self.rotation_max = float(rotation_max)
        self.entropy_kind = entropy
        self.image_hw = image_hw

    @property
    def dims(self) -> tuple[str, ...]:
        """Names of the transformation dimensions, in column order."""
        return {"rotation": ("rotation",), "color": ("hue", "saturation", "value"),
                "crop": ("size", "center_y", "center_x")}[self.kind]

    @property
    def n_raw(self) -> int:
        """Raw outputs phi must produce: two per dimension."""
        return 2 * len(self.dims)

    def ranges(self, raw: Tensor) -> tuple[Tensor, Tensor]:
        """(lo, hi), each (B, D), from raw outputs (B, 2D); raw = 0 is the initial range."""
        if self.kind == "rotation":
            ab = self.rotation_max * torch.sigmoid(raw + _ROTATION_OFFSET)
            return -ab[:, 1:2], ab[:, 0:1]
        if self.kind == "color":
            scale = raw.new_tensor(self.color_max).repeat_interleave(2)
            ab = scale * torch.sigmoid(raw + _COLOR_OFFSET)
            return -ab[:, 1::2], ab[:, 0::2]
        ends = torch.sigmoid(raw + raw.new_tensor(_CROP_INIT))
        side = CROP_MIN_SIDE + (1 - CROP_MIN_SIDE) * ends[:, 0:2]
        ends = torch.cat([side, ends[:, 2:]], 1)
        a, b = ends[:, 0::2], ends[:, 1::2]
        return torch.minimum(a, b), torch.maximum(a, b)

    def transform(self, x: Tensor, theta: Tensor) -> Tensor:
        """Transform image n of `x` (N, C, H, W) by parameters theta[n] (N, D), differentiably."""
        if self.kind == "rotation":
            return rotate(x, theta[:, 0])
        if self.kind == "color":
            return hsv_jitter(x, theta[:, 0], theta[:, 1], theta[:, 2])
        center_y, center_x, height, width = self.boxes(theta).unbind(-1)
        return crop(x, center_y, center_x, height, width)

    def boxes(self, theta: Tensor) -> Tensor:
        """Crop parameters (N, 3) = (side, u_y, u_x) -> boxes (N, 4) (center_y, center_x, height, width)."""
        if self.kind != "crop":
            raise ConfigError(f"boxes: the {self.kind} parameterization has no crop boxes")
        side, uy, ux = theta.unbind(-1)
        return torch.stack([side / 2 + uy * (1 - side), side / 2 + ux * (1 - side), side, side], -1)

    def describe(self, lo: Tensor, hi: Tensor) -> dict[str, Tensor]:
        """Per-dimension ranges as "<dim>_range" (B, 2) entries (radians for rotation)."""
        return {f"{name}_range": torch.stack([lo[:, d], hi[:, d]], -1) for d, name in enumerate(self.dims)}

    # ------------------------------------------------------------------ Parameterization
    def network(self, in_channels: int) -> nn.Module:
        if self.image_hw is None:
            raise ConfigError("uniform parameterization: building phi needs image_hw")
        return UniformNet(in_channels, self.image_hw, self.n_raw, hsv=self.kind == "color")

    def initial_raw(self) -> Tensor:
        return torch.zeros(self.n_raw)

    def sample(self, x: Tensor, raw: Tensor, n_views: int) -> Views:
        lo, hi = self.ranges(raw)
        theta = rsample_uniform(lo, hi, n_views)
        out = self.transform(repeat_views(x, n_views), theta)
        parts = part_entropy(lo, hi, self.entropy_kind)
        return Views(out, n_views, entropy=parts.sum(-1),
                     info={"theta": theta, "entropy_parts": parts, **self.describe(lo, hi)})

    def entropy(self, raw: Tensor) -> Tensor:
        return uniform_entropy(*self.ranges(raw), self.entropy_kind)

    def default_entropy_bounds(self, conditioning: str) -> tuple[float, float]:
        return (0.0, math.inf) if self.entropy_kind == "width" else ENTROPY_BOUNDS[self.kind]

    spread_units = ("range width per dimension: rotation in degrees; colour hue in turns, saturation and value as "
                    "fractions; crop side and centre offsets as fractions")

    @property
    def entropy_parts(self) -> tuple[str, ...]:
        return self.dims

    def part_entropies(self, views: Views) -> Tensor:
        return views.info["entropy_parts"]

    def spread_entropy(self, spread: Sequence[float]) -> list[float]:
        """log(width) per dimension (the width itself with the public proxy); degrees for rotation."""
        widths = [math.radians(w) if self.kind == "rotation" else float(w) for w in spread]
        if any(w <= 0 for w in widths):
            raise ConfigError(f"instaaug: target_spread must be positive ({self.spread_units}), got {list(spread)}")
        return widths if self.entropy_kind == "width" else [math.log(w) for w in widths]

    def inspect(self, raw: Tensor) -> dict[str, Tensor]:
        """entropy (B,), <dim>_range (B, 2); crop: crop_boxes (B, 8, 4) drawn from the ranges."""
        lo, hi = self.ranges(raw)
        parts = part_entropy(lo, hi, self.entropy_kind)
        out = {"entropy": parts.sum(-1), **self.describe(lo, hi)}
        if len(self.dims) > 1:  # validation means per dimension, for per-dimension targets
            out.update({f"entropy_{name}": parts[:, d] for d, name in enumerate(self.dims)})
        if self.kind == "crop":
            out["crop_boxes"] = sampled_boxes(self.boxes(rsample_uniform(lo, hi, INSPECT_SAMPLES)), raw.shape[0])
        return out

    def class_average(self, table: Tensor, b: int) -> dict[str, Tensor]:
        """The mean entropy over classes; ranges are per class, so none are reported."""
        lo, hi = self.ranges(table)
        return {"entropy": uniform_entropy(lo, hi, self.entropy_kind).mean().expand(b).contiguous()}


class UniformNet(nn.Module):
    """phi for the uniform parameterization: the LRP trunk plus a global head with 2D outputs.

    With `hsv`, phi sees the image's HSV channels next to its RGB ones (as the public code
    feeds phi for colour).
    """

    def __init__(self, in_channels: int, image_hw: tuple[int, int], n_raw: int, hsv: bool = False) -> None:
        super().__init__()
        depth = trunk_depth(image_hw)
        self.hsv = hsv
        self.trunk = PhiTrunk(in_channels + 3 if hsv else in_channels, depth)
        self.head = GlobalHead(self.trunk.channels[depth], map_sizes(image_hw, depth)[depth], n_raw)

    def forward(self, x: Tensor) -> Tensor:
        if self.hsv:
            x = torch.cat([x, rgb_to_hsv(x)], 1)
        return self.head(self.trunk(x)[-1])
