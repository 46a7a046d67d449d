"""`autoaugment`, `randaugment`, `trivialaugment`: published augmentation policies, drawn per image.

torchvision's transforms draw ONE op and magnitude per call, so a batch tensor would get
the same augmentation for every image. Here every image draws its
own ops and magnitudes from exactly torchvision's distributions
(`transforms.policies`), and the batch is transformed op by op (`transforms.ops.apply_ops`:
grouped by op, no per-sample Python loop). The images are [0, 1] and not yet normalised
(the model normalises), which is what these policies assume.

Test-time augmentation (InstaAug paper Table 2 uses AutoAugment this way) draws the test
views from the training distribution, averaging logits (Appendix C.2).

Fast AutoAugment (also in Table 2) is `fast-autoaugment` (``methods.fast_autoaugment``):
the same per-image machinery over its published policies, shipped as data.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from augbench.hparams import HParam
from augbench.methods import AugmentationMethod, MethodContext, StepContext, Views, register_method, repeat_views
from augbench.transforms.policies import (
    AUTOAUGMENT_POLICIES,
    AutoAugmentSampler,
    PolicySampler,
    RandAugmentSampler,
    TrivialAugmentWideSampler,
    apply_policy,
)

# Not in the paper's rotation experiment; crop (Table 2) and colour benchmarks compare them.
POLICY_FAMILIES = frozenset({"policy", "crop", "color"})


class PolicyMethod(AugmentationMethod):
    """A fixed per-image policy: subclasses build `self.sampler` from their hyperparameters."""

    families = POLICY_FAMILIES
    sampler: PolicySampler

    def sample(self, x: Tensor, ctx: StepContext, n_views: int = 1) -> Views:
        x = repeat_views(x, n_views)
        return Views(apply_policy(x, self.sampler), n_views)


@register_method("autoaugment")
class AutoAugment(PolicyMethod):
    """AutoAugment (Cubuk et al., 2019): a random sub-policy of two (op, probability, bin) per image."""

    hparams = {"policy": HParam("imagenet", str, choices=tuple(AUTOAUGMENT_POLICIES),
                                help="published policy (torchvision's AutoAugmentPolicy)")}

    def __init__(self, ctx: MethodContext, **hp: Any) -> None:
        super().__init__(ctx, **hp)
        self.sampler = AutoAugmentSampler(self.hp["policy"])


@register_method("randaugment")
class RandAugment(PolicyMethod):
    """RandAugment (Cubuk et al., 2020): `num_ops` uniform ops per image at one fixed magnitude bin."""

    hparams = {
        "num_ops": HParam(2, int, low=0, high=16, help="ops applied in sequence to each image"),
        "magnitude": HParam(9, int, low=0, help="magnitude bin, below num_magnitude_bins"),
        "num_magnitude_bins": HParam(31, int, low=2, help="bins of each op's magnitude range"),
    }

    def __init__(self, ctx: MethodContext, **hp: Any) -> None:
        super().__init__(ctx, **hp)
        self.sampler = RandAugmentSampler(self.hp["num_ops"], self.hp["magnitude"], self.hp["num_magnitude_bins"])

    def identical_test_views(self) -> bool:
        """num_ops = 0 applies no op: every view is the input."""
        return self.hp["num_ops"] == 0


@register_method("trivialaugment")
class TrivialAugment(PolicyMethod):
    """TrivialAugment Wide (Müller & Hutter, 2021): one uniform op at a uniform magnitude bin per image."""

    hparams = {"num_magnitude_bins": HParam(31, int, low=2, help="bins of each op's magnitude range")}

    def __init__(self, ctx: MethodContext, **hp: Any) -> None:
        super().__init__(ctx, **hp)
        self.sampler = TrivialAugmentWideSampler(self.hp["num_magnitude_bins"])
