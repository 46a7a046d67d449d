"""The public InstaAug code's training step, rebuilt from augbench's own modules, to be timed.

The public code (its mixmo learner's training step with InstaAug switched on) updates the
classifier and the augmentation module phi in two separate passes over each batch:

1. classifier in train mode: phi(x) -> sampled crops -> classifier forward -> cross-entropy
   -> backward -> step of the classifier's optimizer;
2. classifier switched to eval mode: phi(x) again -> freshly sampled crops -> classifier
   forward -> mean(loss.detach() * log p(crop)) + mean(loss) - lambda * entropy -> backward,
   which runs through the whole classifier (the mean(loss) term) -> step of phi's optimizer;
   classifier back to train mode.

augbench's InstaAug does one pass (`Trainer._step`): one forward and backward of the
classifier feed both optimizers (the score-function term uses the same step's detached
losses). `PublicInstaAugHarness` times the two-pass sequence on the same network, batches,
phi (the LRP module of `augbench.methods.instaaug`) and optimizers, so the bench can put
the two side by side ("augbench InstaAug step / public InstaAug step").
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from augbench.errors import ConfigError
from augbench.methods import StepContext
from augbench.methods.instaaug.method import InstaAug
from augbench.perf.harness import MethodHarness
from augbench.tasks.evaluate import model_features, to_float
from augbench.transforms.geometry import hflip

AUGBENCH, PUBLIC = "augbench", "public"  # the systems a bench row can be measured on (its `system`)


class PublicInstaAugHarness(MethodHarness):
    """An `instaaug` harness whose `step` is the public code's two-pass sequence (module docstring).

    Everything else (augmentation alone, test-time augmentation) is augbench's and is not
    measured for it: only the training steps differ between the two systems.
    """

    system = PUBLIC
    measures: tuple[str, ...] = ("step",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        t = self.trainer
        if not isinstance(t.method, InstaAug) or t.method.parameterization != "lrp":
            raise ConfigError("the public code's step is rebuilt for InstaAug with LRP crops (a crop benchmark) only")
        if t.model_opt is None or t.method_opt is None:
            raise ConfigError("the public code's step needs both a classifier and a phi optimizer")
        self.block = 1  # InstaAug does not explore

    def _batch(self, idx: Tensor) -> tuple[Tensor, Tensor]:
        """The trainer's own batch: [0, 1] floats of the indexed images, the benchmark's base flips."""
        t = self.trainer
        x = to_float(t.train_split.x[idx])
        if t.s["train.hflip"]:
            x = hflip(x, torch.rand(x.shape[0], device=x.device) < 0.5)
        return x, t.train_split.y[idx]

    def _losses(self, x: Tensor, y: Tensor, ctx: StepContext) -> tuple[Tensor, Any]:
        """phi(x) -> one sampled crop per image -> classifier -> per-sample cross-entropy."""
        t = self.trainer
        views = t.method.sample(x, ctx, 1)
        inputs = views.x.contiguous(memory_format=torch.channels_last) if t.s["run.channels_last"] else views.x
        with torch.autocast(t.device.type, dtype=t.amp_dtype or torch.float32, enabled=t.amp_dtype is not None):
            per_sample = t.task.per_sample_loss(t.forward(inputs), y, 1).float()
        return per_sample, views

    def step(self, idx: Tensor) -> None:
        t = self.trainer
        model_opt, phi_opt = t.model_opt, t.method_opt
        assert model_opt is not None and phi_opt is not None
        x, y = self._batch(idx)
        ctx = StepContext(y=y, features=model_features(t.model), training=True, epoch=t.epoch, step=t.global_step)
        # 1. the classifier learns from phi's crops (the crops are indexed boxes: no gradient reaches phi)
        t.model.train()
        model_opt.zero_grad(set_to_none=True)
        phi_opt.zero_grad(set_to_none=True)
        per_sample, _ = self._losses(x, y, ctx)
        t.scaler.scale(per_sample.mean()).backward()
        t.scaler.step(model_opt)
        t.scaler.update()
        # 2. phi learns through the classifier in eval mode, from new samples
        t.model.eval()
        phi_opt.zero_grad(set_to_none=True)
        per_sample, views = self._losses(x, y, ctx)
        assert views.log_prob is not None and views.entropy is not None
        assert isinstance(t.method, InstaAug)
        lam = t.method.lam.lam
        aug_loss = (per_sample.detach() * views.log_prob).mean() + per_sample.mean() - lam * views.entropy.mean()
        t.scaler.scale(aug_loss).backward()
        t.scaler.step(phi_opt)
        t.scaler.update()
        t.model.train()
        t.global_step += 1


__all__ = ["AUGBENCH", "PUBLIC", "PublicInstaAugHarness"]
