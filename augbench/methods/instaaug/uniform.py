"""InstaAug's uniform parameterization (Section 3.3): phi(x) -> a range per transformation dimension.

Each dimension d gets an interval [lo_d, hi_d], NOT forced to be symmetric; a transformation is
theta_d = lo_d + r_d (hi_d - lo_d), r_d ~ U(0, 1) independently (reparameterised, so the task
loss reaches phi through a differentiable transform). Entropy of the product of uniforms in
closed form: sum_d log(hi_d - lo_d) (the public code used the widths themselves as a proxy:
`entropy="width"`). Note the paper's entropy bounds are on the *parameters* of tau (its
footnote 3), so with the closed form Hmin/Hmax are differential entropies (may be negative).

One class per kind, each a `UniformRanges`: what its raw outputs mean and how it transforms.

- `RotationRanges`: half-widths a, b = pi * f(raw_a), pi * f(raw_b); theta in [-b, a] radians
  (counter-clockwise). At the bound the range covers the whole circle.
- `ColorRanges`: per HSV channel a, b = max_c * f(raw); delta in [-b, a]; hue shifted by delta
  (turns, mod 1), saturation and value scaled by (1 + delta) (`hsv_jitter`). max = (0.5, 0.8,
  0.8) by default (hue +-0.5 is the whole circle; the public release caps hue and saturation at 0).
- `CropRanges` (InstaAug w/o LRP): a square crop; side s in [s_lo, s_hi] (fraction of the image,
  at least 0.1), and the centre's relative position u_y, u_x in [lo, hi] within the room the
  side leaves (centre = s/2 + u (1 - s)), so the crop always stays inside the image. Endpoints
  in either order, as in the public code; init: s in [0.95, 0.99], u in [0.25, 0.75].

f maps a raw output to a fraction of the bound (`RangeMap`, hyperparameter `range_map`):

- "sigmoid" (the public code; the paper benchmarks' recipe): f = sigmoid(raw + offset). Its
  gradient vanishes at both ends: a range pushed to its bound (by an entropy reward against a
  classifier that cannot yet tell the classes apart) stays there, since the task loss no longer
  reaches phi (sigmoid' ~ 1e-4 at raw - 2 = 9).
- "linear" (augbench's folder benchmarks): f = clamp(f0 + raw / 4, 0, 1): the sigmoid's value
  at raw = 0 and its steepest slope, so the two start from the same range and the line crosses
  [0, 1] over the raw span in which the sigmoid does most of its change. At a bound the gradient is
  passed back only when it points inside (`_bounded`): the task loss pulls a range back from
  its bound at full strength, while the entropy reward, which would push further out, stops
  paying once the range covers its whole group (the circle for rotation and hue).

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
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from augbench.errors import ConfigError
from augbench.methods import Views, repeat_views
from augbench.methods.instaaug.lrp import GlobalHead, PhiTrunk, map_sizes, trunk_depth
from augbench.methods.instaaug.parameterization import INSPECT_SAMPLES, Parameterization, sampled_boxes
from augbench.transforms.color import hsv_jitter, rgb_to_hsv
from augbench.transforms.geometry import crop, rotate

CROP_MIN_SIDE = 0.1
RANGE_MAPS = ("sigmoid", "linear")


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


class _Bounded(torch.autograd.Function):
    """clamp(u, 0, 1) whose gradient survives at the bounds when it points back inside.

    Inside (0, 1) the gradient is the identity's. Above 1 it is kept only where gradient descent
    lowers u (grad > 0), below 0 only where it raises u (grad < 0): a loss that asks for a
    smaller range moves a saturated one at once, while a push further out is dropped (nothing
    would change: the range is already at its bound).
    """

    @staticmethod
    def forward(ctx: Any, u: Tensor) -> Tensor:
        ctx.save_for_backward(u)
        return u.clamp(0.0, 1.0)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        (u,) = ctx.saved_tensors
        blocked = ((u > 1) & (grad < 0)) | ((u < 0) & (grad > 0))
        return grad.masked_fill(blocked, 0.0)


def _bounded(u: Tensor) -> Tensor:
    out: Tensor = _Bounded.apply(u)
    return out


class RangeMap:
    """raw outputs -> fractions of each endpoint's bound, given the raw offset of each column at init.

    "sigmoid": sigmoid(raw + offset), the public code's map. "linear": the same value at raw = 0,
    then a straight line of the sigmoid's steepest slope (1/4) clamped to [0, 1], whose gradient
    is not lost at the bounds (see the module docstring).
    """

    def __init__(self, name: str = "sigmoid") -> None:
        if name not in RANGE_MAPS:
            raise ConfigError(f"instaaug: unknown range_map {name!r}; valid: {', '.join(RANGE_MAPS)}")
        self.name = name

    def __call__(self, raw: Tensor, offset: Tensor) -> Tensor:
        if self.name == "sigmoid":
            return torch.sigmoid(raw + offset)
        return _bounded(torch.sigmoid(offset) + raw / 4)


class UniformRanges(Parameterization):
    """Raw outputs (B, 2D) <-> ranges (B, D) <-> transformed images: the common part of every kind.

    theta_d ~ U(lo_d, hi_d) independently per dimension, reparameterised; `entropy` is
    "closed" (sum log width) or "width" (the public code's proxy). `image_hw` is needed only
    to build phi (`network`). A subclass names its `dims` and `family`, gives each raw column's
    offset at init (`offsets`), and defines `ranges` and `transform`.

    Example::

        dist = RotationRanges(range_map="linear")
        lo, hi = dist.ranges(torch.zeros(1, 2))      # +-21.5 degrees at init
        views = dist.sample(x, torch.zeros(len(x), 2), n_views=1)
    """

    dims: ClassVar[tuple[str, ...]] = ()
    entropy_bounds: ClassVar[tuple[float, float]] = (0.0, 0.0)
    phi_sees_hsv: ClassVar[bool] = False
    spread_units = ("range width per dimension: rotation in degrees; colour hue in turns, saturation and value as "
                    "fractions; crop side and centre offsets as fractions")

    def __init__(self, range_map: str = "sigmoid", entropy: str = "closed",
                 image_hw: tuple[int, int] | None = None) -> None:
        super().__init__()
        self.map = RangeMap(range_map)
        self.entropy_kind = entropy
        self.image_hw = image_hw

    @property
    def n_raw(self) -> int:
        """Raw outputs phi must produce: two per dimension."""
        return 2 * len(self.dims)

    def offsets(self, like: Tensor) -> Tensor:
        """(n_raw,) raw offset of each column: raw = 0 is the initial range."""
        raise NotImplementedError

    def fractions(self, raw: Tensor) -> Tensor:
        """(B, n_raw) fractions in [0, 1] of each endpoint's bound."""
        return self.map(raw, self.offsets(raw))

    def ranges(self, raw: Tensor) -> tuple[Tensor, Tensor]:
        """(lo, hi), each (B, D), from raw outputs (B, 2D); raw = 0 is the initial range."""
        raise NotImplementedError

    def transform(self, x: Tensor, theta: Tensor) -> Tensor:
        """Transform image n of `x` (N, C, H, W) by parameters theta[n] (N, D), differentiably."""
        raise NotImplementedError

    def describe(self, lo: Tensor, hi: Tensor) -> dict[str, Tensor]:
        """Per-dimension ranges as "<dim>_range" (B, 2) entries (radians for rotation)."""
        return {f"{name}_range": torch.stack([lo[:, d], hi[:, d]], -1) for d, name in enumerate(self.dims)}

    def spread_width(self, spread: Sequence[float]) -> list[float]:
        """Widths in the ranges' own units from `target_spread`'s units (only rotation converts)."""
        return [float(w) for w in spread]

    def extra_inspect(self, lo: Tensor, hi: Tensor, b: int) -> dict[str, Tensor]:
        """Kind-specific `inspect` entries (crops: sampled boxes)."""
        return {}

    def spans(self) -> list[float]:
        """The widest range of each dimension (both endpoints at their bounds)."""
        raise NotImplementedError

    def fraction_entropy(self, fraction: float) -> list[float]:
        """log(fraction * widest range) per dimension (the width itself with the public proxy)."""
        widths = [fraction * span for span in self.spans()]
        return widths if self.entropy_kind == "width" else [math.log(w) for w in widths]

    # ------------------------------------------------------------------ Parameterization
    def network(self, in_channels: int) -> nn.Module:
        if self.image_hw is None:
            raise ConfigError("uniform parameterization: building phi needs image_hw")
        return UniformNet(in_channels, self.image_hw, self.n_raw, hsv=self.phi_sees_hsv)

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
        return (0.0, math.inf) if self.entropy_kind == "width" else self.entropy_bounds

    @property
    def entropy_parts(self) -> tuple[str, ...]:
        return self.dims

    def part_entropies(self, views: Views) -> Tensor:
        return views.info["entropy_parts"]

    def spread_entropy(self, spread: Sequence[float]) -> list[float]:
        """log(width) per dimension (the width itself with the public proxy); degrees for rotation."""
        widths = self.spread_width(spread)
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
        out.update(self.extra_inspect(lo, hi, raw.shape[0]))
        return out

    def class_average(self, table: Tensor, b: int) -> dict[str, Tensor]:
        """The mean entropy over classes; ranges are per class, so none are reported."""
        lo, hi = self.ranges(table)
        return {"entropy": uniform_entropy(lo, hi, self.entropy_kind).mean().expand(b).contiguous()}


class RotationRanges(UniformRanges):
    """theta in [-b, a] radians, a, b = rotation_max * f(raw) (public code: pi * sigmoid(raw - 2))."""

    family = "rotation"
    dims = ("rotation",)
    entropy_bounds = (1.0, 1.15)
    OFFSET = -2.0

    def __init__(self, rotation_max: float = math.pi, **kw: Any) -> None:
        super().__init__(**kw)
        self.rotation_max = float(rotation_max)

    def offsets(self, like: Tensor) -> Tensor:
        return like.new_full((2,), self.OFFSET)

    def ranges(self, raw: Tensor) -> tuple[Tensor, Tensor]:
        ab = self.rotation_max * self.fractions(raw)
        return -ab[:, 1:2], ab[:, 0:1]

    def transform(self, x: Tensor, theta: Tensor) -> Tensor:
        return rotate(x, theta[:, 0])

    def spans(self) -> list[float]:
        return [2 * self.rotation_max]

    def spread_width(self, spread: Sequence[float]) -> list[float]:
        return [math.radians(w) for w in spread]


class ColorRanges(UniformRanges):
    """Per HSV channel delta in [-b, a], a, b = max_c * f(raw) (public code: max_c * sigmoid(raw - 4))."""

    family = "color"
    dims = ("hue", "saturation", "value")
    entropy_bounds = (-4.5, -3.5)
    phi_sees_hsv = True  # phi sees the image's HSV channels next to its RGB ones, as the public code feeds it
    OFFSET = -4.0

    def __init__(self, color_max: tuple[float, float, float] = (0.5, 0.8, 0.8), **kw: Any) -> None:
        super().__init__(**kw)
        self.color_max = tuple(float(c) for c in color_max)

    def offsets(self, like: Tensor) -> Tensor:
        return like.new_full((6,), self.OFFSET)

    def ranges(self, raw: Tensor) -> tuple[Tensor, Tensor]:
        ab = raw.new_tensor(self.color_max).repeat_interleave(2) * self.fractions(raw)
        return -ab[:, 1::2], ab[:, 0::2]

    def transform(self, x: Tensor, theta: Tensor) -> Tensor:
        return hsv_jitter(x, theta[:, 0], theta[:, 1], theta[:, 2])

    def spans(self) -> list[float]:
        return [2 * c for c in self.color_max]


class CropRanges(UniformRanges):
    """Square crops: side in [s_lo, s_hi] >= CROP_MIN_SIDE, centre offsets u_y, u_x in [lo, hi] of the room left."""

    family = "crop"
    dims = ("size", "center_y", "center_x")
    entropy_bounds = (-1.5, -0.5)
    INIT = (3.0, 4.6, -1.1, 1.1, -1.1, 1.1)  # logits of (s_a, s_b, uy_a, uy_b, ux_a, ux_b) at init

    def offsets(self, like: Tensor) -> Tensor:
        return like.new_tensor(self.INIT)

    def ranges(self, raw: Tensor) -> tuple[Tensor, Tensor]:
        ends = self.fractions(raw)
        side = CROP_MIN_SIDE + (1 - CROP_MIN_SIDE) * ends[:, 0:2]
        ends = torch.cat([side, ends[:, 2:]], 1)
        a, b = ends[:, 0::2], ends[:, 1::2]
        return torch.minimum(a, b), torch.maximum(a, b)

    def transform(self, x: Tensor, theta: Tensor) -> Tensor:
        center_y, center_x, height, width = self.boxes(theta).unbind(-1)
        return crop(x, center_y, center_x, height, width)

    def spans(self) -> list[float]:
        return [1 - CROP_MIN_SIDE, 1.0, 1.0]

    @staticmethod
    def boxes(theta: Tensor) -> Tensor:
        """Crop parameters (N, 3) = (side, u_y, u_x) -> boxes (N, 4) (center_y, center_x, height, width)."""
        side, uy, ux = theta.unbind(-1)
        return torch.stack([side / 2 + uy * (1 - side), side / 2 + ux * (1 - side), side, side], -1)

    def extra_inspect(self, lo: Tensor, hi: Tensor, b: int) -> dict[str, Tensor]:
        return {"crop_boxes": sampled_boxes(self.boxes(rsample_uniform(lo, hi, INSPECT_SAMPLES)), b)}


#: the uniform kinds, by the benchmark family each transforms
UNIFORM_KINDS: dict[str, type[UniformRanges]] = {"rotation": RotationRanges, "color": ColorRanges, "crop": CropRanges}


def uniform_parameterization(kind: str, **kw: Any) -> UniformRanges:
    """The uniform parameterization of `kind` ("rotation", "color", "crop") with its own options."""
    if kind not in UNIFORM_KINDS:
        raise ConfigError(f"unknown uniform parameterization {kind!r}; valid: {', '.join(UNIFORM_KINDS)}")
    return UNIFORM_KINDS[kind](**kw)


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
