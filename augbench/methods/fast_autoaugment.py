"""`fast-autoaugment`: Fast AutoAugment's published policies (Lim et al., 2019), drawn per image.

A policy is a few hundred sub-policies of two (op, probability, level) triples, with the
level in [0, 1]. The three the authors published (the ResNet-50 ImageNet search, used in
the InstaAug paper's Table 2, and the reduced CIFAR-10 and SVHN searches) ship verbatim as
package data (``augbench/data/fast_autoaugment``, MIT licence line in its NOTICE).

Per image, as the authors' ``Augmentation`` transform does: one sub-policy uniformly at
random; each of its two ops in order, applied with its probability (when a uniform draw is
<= it); the op's value is ``level * (high - low) + low`` over the op's range, negated with
probability 1/2 for the shears, translations and rotation. Those 15 ops and ranges are
exactly AdaAug's op table (AdaAug took them from this source), so
:func:`augbench.transforms.policies.adaaug_values` maps levels to op magnitudes, and
:func:`~augbench.transforms.policies.apply_policy` applies every image's draw batched,
grouped by op.

The ops are augbench's, on [0, 1] floats: the image is not re-quantised to uint8 between
the two ops as PIL's is, translations move by whole pixels (truncated) where PIL shifts by
the fractional value, and Cutout's square is centred uniformly and clipped at every border.
"""

from __future__ import annotations

import csv
import functools
import importlib.resources
import io
from typing import Any

import torch
from torch import Tensor

from augbench.errors import ConfigError, DataError
from augbench.hparams import HParam
from augbench.methods import MethodContext, register_method
from augbench.methods.auto_augment import PolicyMethod
from augbench.transforms.ops import draw_int, draw_uniform
from augbench.transforms.policies import ADAAUG_NAMES, PolicySample, adaaug_values

__all__ = ["POLICY_FILES", "FAA_OPS", "SubPolicy", "load_policy", "FastAutoAugmentSampler", "FastAutoAugment"]

#: Policy name -> data file (the authors' function names in archive.py).
POLICY_FILES: dict[str, str] = {
    "imagenet": "fa-resnet50-rimagenet.csv",
    "cifar10": "fa-reduced-cifar10.csv",
    "svhn": "fa-reduced-svhn.csv",
}

#: Fast AutoAugment's op list: AdaAug's without Flip and Identity.
FAA_OPS: tuple[str, ...] = tuple(name for name in ADAAUG_NAMES if name not in ("Flip", "Identity"))

#: ((op, probability, level), (op, probability, level)).
SubPolicy = tuple[tuple[str, float, float], ...]


@functools.cache
def load_policy(name: str) -> tuple[SubPolicy, ...]:
    """The sub-policies of published policy ``name``, floats exactly as in its data file."""
    if name not in POLICY_FILES:
        raise ConfigError(f"unknown Fast AutoAugment policy {name!r}; valid: {', '.join(POLICY_FILES)}")
    where = f"data/fast_autoaugment/{POLICY_FILES[name]}"
    text = importlib.resources.files("augbench").joinpath(where).read_text()
    subs: list[list[tuple[str, float, float]]] = []
    for row in csv.DictReader(io.StringIO(text)):
        sub, pos, op = int(row["subpolicy"]), int(row["position"]), row["op"]
        prob, level = float(row["probability"]), float(row["level"])
        if pos == 0 and sub == len(subs):
            subs.append([])
        if sub != len(subs) - 1 or pos != len(subs[-1]):
            raise DataError(f"{where}: rows must list sub-policies and positions in order, got {sub}/{pos}")
        if op not in FAA_OPS or not (0.0 <= prob <= 1.0 and 0.0 <= level <= 1.0):
            raise DataError(f"{where}: sub-policy {sub}: bad op or value {op!r}, {prob}, {level}")
        subs[-1].append((op, prob, level))
    if not subs or any(len(s) != 2 for s in subs):
        raise DataError(f"{where}: every sub-policy needs exactly two ops")
    return tuple(tuple(s) for s in subs)


class FastAutoAugmentSampler:
    """Per-image draws of one Fast AutoAugment policy, as a :class:`PolicySampler`.

    Op indices refer to ``names`` (AdaAug's op table); magnitudes are in augbench's op
    units. Levels and probabilities stay float64 (float32 on MPS, which has no float64).
    """

    names: tuple[str, ...] = ADAAUG_NAMES

    def __init__(self, policy: str = "imagenet") -> None:
        self.policy = policy
        subs = load_policy(policy)
        self._op = torch.tensor([[self.names.index(op) for op, _, _ in sub] for sub in subs])
        self._prob = torch.tensor([[p for _, p, _ in sub] for sub in subs], dtype=torch.float64)
        self._level = torch.tensor([[lv for _, _, lv in sub] for sub in subs], dtype=torch.float64)
        self._cache: dict[str, tuple[Tensor, Tensor, Tensor]] = {}

    def _tables(self, dev: torch.device) -> tuple[Tensor, Tensor, Tensor]:
        key = str(dev)
        if key not in self._cache:
            dtype = torch.float32 if dev.type == "mps" else torch.float64
            self._cache[key] = (self._op.to(dev), self._prob.to(dev, dtype), self._level.to(dev, dtype))
        return self._cache[key]

    def sample(
        self,
        batch_size: int,
        height: int,
        width: int,
        *,
        device: torch.device | str,
        generator: torch.Generator | None = None,
    ) -> PolicySample:
        """Draws for ``batch_size`` images of ``height`` x ``width``: sub-policy, then the
        apply coins, then the signs (inside ``adaaug_values``), all on the generator's device."""
        if batch_size < 0 or height < 1 or width < 1:
            raise DataError(f"need batch_size >= 0 and a positive image size, got {batch_size}, {height}x{width}")
        dev = generator.device if generator is not None else torch.device(device)
        op_table, prob, level = self._tables(dev)
        sub = draw_int(len(op_table), (batch_size,), device=dev, generator=generator)
        op = op_table[sub]
        apply = draw_uniform(op.shape, device=dev, generator=generator).to(prob.dtype) <= prob[sub]
        magnitude = adaaug_values(op, level[sub], height, width, generator)
        return PolicySample(op.to(device), magnitude.to(device), apply.to(device))


@register_method("fast-autoaugment")
class FastAutoAugment(PolicyMethod):
    """Fast AutoAugment (Lim et al., 2019): a random published sub-policy of two ops per image."""

    hparams = {"policy": HParam("imagenet", str, choices=tuple(POLICY_FILES),
                                help="published policy: ResNet-50 ImageNet, reduced CIFAR-10 or reduced SVHN search")}

    def __init__(self, ctx: MethodContext, **hp: Any) -> None:
        super().__init__(ctx, **hp)
        self.sampler = FastAutoAugmentSampler(self.hp["policy"])
