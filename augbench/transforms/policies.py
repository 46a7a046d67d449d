"""AutoAugment, RandAugment and TrivialAugmentWide drawn per image, and AdaAug's op table.

torchvision's AutoAugment, RandAugment and TrivialAugmentWide draw ONE op and magnitude
per call, so a batch tensor gets the same augmentation for every image. The samplers here
draw the same distributions independently for every image and return tensors, and
:func:`apply_policy` applies them batched through :func:`augbench.transforms.ops.apply_ops`.

The policy tables are copied from torchvision 0.29 (``transforms/v2/_auto_augment.py``);
``tests/test_transforms_ops.py`` checks they still equal torchvision's. A drawn
magnitude is what torchvision hands to its op: a bin value, negated with probability 1/2
for signed ops, 0 for ops without a magnitude.

The AdaAug table follows the public AdaAug code (``ada_aug/operation.py``): value =
m (high - low) + low for a policy magnitude m in [0, 1], geometric ops negated with
probability 1/2, then converted to the op's magnitude unit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

import torch
from torch import Tensor

from augbench.errors import ConfigError, DataError
from augbench.transforms.ops import apply_ops, draw_int, draw_uniform, get_op, group_sizes

__all__ = [
    "Bins",
    "PolicySample",
    "PolicySampler",
    "AUTOAUGMENT_SPACE",
    "RANDAUGMENT_SPACE",
    "TRIVIALAUGMENT_WIDE_SPACE",
    "AUTOAUGMENT_POLICIES",
    "AutoAugmentSampler",
    "RandAugmentSampler",
    "TrivialAugmentWideSampler",
    "SAMPLERS",
    "create_sampler",
    "apply_policy",
    "AdaAugOp",
    "ADAAUG_OPS",
    "ADAAUG_NAMES",
    "adaaug_values",
    "adaaug_apply",
    "adaaug_apply_all",
]


# ------------------------------------------------------------------ magnitude bins


@dataclass(frozen=True)
class Bins:
    """Magnitude bins of one op: ``num_bins`` values from ``low`` to ``high``.

    ``per`` scales both ends by the image "width" or "height" (translations). ``integer``
    bins use torchvision's Posterize formula ``round(low - i / ((n - 1) / (low - high)))``.
    ``signed``: a drawn value is negated with probability 1/2.
    """

    low: float
    high: float
    signed: bool = False
    per: str = ""
    integer: bool = False

    def values(self, num_bins: int, height: int, width: int) -> Tensor:
        """The bins as float32 (num_bins,), computed as torchvision computes them."""
        if self.integer:
            steps = torch.arange(num_bins) / ((num_bins - 1) / (self.low - self.high))
            return (self.low - steps).round().float()
        size = {"": 1, "width": width, "height": height}[self.per]
        return torch.linspace(self.low * size, self.high * size, num_bins)


_TRANSLATE = 150.0 / 331.0  # AutoAugment translates by up to 150 px of a 331 px image

AUTOAUGMENT_SPACE: dict[str, Bins | None] = {
    "ShearX": Bins(0.0, 0.3, signed=True),
    "ShearY": Bins(0.0, 0.3, signed=True),
    "TranslateX": Bins(0.0, _TRANSLATE, signed=True, per="width"),
    "TranslateY": Bins(0.0, _TRANSLATE, signed=True, per="height"),
    "Rotate": Bins(0.0, 30.0, signed=True),
    "Brightness": Bins(0.0, 0.9, signed=True),
    "Color": Bins(0.0, 0.9, signed=True),
    "Contrast": Bins(0.0, 0.9, signed=True),
    "Sharpness": Bins(0.0, 0.9, signed=True),
    "Posterize": Bins(8.0, 4.0, integer=True),
    "Solarize": Bins(1.0, 0.0),
    "AutoContrast": None,
    "Equalize": None,
    "Invert": None,
}

RANDAUGMENT_SPACE: dict[str, Bins | None] = {
    "Identity": None,
    **{name: bins for name, bins in AUTOAUGMENT_SPACE.items() if name != "Invert"},
}

TRIVIALAUGMENT_WIDE_SPACE: dict[str, Bins | None] = {
    "Identity": None,
    "ShearX": Bins(0.0, 0.99, signed=True),
    "ShearY": Bins(0.0, 0.99, signed=True),
    "TranslateX": Bins(0.0, 32.0, signed=True),
    "TranslateY": Bins(0.0, 32.0, signed=True),
    "Rotate": Bins(0.0, 135.0, signed=True),
    "Brightness": Bins(0.0, 0.99, signed=True),
    "Color": Bins(0.0, 0.99, signed=True),
    "Contrast": Bins(0.0, 0.99, signed=True),
    "Sharpness": Bins(0.0, 0.99, signed=True),
    "Posterize": Bins(8.0, 2.0, integer=True),
    "Solarize": Bins(1.0, 0.0),
    "AutoContrast": None,
    "Equalize": None,
}

# Sub-policies ((op, probability, magnitude bin of 10), (op, probability, bin)).
_SubPolicy = tuple[tuple[str, float, int | None], tuple[str, float, int | None]]

AUTOAUGMENT_POLICIES: dict[str, tuple[_SubPolicy, ...]] = {
    "imagenet": (
        (("Posterize", 0.4, 8), ("Rotate", 0.6, 9)),
        (("Solarize", 0.6, 5), ("AutoContrast", 0.6, None)),
        (("Equalize", 0.8, None), ("Equalize", 0.6, None)),
        (("Posterize", 0.6, 7), ("Posterize", 0.6, 6)),
        (("Equalize", 0.4, None), ("Solarize", 0.2, 4)),
        (("Equalize", 0.4, None), ("Rotate", 0.8, 8)),
        (("Solarize", 0.6, 3), ("Equalize", 0.6, None)),
        (("Posterize", 0.8, 5), ("Equalize", 1.0, None)),
        (("Rotate", 0.2, 3), ("Solarize", 0.6, 8)),
        (("Equalize", 0.6, None), ("Posterize", 0.4, 6)),
        (("Rotate", 0.8, 8), ("Color", 0.4, 0)),
        (("Rotate", 0.4, 9), ("Equalize", 0.6, None)),
        (("Equalize", 0.0, None), ("Equalize", 0.8, None)),
        (("Invert", 0.6, None), ("Equalize", 1.0, None)),
        (("Color", 0.6, 4), ("Contrast", 1.0, 8)),
        (("Rotate", 0.8, 8), ("Color", 1.0, 2)),
        (("Color", 0.8, 8), ("Solarize", 0.8, 7)),
        (("Sharpness", 0.4, 7), ("Invert", 0.6, None)),
        (("ShearX", 0.6, 5), ("Equalize", 1.0, None)),
        (("Color", 0.4, 0), ("Equalize", 0.6, None)),
        (("Equalize", 0.4, None), ("Solarize", 0.2, 4)),
        (("Solarize", 0.6, 5), ("AutoContrast", 0.6, None)),
        (("Invert", 0.6, None), ("Equalize", 1.0, None)),
        (("Color", 0.6, 4), ("Contrast", 1.0, 8)),
        (("Equalize", 0.8, None), ("Equalize", 0.6, None)),
    ),
    "cifar10": (
        (("Invert", 0.1, None), ("Contrast", 0.2, 6)),
        (("Rotate", 0.7, 2), ("TranslateX", 0.3, 9)),
        (("Sharpness", 0.8, 1), ("Sharpness", 0.9, 3)),
        (("ShearY", 0.5, 8), ("TranslateY", 0.7, 9)),
        (("AutoContrast", 0.5, None), ("Equalize", 0.9, None)),
        (("ShearY", 0.2, 7), ("Posterize", 0.3, 7)),
        (("Color", 0.4, 3), ("Brightness", 0.6, 7)),
        (("Sharpness", 0.3, 9), ("Brightness", 0.7, 9)),
        (("Equalize", 0.6, None), ("Equalize", 0.5, None)),
        (("Contrast", 0.6, 7), ("Sharpness", 0.6, 5)),
        (("Color", 0.7, 7), ("TranslateX", 0.5, 8)),
        (("Equalize", 0.3, None), ("AutoContrast", 0.4, None)),
        (("TranslateY", 0.4, 3), ("Sharpness", 0.2, 6)),
        (("Brightness", 0.9, 6), ("Color", 0.2, 8)),
        (("Solarize", 0.5, 2), ("Invert", 0.0, None)),
        (("Equalize", 0.2, None), ("AutoContrast", 0.6, None)),
        (("Equalize", 0.2, None), ("Equalize", 0.6, None)),
        (("Color", 0.9, 9), ("Equalize", 0.6, None)),
        (("AutoContrast", 0.8, None), ("Solarize", 0.2, 8)),
        (("Brightness", 0.1, 3), ("Color", 0.7, 0)),
        (("Solarize", 0.4, 5), ("AutoContrast", 0.9, None)),
        (("TranslateY", 0.9, 9), ("TranslateY", 0.7, 9)),
        (("AutoContrast", 0.9, None), ("Solarize", 0.8, 3)),
        (("Equalize", 0.8, None), ("Invert", 0.1, None)),
        (("TranslateY", 0.7, 9), ("AutoContrast", 0.9, None)),
    ),
    "svhn": (
        (("ShearX", 0.9, 4), ("Invert", 0.2, None)),
        (("ShearY", 0.9, 8), ("Invert", 0.7, None)),
        (("Equalize", 0.6, None), ("Solarize", 0.6, 6)),
        (("Invert", 0.9, None), ("Equalize", 0.6, None)),
        (("Equalize", 0.6, None), ("Rotate", 0.9, 3)),
        (("ShearX", 0.9, 4), ("AutoContrast", 0.8, None)),
        (("ShearY", 0.9, 8), ("Invert", 0.4, None)),
        (("ShearY", 0.9, 5), ("Solarize", 0.2, 6)),
        (("Invert", 0.9, None), ("AutoContrast", 0.8, None)),
        (("Equalize", 0.6, None), ("Rotate", 0.9, 3)),
        (("ShearX", 0.9, 4), ("Solarize", 0.3, 3)),
        (("ShearY", 0.8, 8), ("Invert", 0.7, None)),
        (("Equalize", 0.9, None), ("TranslateY", 0.6, 6)),
        (("Invert", 0.9, None), ("Equalize", 0.6, None)),
        (("Contrast", 0.3, 3), ("Rotate", 0.8, 4)),
        (("Invert", 0.8, None), ("TranslateY", 0.0, 2)),
        (("ShearY", 0.7, 6), ("Solarize", 0.4, 8)),
        (("Invert", 0.6, None), ("Rotate", 0.8, 4)),
        (("ShearY", 0.3, 7), ("TranslateX", 0.9, 3)),
        (("ShearX", 0.1, 6), ("Invert", 0.6, None)),
        (("Solarize", 0.7, 2), ("TranslateY", 0.6, 7)),
        (("ShearY", 0.8, 4), ("Invert", 0.8, None)),
        (("ShearX", 0.7, 9), ("TranslateY", 0.8, 3)),
        (("ShearY", 0.8, 5), ("AutoContrast", 0.7, None)),
        (("ShearX", 0.7, 2), ("Invert", 0.1, None)),
    ),
}


# ------------------------------------------------------------------------ samplers


class PolicySample(NamedTuple):
    """Per-image draws, each (B, k): op index into the sampler's ``names``, the signed
    magnitude handed to that op, and whether the op is applied at all."""

    op_index: Tensor
    magnitude: Tensor
    apply: Tensor


class PolicySampler(Protocol):
    """Anything that draws k ops per image from a fixed list of op names."""

    names: tuple[str, ...]

    def sample(
        self,
        batch_size: int,
        height: int,
        width: int,
        *,
        device: torch.device | str,
        generator: torch.Generator | None = None,
    ) -> PolicySample: ...


class _BinnedSampler:
    """Shared machinery: a (num_ops, num_bins) magnitude table per image size and device."""

    def __init__(self, space: dict[str, Bins | None], num_bins: int) -> None:
        self.space = space
        self.names: tuple[str, ...] = tuple(space)
        self.num_bins = num_bins
        self._tables: dict[tuple[int, int, str], tuple[Tensor, Tensor]] = {}

    def _table(self, height: int, width: int, device: torch.device) -> tuple[Tensor, Tensor]:
        """(magnitudes (num_ops, num_bins), signed (num_ops,)) on ``device``, cached."""
        key = (height, width, str(device))
        if key not in self._tables:
            rows = [
                torch.zeros(self.num_bins) if bins is None else bins.values(self.num_bins, height, width)
                for bins in self.space.values()
            ]
            signed = [bins is not None and bins.signed for bins in self.space.values()]
            self._tables[key] = (torch.stack(rows).to(device), torch.tensor(signed, device=device))
        return self._tables[key]

    def sample(
        self,
        batch_size: int,
        height: int,
        width: int,
        *,
        device: torch.device | str,
        generator: torch.Generator | None = None,
    ) -> PolicySample:
        """Draws for ``batch_size`` images of ``height`` x ``width``, on ``device``."""
        _check_size(batch_size, height, width)
        dev = _draw_device(device, generator)
        op, bin_index, apply = self._draw(batch_size, dev, generator)
        magnitude = self._lookup(op, bin_index, height, width, generator)
        return PolicySample(op.to(device), magnitude.to(device), apply.to(device))

    def _draw(self, batch_size: int, dev: torch.device,
              generator: torch.Generator | None) -> tuple[Tensor, Tensor, Tensor]:
        """(op index, magnitude bin, apply mask) per image and op slot, on ``dev``."""
        raise NotImplementedError

    def _lookup(
        self,
        op: Tensor,
        bin_index: Tensor,
        height: int,
        width: int,
        generator: torch.Generator | None,
    ) -> Tensor:
        """Magnitudes for (op, bin) pairs, negated with probability 1/2 where signed."""
        table, signed = self._table(height, width, op.device)
        magnitude = table[op, bin_index]
        negate = signed[op] & (draw_uniform(op.shape, device=op.device, generator=generator) <= 0.5)
        return torch.where(negate, -magnitude, magnitude)


def _draw_device(device: torch.device | str, generator: torch.Generator | None) -> torch.device:
    return generator.device if generator is not None else torch.device(device)


def _check_size(batch_size: int, height: int, width: int) -> None:
    if batch_size < 0 or height < 1 or width < 1:
        raise DataError(f"need batch_size >= 0 and a positive image size, got {batch_size}, {height}x{width}")


class AutoAugmentSampler(_BinnedSampler):
    """AutoAugment: per image, a sub-policy uniformly at random, then each of its two ops
    applied with its own probability and its fixed bin (of 10), sign random where signed."""

    def __init__(self, policy: str = "imagenet") -> None:
        if policy not in AUTOAUGMENT_POLICIES:
            valid = ", ".join(AUTOAUGMENT_POLICIES)
            raise ConfigError(f"unknown AutoAugment policy {policy!r}; valid: {valid}")
        super().__init__(AUTOAUGMENT_SPACE, num_bins=10)
        self.policy = policy
        subs = AUTOAUGMENT_POLICIES[policy]
        self._op = torch.tensor([[self.names.index(op) for op, _, _ in sub] for sub in subs])
        self._prob = torch.tensor([[p for _, p, _ in sub] for sub in subs])
        self._bin = torch.tensor([[0 if b is None else b for _, _, b in sub] for sub in subs])
        self._on_device: dict[str, tuple[Tensor, Tensor, Tensor]] = {}

    def _policy(self, dev: torch.device) -> tuple[Tensor, Tensor, Tensor]:
        """Sub-policy ops, probabilities and bins on ``dev``, copied once (a copy from the host syncs a GPU)."""
        key = str(dev)
        if key not in self._on_device:
            self._on_device[key] = (self._op.to(dev), self._prob.to(dev), self._bin.to(dev))
        return self._on_device[key]

    def _draw(self, batch_size: int, dev: torch.device,
              generator: torch.Generator | None) -> tuple[Tensor, Tensor, Tensor]:
        op_table, prob, bins = self._policy(dev)
        sub = draw_int(len(op_table), (batch_size,), device=dev, generator=generator)
        op = op_table[sub]
        # torchvision applies an op when rand <= p.
        apply = draw_uniform(op.shape, device=dev, generator=generator) <= prob[sub]
        return op, bins[sub], apply


class RandAugmentSampler(_BinnedSampler):
    """RandAugment: per image, ``num_ops`` ops uniformly with replacement, all at bin
    ``magnitude`` of ``num_magnitude_bins``, sign random where signed."""

    def __init__(self, num_ops: int = 2, magnitude: int = 9, num_magnitude_bins: int = 31) -> None:
        if num_ops < 0 or num_magnitude_bins < 2 or not 0 <= magnitude < num_magnitude_bins:
            raise ConfigError(
                f"RandAugment needs num_ops >= 0, num_magnitude_bins >= 2 and 0 <= magnitude < "
                f"num_magnitude_bins; got {num_ops}, {num_magnitude_bins}, {magnitude}"
            )
        super().__init__(RANDAUGMENT_SPACE, num_bins=num_magnitude_bins)
        self.num_ops = num_ops
        self.magnitude = magnitude

    def _draw(self, batch_size: int, dev: torch.device,
              generator: torch.Generator | None) -> tuple[Tensor, Tensor, Tensor]:
        op = draw_int(len(self.names), (batch_size, self.num_ops), device=dev, generator=generator)
        return op, torch.full_like(op, self.magnitude), torch.ones_like(op, dtype=torch.bool)


class TrivialAugmentWideSampler(_BinnedSampler):
    """TrivialAugmentWide: per image, one op uniformly and a bin uniformly over
    ``num_magnitude_bins``, sign random where signed."""

    def __init__(self, num_magnitude_bins: int = 31) -> None:
        if num_magnitude_bins < 2:
            raise ConfigError(f"TrivialAugmentWide needs num_magnitude_bins >= 2, got {num_magnitude_bins}")
        super().__init__(TRIVIALAUGMENT_WIDE_SPACE, num_bins=num_magnitude_bins)

    def _draw(self, batch_size: int, dev: torch.device,
              generator: torch.Generator | None) -> tuple[Tensor, Tensor, Tensor]:
        op = draw_int(len(self.names), (batch_size, 1), device=dev, generator=generator)
        bin_index = draw_int(self.num_bins, (batch_size, 1), device=dev, generator=generator)
        return op, bin_index, torch.ones_like(op, dtype=torch.bool)


SAMPLERS: dict[str, type[_BinnedSampler]] = {
    "autoaugment": AutoAugmentSampler,
    "randaugment": RandAugmentSampler,
    "trivialaugment_wide": TrivialAugmentWideSampler,
}


def create_sampler(name: str, **kwargs: object) -> PolicySampler:
    """``create_sampler("autoaugment", policy="cifar10")`` and so on."""
    if name not in SAMPLERS:
        raise ConfigError(f"unknown augmentation policy {name!r}; valid: {', '.join(SAMPLERS)}")
    return SAMPLERS[name](**kwargs)  # type: ignore[arg-type]


def apply_policy(x: Tensor, sampler: PolicySampler, generator: torch.Generator | None = None) -> Tensor:
    """Draw per-image ops from ``sampler`` and apply them in order, batched.

    ``x``: float (B, C, H, W) in [0, 1]. Step j applies every image's j-th op at once
    (images whose draw says "not applied" pass through), so the cost is k grouped
    ``apply_ops`` calls whatever the batch size, and one device sync for the group sizes
    of all k. The same seeded generator gives the same result on every device (draws
    happen on the generator's device).
    """
    batch, _, height, width = x.shape
    draws = sampler.sample(batch, height, width, device=x.device, generator=generator)
    ops = torch.where(draws.apply, draws.op_index, -1)
    return _apply_slots(x, ops, draws.magnitude, sampler.names, generator)


def _apply_slots(x: Tensor, op_index: Tensor, magnitude: Tensor, names: Sequence[str],
                 generator: torch.Generator | None, sizes: list[list[int]] | None = None) -> Tensor:
    """Op slot j of every image, for j = 0, 1, ...: one device sync for all group sizes (none when
    the caller knows them); from the first slot that changed an image on, later slots write into
    that slot's output."""
    sizes = group_sizes(op_index, len(names)) if sizes is None else sizes
    owned = False
    for step in range(op_index.shape[1]):
        out = apply_ops(x, op_index[:, step], magnitude[:, step], names, generator=generator, sizes=sizes[step],
                        inplace=owned)
        owned = owned or out is not x
        x = out
    return x


# --------------------------------------------------------------------------- AdaAug


@dataclass(frozen=True)
class AdaAugOp:
    """One AdaAug op: value = m (high - low) + low for m in [0, 1] (AdaAug's own units),
    negated with probability 1/2 if ``signed``; the op's magnitude is then
    (value + shift) / divisor, times the image width or height if ``per`` says so."""

    name: str
    low: float
    high: float
    signed: bool = False
    shift: float = 0.0
    divisor: float = 1.0
    per: str = ""


# Order and ranges of AdaAug's AUGMENT_LIST (ada_aug/operation.py), indices 0..16.
ADAAUG_OPS: tuple[AdaAugOp, ...] = (
    AdaAugOp("ShearX", -0.3, 0.3, signed=True),  # shear coefficient, as PIL's (1, v, 0, ...)
    AdaAugOp("ShearY", -0.3, 0.3, signed=True),
    # Translations: fraction of the size -> pixels. PIL's (1, 0, v, ...) moves content left
    # by v, torchvision's translate moves it right; the random sign makes that moot.
    AdaAugOp("TranslateX", -0.45, 0.45, signed=True, per="width"),
    AdaAugOp("TranslateY", -0.45, 0.45, signed=True, per="height"),
    AdaAugOp("Rotate", -30.0, 30.0, signed=True),  # degrees
    AdaAugOp("AutoContrast", 0.0, 1.0),
    AdaAugOp("Invert", 0.0, 1.0),
    AdaAugOp("Equalize", 0.0, 1.0),
    AdaAugOp("Solarize", 0.0, 256.0, divisor=255.0),  # uint8 threshold -> [0, 1] threshold
    AdaAugOp("Posterize", 4.0, 8.0),  # bits
    AdaAugOp("Contrast", 0.1, 1.9, shift=-1.0),  # PIL enhance factor -> factor - 1
    AdaAugOp("Color", 0.1, 1.9, shift=-1.0),
    AdaAugOp("Brightness", 0.1, 1.9, shift=-1.0),
    AdaAugOp("Sharpness", 0.1, 1.9, shift=-1.0),
    AdaAugOp("Cutout", 0.0, 0.2),  # side as a fraction of the width
    AdaAugOp("Flip", 0.0, 1.0),
    AdaAugOp("Identity", 0.0, 1.0),
)
ADAAUG_NAMES: tuple[str, ...] = tuple(op.name for op in ADAAUG_OPS)
for _name in ADAAUG_NAMES:  # fail at import, not mid-training, if a name is not registered
    get_op(_name)
del _name

_ADAAUG_TABLE_CACHE: dict[tuple[int, int, str, torch.dtype], tuple[Tensor, ...]] = {}


def _adaaug_table(height: int, width: int, device: torch.device, dtype: torch.dtype) -> tuple[Tensor, ...]:
    key = (height, width, str(device), dtype)
    if key not in _ADAAUG_TABLE_CACHE:
        size = {"": 1.0, "width": float(width), "height": float(height)}
        cols = (
            [op.low for op in ADAAUG_OPS],
            [op.high - op.low for op in ADAAUG_OPS],
            [op.shift for op in ADAAUG_OPS],
            [op.divisor / size[op.per] for op in ADAAUG_OPS],
        )
        floats = tuple(torch.tensor(c, dtype=dtype, device=device) for c in cols)
        signed = torch.tensor([op.signed for op in ADAAUG_OPS], device=device)
        _ADAAUG_TABLE_CACHE[key] = (*floats, signed)
    return _ADAAUG_TABLE_CACHE[key]


def adaaug_values(
    op_index: Tensor,
    magnitude: Tensor,
    height: int,
    width: int,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Op magnitudes (same shape as ``op_index``) for AdaAug policy magnitudes in [0, 1].

    ``magnitude`` is clamped to [0, 1] first (AdaAug's jittered magnitudes are clamped the
    same way). Differentiable w.r.t. ``magnitude`` inside [0, 1].
    """
    if op_index.shape != magnitude.shape:
        shapes = f"{tuple(op_index.shape)} vs {tuple(magnitude.shape)}"
        raise DataError(f"op_index and magnitude shapes differ: {shapes}")
    dtype = magnitude.dtype if magnitude.is_floating_point() else torch.float32
    low, span, shift, divisor, signed = _adaaug_table(height, width, magnitude.device, dtype)
    op = op_index.to(device=magnitude.device, dtype=torch.int64)
    value = magnitude.to(dtype).clamp(0.0, 1.0) * span[op] + low[op]
    negate = signed[op] & (draw_uniform(op.shape, device=op.device, generator=generator) < 0.5)
    value = torch.where(negate, -value, value)
    return (value + shift[op]) / divisor[op]


def adaaug_apply(
    x: Tensor,
    op_index: Tensor,
    magnitude: Tensor,
    generator: torch.Generator | None = None,
    sizes: list[list[int]] | None = None,
) -> Tensor:
    """Apply AdaAug ops ``op_index`` (B, k) with policy magnitudes (B, k) in [0, 1], in
    order, batched: the exploitation step once the k ops per image are chosen. ``sizes``:
    each slot's group sizes (`group_sizes`) when the caller knows them without a read-back."""
    if op_index.dim() != 2 or op_index.shape[0] != x.shape[0]:
        raise DataError(f"op_index must be (B, k) with B = {x.shape[0]}, got {tuple(op_index.shape)}")
    op_index = op_index.to(x.device)
    values = adaaug_values(op_index, magnitude.to(x.device), x.shape[-2], x.shape[-1], generator)
    return _apply_slots(x, op_index, values, ADAAUG_NAMES, generator, sizes)


def adaaug_apply_all(x: Tensor, magnitude: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Every AdaAug op applied to every image: (B, C, H, W), magnitudes (B, 17) -> (B, 17, C, H, W).

    The exploration step pushes a validation batch through all ops and mixes the
    features by the op probabilities (AdaAug's exploration); one grouped call does it.
    """
    n_ops = len(ADAAUG_OPS)
    if magnitude.shape != (x.shape[0], n_ops):
        raise DataError(f"magnitude must be ({x.shape[0]}, {n_ops}), got {tuple(magnitude.shape)}")
    repeated = x.repeat_interleave(n_ops, dim=0)
    op_index = torch.arange(n_ops, device=x.device).repeat(x.shape[0]).unsqueeze(1)
    sizes = [[0] + [x.shape[0]] * n_ops]  # every op takes every image: known without a read-back
    out = adaaug_apply(repeated, op_index, magnitude.reshape(-1, 1), generator, sizes)
    return out.view(x.shape[0], n_ops, *x.shape[1:])
