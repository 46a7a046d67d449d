"""`augerino`: global learned augmentation widths (Benton et al., 2020; InstaAug paper Appendix B).

Geometric space: six affine Lie-algebra generators G_i (translate x/y, rotation, isotropic
scale, stretch, shear), widths w = softplus(raw), eps_i ~ U[-w_i/2, w_i/2] per sample
(reparameterised), T = matrix_exp(sum_i eps_i G_i), then one affine_grid + grid_sample for
the whole batch. Loss: mean task loss - lambda * ||w||_2 with a fixed lambda (Eq. B.1a).

Colour space (InstaAug paper Section 5.4, "Augerino with relaxed symmetry restrictions"):
a learned global [min, max] per HSV channel, delta_c ~ U[min_c, max_c], applied by
`hsv_jitter` (hue shift mod 1, saturation and value scaled by 1 + delta). The bounds use
Augerino's own colour parameterisation (its colorspace_augs.py): lim = bound * (2 sigmoid(raw) - 1).

Test time: Augerino averages log_softmax over sampled copies (its AugAveragedModel,
`combine_views`); the views are the training distribution.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from augbench.errors import ConfigError
from augbench.hparams import HParam
from augbench.methods import AugmentationMethod, MethodContext, StepContext, Views, register_method, repeat_views
from augbench.transforms.color import hsv_jitter
from augbench.transforms.geometry import warp

GENERATORS: tuple[str, ...] = ("tx", "ty", "rotation", "scale", "stretch", "shear")
GENERATOR_SETS: dict[str, tuple[str, ...]] = {
    "all": GENERATORS,
    "rotation": ("rotation",),
    "crop": ("tx", "ty", "scale"),
}
# Default generator set per benchmark family when `generators="auto"`.
_AUTO_GENERATORS = {"rotation": "rotation", "crop": "crop"}
# Generators whose transforms are axis-aligned crops (reported as boxes for crop benchmarks).
CROP_GENERATORS = frozenset({"tx", "ty", "scale"})
INSPECT_SAMPLES = 8  # sampled crops per input reported by `inspect` ("crop_boxes")
HSV_CHANNELS: tuple[str, ...] = ("hue", "saturation", "value")
# Largest useful |delta| per channel: half a turn of hue; saturation/value factors 1 + delta in [0, 2].
HSV_BOUNDS: tuple[float, float, float] = (0.5, 1.0, 1.0)


def parse_generators(spec: str) -> tuple[str, ...]:
    """`"all"`, `"rotation"`, `"crop"` or a comma list of GENERATORS -> generator names in canonical order."""
    if spec in GENERATOR_SETS:
        return GENERATOR_SETS[spec]
    names = [s.strip() for s in spec.split(",") if s.strip()]
    unknown = [n for n in names if n not in GENERATORS]
    if not names or unknown:
        raise ConfigError(f"augerino.generators: {spec!r} is not one of {', '.join(GENERATOR_SETS)} "
                          f"or a comma list of {', '.join(GENERATORS)}")
    return tuple(g for g in GENERATORS if g in names)


@lru_cache(maxsize=64)
def affine_generators(names: tuple[str, ...], image_hw: tuple[int, int], trans_scale: float = 0.1,
                      device: torch.device | None = None, dtype: torch.dtype = torch.float32) -> Tensor:
    """(len(names), 3, 3) generators acting on affine_grid's normalised coordinates.

    Augerino's matrices (its uniform_aug.py) assume a square image. The linear generators are
    defined on isotropic pixel coordinates and conjugated by diag(1, W/H) into normalised
    coordinates, so `rotation` is a rigid rotation (counter-clockwise for eps > 0, like
    `geometry.rotate`) whatever the aspect ratio; translations stay fractions of each side
    (times `trans_scale`). For square images these are exactly Augerino's generators.
    Cached per (names, size, device, dtype): treat the result as read-only.
    """
    h, w = image_hw
    a = w / h
    g = torch.zeros(len(GENERATORS), 3, 3, dtype=torch.float64)
    g[0, 0, 2] = trans_scale  # tx
    g[1, 1, 2] = trans_scale  # ty
    g[2, 0, 1], g[2, 1, 0] = -1.0 / a, a  # rotation
    g[3, 0, 0], g[3, 1, 1] = 1.0, 1.0  # isotropic scale (eps > 0 zooms out)
    g[4, 0, 0], g[4, 1, 1] = 1.0, -1.0  # stretch
    g[5, 0, 1], g[5, 1, 0] = 1.0 / a, a  # shear (Augerino's symmetric generator)
    idx = [GENERATORS.index(n) for n in names]
    return g[idx].to(device=device, dtype=dtype)


def affine_transform(eps: Tensor, generators: Tensor) -> Tensor:
    """(B, 2, 3) output->input maps T = matrix_exp(sum_i eps[:, i] G_i); differentiable in eps."""
    algebra = torch.einsum("bn,nij->bij", eps, generators.to(eps.dtype))
    return torch.linalg.matrix_exp(algebra)[:, :2, :]


def _raw_for(value: float) -> float:
    """softplus^{-1}(value)."""
    return value + math.log(-math.expm1(-value))


@register_method("augerino")
class Augerino(AugmentationMethod):
    """Global uniform widths over affine generators or per-HSV-channel [min, max] colour ranges."""

    families = frozenset({"rotation", "crop", "color"})
    recipes = {
        "glyphs-rotation": {"generators": "rotation"},
        "imagefolder-rotation": {"generators": "rotation"},
        "rawfoot-color": {"space": "hsv"},
        "texture-color": {"space": "hsv"},
        "imagefolder-color": {"space": "hsv"},
    }
    hparams = {
        "space": HParam("auto", str, choices=("auto", "affine", "hsv"),
                        help="affine generators or HSV colour ranges; auto: hsv on colour benchmarks"),
        "generators": HParam("auto", str, help="all | rotation | crop (tx,ty,scale) | comma list of "
                             + ",".join(GENERATORS) + "; auto: from the benchmark family"),
        "lam": HParam(0.01, float, low=0.0, help="fixed regulariser weight lambda (Augerino: 0.01 to 0.1)"),
        "lr": HParam(0.01, float, low=0.0, help="Adam learning rate of the widths (Augerino's CIFAR run: 0.01)"),
        "init_width": HParam(math.log(2.0), float, low=1e-6, high=50.0,
                             help="initial width of each learned generator (Augerino: softplus(0) = ln 2)"),
        "trans_scale": HParam(0.1, float, low=0.0, help="translation generator scale (Augerino: 0.1)"),
        "max_width": HParam(10.0, float, low=0.0, nullable=True,
                            help="regulariser switched off once any width reaches this "
                                 "(Augerino's safe_unif_aug_loss); None: never"),
        "color_init": HParam(math.tanh(1.0), float, low=0.0, high=0.999,
                             help="initial |min| = |max| as a fraction of each channel's bound "
                                  "(Augerino's colour init: 2 sigmoid(2) - 1)"),
    }

    @classmethod
    def families_for(cls, hp: Mapping[str, Any]) -> frozenset[str]:
        """hsv: colour; affine generators: rotation if they rotate, crop if they translate or scale.

        hsv with generators set (say, a rotation benchmark's default with space=hsv) contradicts
        itself and transforms no family.
        """
        if hp["space"] == "hsv":
            return frozenset({"color"}) if hp["generators"] == "auto" else frozenset()
        if hp["generators"] == "auto":
            return cls.families if hp["space"] == "auto" else frozenset({"rotation", "crop"})
        names = parse_generators(hp["generators"])
        return frozenset({"rotation"} if "rotation" in names else set()) | (
            frozenset({"crop"}) if CROP_GENERATORS & set(names) else frozenset())

    bounds: Tensor  # buffer: HSV half-widths (colour generators)

    def __init__(self, ctx: MethodContext, **hp: Any) -> None:
        super().__init__(ctx, **hp)
        space = self.hp["space"]
        if space == "auto":
            space = "hsv" if ctx.families == frozenset({"color"}) else "affine"
        self.space = space
        if space == "hsv":
            if self.hp["generators"] != "auto":
                raise ConfigError("augerino: generators apply to space 'affine' only; leave them 'auto' with 'hsv'")
            if ctx.image_shape[0] != 3:
                raise ConfigError(f"augerino: space 'hsv' needs RGB images, got {ctx.image_shape[0]} channels")
            raw = 2.0 * math.atanh(self.hp["color_init"])  # bound * tanh(raw / 2) = bound * color_init
            self.raw = nn.Parameter(torch.tensor([[-raw, raw]] * 3))
            self.register_buffer("bounds", torch.tensor(HSV_BOUNDS), persistent=False)
            self.generator_names: tuple[str, ...] = ()
        else:
            spec = self.hp["generators"]
            if spec == "auto":
                spec = next((_AUTO_GENERATORS[f] for f in sorted(ctx.families) if f in _AUTO_GENERATORS), "all")
            self.generator_names = parse_generators(spec)
            self.raw = nn.Parameter(torch.full((len(self.generator_names),), _raw_for(self.hp["init_width"])))

    # ------------------------------------------------------------------ distribution
    def widths(self) -> Tensor:
        """Affine: (n,) widths softplus(raw). HSV: (3,) widths |max - min| of the colour ranges."""
        if self.space == "hsv":
            lo, hi = self.color_limits().unbind(-1)
            return (hi - lo).abs()
        return F.softplus(self.raw)

    def color_limits(self) -> Tensor:
        """(3, 2) learned endpoints of the hue, saturation and value deltas.

        The two endpoints are free parameters (Augerino's colour code), so they may cross;
        deltas are uniform between them either way, and `inspect` reports them sorted.
        """
        return self.bounds.view(3, 1) * torch.tanh(self.raw / 2)

    def _draw(self, n: int, device: torch.device) -> Tensor:
        u = torch.rand(n, self.raw.shape[0], device=device, dtype=self.raw.dtype)
        if self.space == "hsv":
            lo, hi = self.color_limits().unbind(-1)
            return lo + u * (hi - lo)
        w = self.widths()
        return (u - 0.5) * w

    # ------------------------------------------------------------------ training
    def sample(self, x: Tensor, ctx: StepContext, n_views: int = 1) -> Views:
        x = repeat_views(x, n_views)
        eps = self._draw(x.shape[0], x.device)
        if self.space == "hsv":
            out = hsv_jitter(x, eps[:, 0], eps[:, 1], eps[:, 2])
        else:
            gens = affine_generators(self.generator_names, (x.shape[-2], x.shape[-1]), self.hp["trans_scale"],
                                     x.device, eps.dtype)
            out = warp(x, affine_transform(eps, gens))
        return Views(out, n_views, info={"eps": eps.detach()})

    def objective(self, per_sample_loss: Tensor, views: Views) -> tuple[Tensor, dict[str, Tensor]]:
        w = self.widths()
        reg = w.norm()
        if self.hp["max_width"] is not None:
            reg = reg * (w < self.hp["max_width"]).all().to(reg.dtype)
        logs = {f"width_{name}": v.detach() for name, v in zip(self._names(), w)}
        return per_sample_loss.mean() - self.hp["lam"] * reg, logs

    def make_optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.hp["lr"])

    def combine_views(self, outs: Tensor) -> Tensor:
        """The mean log-probability over test-time views (V, B, K) -> (B, K), as Augerino's AugAveragedModel."""
        return torch.log_softmax(outs, dim=-1).mean(0)

    # ------------------------------------------------------------------ introspection
    def _names(self) -> tuple[str, ...]:
        return HSV_CHANNELS if self.space == "hsv" else self.generator_names

    @torch.no_grad()
    def inspect(self, x: Tensor, ctx: StepContext) -> dict[str, Tensor]:
        b = x.shape[0]
        out: dict[str, Tensor] = {}
        w = self.widths().to(x.device)
        for name, value in zip(self._names(), w):
            out[f"width_{name}"] = value.expand(b).clone()
        if self.space == "hsv":
            for name, lim in zip(HSV_CHANNELS, self.color_limits().sort(-1).values.to(x.device)):
                out[f"{name}_range"] = lim.expand(b, 2).clone()
        else:
            if "rotation" in self.generator_names:
                half = w[self.generator_names.index("rotation")] / 2
                out["rotation_range"] = torch.stack([-half, half]).expand(b, 2).clone()
            if set(self.generator_names) <= CROP_GENERATORS:
                out["crop_boxes"] = self.crop_boxes(b * INSPECT_SAMPLES, (x.shape[-2], x.shape[-1]), x.device).view(
                    b, INSPECT_SAMPLES, 4)
        return out

    def crop_boxes(self, n: int, image_hw: tuple[int, int], device: torch.device) -> Tensor:
        """(n, 4) sampled boxes (center_y, center_x, height, width), for translate/scale generators only.

        Then T = [[s, 0, tx], [0, s, ty]] is exactly `geometry.crop_matrix` of that box.
        """
        eps = self._draw(n, device)
        gens = affine_generators(self.generator_names, image_hw, self.hp["trans_scale"], device, eps.dtype)
        t = affine_transform(eps, gens)
        return torch.stack([(t[:, 1, 2] + 1) / 2, (t[:, 0, 2] + 1) / 2, t[:, 1, 1], t[:, 0, 0]], dim=-1)

    def extra_repr(self) -> str:
        resolved = {**self.hp, "space": self.space, "generators": ",".join(self.generator_names) or "-"}
        return ", ".join(f"{k}={v}" for k, v in resolved.items())
