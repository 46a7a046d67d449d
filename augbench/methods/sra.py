"""`sra`: Sample-aware RandAugment, search-free per-image magnitudes (Xiao, Yu & Yu, IJCV 2025).

RandAugment's two uniform ops per image, at a magnitude set by a heuristic score of how well
the classifier already knows the image: s = cos(softmax(f(x)), onehot(y)) ^ (2 / ln K) in
[0, 1], so well-learned images are augmented hard and hard ones gently. Facts from the public
code (ainieli/Sample-awareRandAugment, ``SRA_CIFAR.py``, ``models/cifar/preact_resnet.py``,
``transforms/SRA.py``, ``transforms/operations.py``):

- Asymmetric training: each iteration splits its batch of 256 in two halves and takes one
  optimizer step on each. First ("distribution exploration") the first half with RandAugment at
  magnitudes drawn U(0, 1) per image and per op; then ("sample perception") the classifier, in
  train mode without gradient, scores the second half's unaugmented images; then ("distribution
  refinement") the second half with both ops at that image's score. augbench alternates the two
  kinds of step: even steps explore, odd steps perceive and refine (`step_period` 2), so each
  step is one of the code's half-batch updates.
- Ops: 14 (`transforms.magnitude.SRA_SPACE`), two per image (``aug_depth`` 2), each applied with
  a probability drawn U(p_min, p_max) (CIFAR: 1.0, 1.0: always).
- Pipeline on CIFAR: RandomCrop(32, padding=4) and flip before (the data loader), Cutout 16 px
  after (both CIFAR-10 and CIFAR-100); the score reads the cropped, flipped image.

augbench differences: the score comes from the classifier in eval mode (the code's train-mode
pass also updates BatchNorm statistics); Cutout fills the mean colour where the code's paints
black (before normalisation); the geometric ops and Posterize as in `SRA_SPACE`.

Outside training no label is known: test-time views use the exploration step's uniform
magnitudes, and `inspect` reports "magnitude_per_class" (B, K), the magnitude each candidate
label would give, for metrics to pick the true label's column.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from augbench.hparams import HParam
from augbench.methods import (
    AugmentationMethod,
    MethodContext,
    StepContext,
    Views,
    register_method,
    repeat_views,
    step_classifier,
)
from augbench.methods.adaaug import random_pad_crop
from augbench.methods.auto_augment import POLICY_FAMILIES
from augbench.models.modes import eval_mode
from augbench.transforms.magnitude import SRA_SPACE, base_pad, cutout_pixels, pipeline_hparams


def class_scores(logits: Tensor) -> Tensor:
    """(B, K): SRA's score of each candidate label, cos(softmax, onehot(k)) ^ (2 / ln K) = (p_k / |p|) ^ (2 / ln K)."""
    p = F.softmax(logits.float(), dim=-1)
    cos = p / p.norm(dim=-1, keepdim=True).clamp_min(1e-8)
    return cos ** (2.0 / math.log(logits.shape[-1]))


@register_method("sra")
class SampleAwareRandAugment(AugmentationMethod):
    """RandAugment at each image's score by the classifier, alternating with uniform random magnitudes."""

    families = POLICY_FAMILIES
    tasks = frozenset({"classification"})
    hparams = {
        "num_ops": HParam(2, int, low=1, high=8, help="ops per image (SRA's aug_depth: 2)"),
        "p_min": HParam(1.0, float, low=0.0, high=1.0, help="lower bound of each op's application probability "
                                                            "(CIFAR: 1.0)"),
        "p_max": HParam(1.0, float, low=0.0, high=1.0, help="upper bound of each op's application probability "
                                                            "(CIFAR: 1.0)"),
        **pipeline_hparams("before the ops", "16 on CIFAR"),
    }
    #: per-benchmark defaults: the code's CIFAR pipeline
    recipes: ClassVar[dict[str, dict[str, Any]]] = {
        "cifar10-crop": {"cutout": 16},
        "cifar100-crop": {"cutout": 16},
    }

    def __init__(self, ctx: MethodContext, **hp: Any) -> None:
        super().__init__(ctx, **hp)
        self.pad = base_pad(self.hp["base_pad"], ctx.families)

    @property
    def step_period(self) -> int:
        return 2  # an exploration step, then a refinement step

    @torch.no_grad()
    def scores(self, x: Tensor, ctx: StepContext) -> Tensor:
        """(B, K) scores of the classifier's current prediction on `x` (eval mode)."""
        classifier = step_classifier(ctx, "sra")
        with eval_mode(classifier.model):
            return class_scores(classifier.outputs(x))

    def sample(self, x: Tensor, ctx: StepContext, n_views: int = 1) -> Views:
        with torch.no_grad():
            views = random_pad_crop(repeat_views(x, n_views), self.pad)
            n, k = views.shape[0], self.hp["num_ops"]
            refine = ctx.training and self.training and ctx.y is not None and ctx.step % 2 == 1
            if refine:
                assert ctx.y is not None
                score = self.scores(views, ctx).gather(1, ctx.y.repeat(n_views).unsqueeze(1))
                magnitude = score.expand(n, k)
            else:
                magnitude = torch.rand(n, k, device=views.device)
            ops = SRA_SPACE.draw_ops((n, k), views.device)
            p = self.hp["p_min"] + (self.hp["p_max"] - self.hp["p_min"]) * torch.rand(n, k, device=views.device)
            ops = torch.where(torch.rand(n, k, device=views.device) < p, ops, -1)
            out = SRA_SPACE.apply(views, ops, SRA_SPACE.values(ops.clamp_min(0), magnitude, *views.shape[-2:]))
            out = cutout_pixels(out, self.hp["cutout"])
        return Views(out, n_views, info={"magnitude": magnitude[:, 0], "refine": torch.tensor(refine)})

    def objective(self, per_sample_loss: Tensor, views: Views) -> tuple[Tensor, dict[str, Tensor]]:
        logs = {}
        if "refine" in views.info and bool(views.info["refine"]):  # a CPU flag: no device sync
            logs["magnitude"] = views.info["magnitude"].mean()
        return per_sample_loss.mean(), logs

    # ------------------------------------------------------------------ introspection
    @torch.no_grad()
    def inspect(self, x: Tensor, ctx: StepContext) -> dict[str, Tensor]:
        if ctx.features is None:
            return {}
        return {"magnitude_per_class": self.scores(x, ctx)}
