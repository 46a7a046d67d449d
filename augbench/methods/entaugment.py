"""`entaugment`: magnitudes from the entropy of the model's own prediction (Yang, Shen & Zhao, ECCV 2024).

Tuning-free: each training image gets ONE op drawn uniformly from TrivialAugment's original
"standard" space (14 ops, `augbench.transforms.magnitude.TA_STANDARD`) at a magnitude set by
how sure the classifier was of that image, M = 1 - H(softmax(f(x))) / log K: confident
(easy) images are augmented hard, uncertain ones gently. The op runs at level
L = min(int(30 M) + 1, 30) of 30. Facts from the public code (Jackbrocp/EntAugment,
``train_EntAugment.py``, ``Dataset.py``, ``organize_transform.py``, ``augmentation/entaugment.py``):

- M comes for free from the training forward pass: after each step, the entropy of the
  softmax of the step's own (augmented) outputs sets M of each image in the batch, which that
  image uses the next time it is drawn, one epoch later (``set_MAGNITUDE``; 0 before it was
  ever seen). augbench keeps M per training image in a buffer (`StepContext.index` says which)
  and reads the trainer's outputs in `objective` (`Views.outputs`): no extra forward pass.
- The first `warmup_epochs` (10 of 300) train with TrivialAugment (one uniform op at a uniform
  level of 30, levels 0..29); magnitudes are recorded from the first step.
- Pipeline on CIFAR: op, RandomCrop(32, padding=4), flip, normalise, Cutout of 16 px
  (CIFAR-10) or 8 px (CIFAR-100) with the mean colour. augbench: the trainer's flip first,
  then the op, the pad crop (`base_pad`) and Cutout (`cutout`).
- EntLoss (`entloss`): the per-image loss becomes cross-entropy + H / log K, with the
  entropy's gradient (``train_EntLoss.py``), pushing predictions to be confident. The public
  EntLoss script trains with the warm-up's TrivialAugment throughout; here it is added to
  EntAugment's own augmentation (the paper uses them separately or jointly); `warmup_epochs`
  >= `train.epochs` gives the script's pairing.

Outside training (test-time views, `inspect`) no memory applies: M is computed from the
current classifier's prediction on the image (eval mode), the magnitude EntAugment would give
it now; `inspect` reports it as "magnitude". State per training image cannot be shared by
data-parallel processes: one process only.
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
from augbench.transforms.magnitude import TA_STANDARD, base_pad, cutout_pixels, level_of, pipeline_hparams

LEVELS = 30  # EntAugment's PARAMETER_MAX (augmentation/entaugment.py: set_augmentation_space(31))
WARMUP_LEVELS = 29  # TrivialAugment's during the warm-up (set_augmentation_space('standard', 30))


def normalized_entropy(logits: Tensor) -> Tensor:
    """H(softmax(logits)) / log K per row, in [0, 1] (the code's + 1e-8 inside the log)."""
    p = F.softmax(logits.float(), dim=-1)
    return -(p * torch.log(p + 1e-8)).sum(-1) / math.log(logits.shape[-1])


@register_method("entaugment")
class EntAugment(AugmentationMethod):
    """One TrivialAugment op per image at magnitude 1 - H/log K of the model's last prediction on it."""

    families = POLICY_FAMILIES
    tasks = frozenset({"classification"})
    data_parallel = False  # each process would write only its own rows of the per-image magnitudes
    hparams = {
        "entloss": HParam(False, bool, help="add EntLoss: + H(prediction) / log K to each image's loss"),
        "warmup_epochs": HParam(10, int, low=0, help="epochs of TrivialAugment before the entropy sets magnitudes "
                                                     "(EntAugment's code: 10 of 300)"),
        **pipeline_hparams("after the op", "16 on CIFAR-10, 8 on CIFAR-100"),
    }
    #: per-benchmark defaults: the code's CIFAR pipelines; on the 15-epoch stand-ins one warm-up epoch
    #: (the code's 10 of 300 is a third of one; one epoch gives every image its first magnitude)
    recipes: ClassVar[dict[str, dict[str, Any]]] = {
        "cifar10-crop": {"cutout": 16},
        "cifar100-crop": {"cutout": 8},
        "clutter-crop": {"warmup_epochs": 1},
        "texture-color": {"warmup_epochs": 1},
    }

    def __init__(self, ctx: MethodContext, **hp: Any) -> None:
        super().__init__(ctx, **hp)
        self.pad = base_pad(self.hp["base_pad"], ctx.families)
        self.memory: Tensor
        # M of every training image from its last prediction; 0 (the weakest level) before the first
        self.register_buffer("memory", torch.zeros(ctx.train_size))

    # ------------------------------------------------------------------ magnitudes
    @torch.no_grad()
    def current_magnitude(self, x: Tensor, ctx: StepContext) -> Tensor:
        """1 - H / log K of the classifier's prediction on `x` now (eval mode): M where no memory applies."""
        classifier = step_classifier(ctx, "entaugment")
        with eval_mode(classifier.model):
            return 1.0 - normalized_entropy(classifier.outputs(x))

    def _remembered(self, ctx: StepContext) -> bool:
        return ctx.training and self.training and ctx.index is not None and self.memory.numel() > 0

    # ------------------------------------------------------------------ training
    def sample(self, x: Tensor, ctx: StepContext, n_views: int = 1) -> Views:
        with torch.no_grad():
            views = repeat_views(x, n_views)
            ops = TA_STANDARD.draw_ops((views.shape[0], 1), views.device)
            info: dict[str, Tensor] = {}
            if ctx.training and self.training and ctx.epoch < self.hp["warmup_epochs"]:
                levels = torch.randint(0, WARMUP_LEVELS + 1, ops.shape, device=views.device).float()
                values = TA_STANDARD.values(ops, levels, views.shape[-2], views.shape[-1],
                                            denominator=WARMUP_LEVELS)
            else:
                if self._remembered(ctx):
                    assert ctx.index is not None
                    magnitude = self.memory[ctx.index].repeat(n_views)
                else:
                    magnitude = self.current_magnitude(x, ctx).repeat(n_views)
                info["magnitude"] = magnitude
                levels = level_of(magnitude, LEVELS).unsqueeze(1)
                values = TA_STANDARD.values(ops, levels, views.shape[-2], views.shape[-1],
                                            denominator=LEVELS)
            out = TA_STANDARD.apply(views, ops, values)
            out = cutout_pixels(random_pad_crop(out, self.pad), self.hp["cutout"])
        if self._remembered(ctx):
            assert ctx.index is not None
            info["index"] = ctx.index
        return Views(out, n_views, info=info)

    def objective(self, per_sample_loss: Tensor, views: Views) -> tuple[Tensor, dict[str, Tensor]]:
        logs: dict[str, Tensor] = {}
        if "magnitude" in views.info:
            logs["magnitude"] = views.info["magnitude"].mean()
        if views.outputs is None:  # no prediction to read (outside the trainer)
            return per_sample_loss.mean(), logs
        entropy = normalized_entropy(views.outputs if self.hp["entloss"] else views.outputs.detach())
        index = views.info.get("index")
        if index is not None:  # each image's next magnitude, from this step's prediction on it
            confident = (1.0 - entropy.detach()).view(views.n_views, -1).mean(0)
            self.memory.index_copy_(0, index, confident.to(self.memory.dtype))
        logs["entropy"] = entropy.detach().mean()
        if self.hp["entloss"]:
            return (per_sample_loss + entropy).mean(), logs
        return per_sample_loss.mean(), logs

    # ------------------------------------------------------------------ introspection
    @torch.no_grad()
    def inspect(self, x: Tensor, ctx: StepContext) -> dict[str, Tensor]:
        if ctx.features is None:
            return {}
        return {"magnitude": self.current_magnitude(x, ctx)}
