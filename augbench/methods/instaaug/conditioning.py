"""Conditioning: where the raw parameters theta of p(tau; theta) come from (the ablations of Table 1).

- "input" (InstaAug itself, Section 3.1): theta = phi(x), a CNN of the input that the
  parameterization supplies (`Parameterization.network`).
- "input-free" (Table 1 "w/o input"): theta is one learned vector shared by every input, a
  global distribution of the same family.
- "class" (Table 1 "class-specific"): theta is row y of a learned num_classes x n_raw table.
  A row learns from its own class's samples only, so the method trains the table with its own
  defaults (lr 0.1, lambda0 0.5: `CONDITIONING_DEFAULTS` in `method`).
  Labels are unknown at test time, so test-time views fall back to random resized crops
  (crop family, area in [fallback_scale_min, 1], aspect in [3/4, 4/3], resampled with
  `fallback_interpolation`; the public code: area [0.2, 1], bicubic) or to the range of a
  uniformly drawn class (rotation, colour), and `inspect` reports class averages.

A conditioner knows theta's learnable state and nothing about its meaning, so each works
with each parameterization. It is not itself a module: the method registers the conditioner's
`state` as its own attributes (`phi`, `logit_vector`, `raw_table`, ...), so parameter names
and checkpoint keys are the method's, as they were before conditioners were separate objects.
The conditioner keeps references to those same objects, which training, `.to()` and
`load_state_dict` update in place (`load_state_dict(assign=True)` would replace them: not
supported).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from augbench.errors import ConfigError
from augbench.methods import repeat_views
from augbench.methods.instaaug.parameterization import INSPECT_SAMPLES, Parameterization, sampled_boxes
from augbench.methods.random_crop import sample_resized_crop_boxes
from augbench.transforms.geometry import crop_matrix, warp

CONDITIONINGS = ("input", "input-free", "class")


class Conditioner:
    """theta (B, n_raw) for a batch; test-time views and statistics through a parameterization.

    `state`: the learnable modules and parameters it reads, by the name the method registers
    them under.
    """

    state: dict[str, nn.Module | nn.Parameter]

    def __call__(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        raise NotImplementedError

    def test_views(self, x: Tensor, y: Tensor | None, n_views: int, dist: Parameterization, rule: str) -> Tensor:
        """Test-time views of `dist` at this batch's theta (`rule`: "sample" or "topk")."""
        return dist.test_views(x, self(x, y), n_views, rule)

    def inspect(self, x: Tensor, y: Tensor | None, dist: Parameterization) -> dict[str, Tensor]:
        """`dist`'s per-sample statistics at this batch's theta."""
        return dist.inspect(self(x, y))


class InputConditioner(Conditioner):
    """theta = phi(x); state "phi"."""

    def __init__(self, phi: nn.Module) -> None:
        self.phi = phi
        self.state = {"phi": phi}

    def __call__(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        return self.phi(x)


class InputFreeConditioner(Conditioner):
    """theta = one learned vector (n_raw,), the same for every input; state "<raw_name>_vector"."""

    def __init__(self, init: Tensor, raw_name: str) -> None:
        self.vector = nn.Parameter(init)
        self.state = {f"{raw_name}_vector": self.vector}

    def __call__(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        return self.vector.expand(x.shape[0], -1)


class ClassConditioner(Conditioner):
    """theta = row y of a learned (num_classes, n_raw) table, with a label-free fallback; state "<raw_name>_table"."""

    def __init__(self, init: Tensor, raw_name: str, image_hw: tuple[int, int], fallback_scale_min: float,
                 fallback_interpolation: str = "bilinear") -> None:
        self.table = nn.Parameter(init)
        self.state = {f"{raw_name}_table": self.table}
        self.image_hw = image_hw
        self.fallback_scale_min = fallback_scale_min
        self.fallback_interpolation = fallback_interpolation

    def __call__(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        if y is None:
            raise ConfigError("instaaug: conditioning=class needs the labels (StepContext.y) to sample")
        return self.table[y]

    def test_views(self, x: Tensor, y: Tensor | None, n_views: int, dist: Parameterization, rule: str) -> Tensor:
        if y is not None:
            return super().test_views(x, y, n_views, dist, rule)
        xs = repeat_views(x, n_views)
        if dist.family == "crop":  # the table is not used at all: random resized crops
            views = warp(xs, crop_matrix(*self.random_crops(xs.shape[0], x.device)), mode=self.fallback_interpolation)
            return views.clamp(0.0, 1.0) if self.fallback_interpolation == "bicubic" else views  # bicubic overshoots
        y = torch.randint(self.table.shape[0], (xs.shape[0],), device=x.device)  # a random class per view
        return dist.test_views(xs, self.table[y], 1)

    def inspect(self, x: Tensor, y: Tensor | None, dist: Parameterization) -> dict[str, Tensor]:
        if y is not None:
            return super().inspect(x, y, dist)
        b = x.shape[0]
        out = dist.class_average(self.table, b)
        if dist.family == "crop":  # the fallback's crops, as test-time views draw them
            out["crop_boxes"] = sampled_boxes(torch.stack(self.random_crops(b * INSPECT_SAMPLES, x.device), -1), b)
        return out

    def random_crops(self, n: int, device: torch.device) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """n random resized crop boxes (center_y, center_x, height, width): the label-free fallback."""
        return sample_resized_crop_boxes(n, self.image_hw, (self.fallback_scale_min, 1.0), (3 / 4, 4 / 3), device)


def build_conditioner(conditioning: str, dist: Parameterization, in_channels: int, num_classes: int,
                      image_hw: tuple[int, int], fallback_scale_min: float,
                      fallback_interpolation: str = "bilinear") -> Conditioner:
    """The conditioner of `conditioning` for `dist`, initialised as the parameterization says."""
    if conditioning == "input":
        return InputConditioner(dist.network(in_channels))
    if conditioning == "input-free":
        return InputFreeConditioner(dist.initial_raw(), dist.raw_name)
    if conditioning == "class":
        return ClassConditioner(dist.class_table(num_classes), dist.raw_name, image_hw, fallback_scale_min,
                                fallback_interpolation)
    raise ConfigError(f"instaaug: unknown conditioning {conditioning!r}; valid: {', '.join(CONDITIONINGS)}")

