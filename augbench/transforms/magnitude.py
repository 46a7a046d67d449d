"""Op spaces driven by one magnitude per image: the per-sample magnitude methods' ops, batched.

EntAugment, AdaAugment and Sample-aware RandAugment choose ops uniformly and set how strong
they are from one number per image. Each space maps (op, strength) to the magnitude
:mod:`augbench.transforms.ops` takes, image by image, and applies the ops grouped by op.

`TA_STANDARD`: TrivialAugment's original "standard" space, which EntAugment's and AdaAugment's
code use (their ``augmentation/*.py``, adopted from TrivialAugment's code). An op at integer
level L of PARAMETER_MAX P has raw strength r = L * max / P, floored for the integer ops:

=============  ==========================  =========================================
op             max                         augbench magnitude
=============  ==========================  =========================================
Rotate         30 (integer)                +-r degrees
Solarize       256 (integer)               threshold (256 - r) / 255
Color, ...     1.8                         enhance factor r + 0.1, as factor - 1 (NOT signed:
                                           level 0 is factor 0.1, level P factor 1.9)
Posterize      4 (integer)                 4 - r bits kept (level P: 0 bits, a black image)
ShearX/Y       0.3                         +-r
TranslateX/Y   10 (integer)                +-r pixels, whatever the image size
=============  ==========================  =========================================

`SRA_SPACE`: Sample-aware RandAugment's ``CANDIDATE_OPS_DICT_32`` (its ``transforms/SRA.py``
and ``operations.py``), magnitude m in [0, 1]: shears +-0.3 m, translations +-0.45 m of the
side, rotations +-30 m degrees, enhance factors 1 +- 0.9 m, Solarize threshold (256 - 256 m)
/ 255, Posterize removing 4 m bits (its code divides by 2^(4 m) in floats; augbench removes
round(4 m) whole bits), Equalize, AutoContrast, Identity. Signs are drawn per image with
probability 1/2 in both spaces. Geometric ops are augbench's (nearest, fill 0, whole-pixel
translations), where SRA's code resamples bilinearly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from augbench.errors import DataError
from augbench.hparams import HParam
from augbench.transforms.ops import apply_ops, cutout, draw_uniform, get_op, group_sizes


@dataclass(frozen=True)
class StrengthOp:
    """One op: raw r = strength * max, then `quantize` ("floor", "round" or ""), then the op's
    magnitude a * r + b, negated with probability 1/2 if `signed`, times the image width or height
    if `per` says so. Ops without a magnitude have max 0."""

    name: str
    max: float = 0.0
    quantize: str = ""
    signed: bool = False
    a: float = 1.0
    b: float = 0.0
    per: str = ""


class MagnitudeSpace:
    """Ops chosen per image and applied with per-image strengths in [0, 1], batched."""

    def __init__(self, ops: Sequence[StrengthOp]) -> None:
        self.ops = tuple(ops)
        self.names = tuple(op.name for op in self.ops)
        for name in self.names:  # fail at import, not mid-training
            get_op(name)
        self._tables: dict[tuple[int, int, str, torch.dtype], tuple[Tensor, ...]] = {}

    def _table(self, height: int, width: int, device: torch.device, dtype: torch.dtype) -> tuple[Tensor, ...]:
        """Per-op columns on `device`, built once (a copy from the host would sync a GPU each step)."""
        key = (height, width, str(device), dtype)
        if key not in self._tables:
            size = {"": 1.0, "width": float(width), "height": float(height)}
            cols = ([op.max for op in self.ops], [op.a * size[op.per] for op in self.ops],
                    [op.b * size[op.per] for op in self.ops])
            flags = ([op.quantize == "floor" for op in self.ops], [op.quantize == "round" for op in self.ops],
                     [op.signed for op in self.ops])
            self._tables[key] = (*(torch.tensor(c, dtype=dtype, device=device) for c in cols),
                                 *(torch.tensor(f, device=device) for f in flags))
        return self._tables[key]

    def values(self, op_index: Tensor, strength: Tensor, height: int, width: int,
               denominator: float = 1.0) -> Tensor:
        """The ops' magnitudes (shape of `op_index`) at `strength` / `denominator` of each op's range.

        `denominator`: TrivialAugment's PARAMETER_MAX when `strength` is an integer level, so that
        integer ops floor L * max / P exactly as its code does (L / P * max can fall just below).
        """
        if op_index.shape != strength.shape:
            raise DataError(f"op_index and strength shapes differ: {tuple(op_index.shape)} vs {tuple(strength.shape)}")
        dtype = torch.float64 if strength.device.type != "mps" else torch.float32
        top, a, b, floor, rnd, signed = self._table(height, width, strength.device, dtype)
        op = op_index.to(device=strength.device, dtype=torch.int64)
        raw = strength.to(dtype) * top[op] / denominator
        raw = torch.where(floor[op], torch.floor(raw), torch.where(rnd[op], torch.round(raw), raw))
        value = a[op] * raw + b[op]
        negate = signed[op] & (draw_uniform(op.shape, device=op.device) < 0.5)
        return torch.where(negate, -value, value).to(torch.float32)

    def draw_ops(self, shape: Sequence[int], device: torch.device) -> Tensor:
        """Op indices drawn uniformly (with replacement), int64 of `shape`."""
        return torch.randint(len(self.names), tuple(shape), device=device)

    def apply(self, x: Tensor, op_index: Tensor, values: Tensor) -> Tensor:
        """Apply ops `op_index` (B, k) with magnitudes `values` (B, k) in slot order; -1 skips a slot.

        One device sync for the group sizes of all k slots (`group_sizes`).
        """
        if op_index.dim() != 2 or op_index.shape[0] != x.shape[0] or values.shape != op_index.shape:
            raise DataError(f"op_index and values must be (B, k) with B = {x.shape[0]}, got "
                            f"{tuple(op_index.shape)} and {tuple(values.shape)}")
        sizes = group_sizes(op_index, len(self.names))
        for slot in range(op_index.shape[1]):
            x = apply_ops(x, op_index[:, slot], values[:, slot], self.names, sizes=sizes[slot])
        return x


_TA_ENHANCE_OFFSET = 0.1 - 1.0  # factor r + 0.1, as augbench's factor - 1
TA_STANDARD = MagnitudeSpace((
    StrengthOp("Identity"),
    StrengthOp("AutoContrast"),
    StrengthOp("Equalize"),
    StrengthOp("Rotate", 30.0, "floor", signed=True),
    StrengthOp("Solarize", 256.0, "floor", a=-1.0 / 255.0, b=256.0 / 255.0),
    StrengthOp("Color", 1.8, b=_TA_ENHANCE_OFFSET),
    StrengthOp("Posterize", 4.0, "floor", a=-1.0, b=4.0),
    StrengthOp("Contrast", 1.8, b=_TA_ENHANCE_OFFSET),
    StrengthOp("Brightness", 1.8, b=_TA_ENHANCE_OFFSET),
    StrengthOp("Sharpness", 1.8, b=_TA_ENHANCE_OFFSET),
    StrengthOp("ShearX", 0.3, signed=True),
    StrengthOp("ShearY", 0.3, signed=True),
    StrengthOp("TranslateX", 10.0, "floor", signed=True),
    StrengthOp("TranslateY", 10.0, "floor", signed=True),
))

SRA_SPACE = MagnitudeSpace((
    StrengthOp("ShearX", 0.3, signed=True),
    StrengthOp("ShearY", 0.3, signed=True),
    StrengthOp("TranslateX", 0.45, signed=True, per="width"),
    StrengthOp("TranslateY", 0.45, signed=True, per="height"),
    StrengthOp("Rotate", 30.0, signed=True),
    StrengthOp("Brightness", 0.9, signed=True),
    StrengthOp("Color", 0.9, signed=True),
    StrengthOp("Sharpness", 0.9, signed=True),
    StrengthOp("Contrast", 0.9, signed=True),
    StrengthOp("Solarize", 256.0, a=-1.0 / 255.0, b=256.0 / 255.0),
    StrengthOp("Posterize", 4.0, "round", a=-1.0, b=8.0),
    StrengthOp("Equalize"),
    StrengthOp("AutoContrast"),
    StrengthOp("Identity"),
))


def pipeline_hparams(where: str, cutout_code: str) -> dict[str, HParam]:
    """The base pipeline's hyperparameters of the three methods (`base_pad`, `cutout`): `where` says
    where the pad-and-crop sits relative to the ops, `cutout_code` the public code's Cutout sizes."""
    return {
        "base_pad": HParam(None, int, low=0, nullable=True,
                           help=f"pad-and-crop {where}, in pixels; None: 4 on crop benchmarks, 0 elsewhere"),
        "cutout": HParam(0, int, low=0, help=f"Cutout square after the ops, in pixels (code: {cutout_code}); 0: none"),
    }


def base_pad(value: int | None, families: frozenset[str]) -> int:
    """Pixels of the pad-and-crop around the ops: `value`, or when None 4 on crop benchmarks and 0
    elsewhere (the three methods' CIFAR pipelines' RandomCrop(32, padding=4), kept off colour data)."""
    if value is not None:
        return value
    return 4 if "crop" in families else 0


def cutout_pixels(x: Tensor, side: int) -> Tensor:
    """Cutout of a `side`-pixel square per image (centre uniform, clipped; mean-colour fill); 0: none."""
    if side <= 0:
        return x
    return cutout(x, torch.full((x.shape[0],), side / x.shape[-1], device=x.device))


def level_of(magnitude: Tensor, parameter_max: int) -> Tensor:
    """EntAugment's and AdaAugment's level of a magnitude in [0, 1]: min(int(P m) + 1, P).

    In float64, as the code's Python arithmetic on the stored float32 (P m rounded in float32 can
    reach the next integer: 30 * float32(0.7) is 20.99... in float64, 21.0 in float32).
    """
    wide = torch.float64 if magnitude.device.type != "mps" else torch.float32
    level = torch.floor(magnitude.clamp(0.0, 1.0).to(wide) * parameter_max) + 1
    return torch.clamp(level, max=parameter_max).to(torch.float32)


__all__ = ["MagnitudeSpace", "SRA_SPACE", "StrengthOp", "TA_STANDARD", "base_pad", "cutout_pixels", "level_of",
           "pipeline_hparams"]
