"""Task `classification`: supervised cross-entropy (the paper's Sections 5.1-5.4)."""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from augbench.datasets.base import Split
from augbench.methods import AugmentationMethod
from augbench.models import build_model
from augbench.tasks import register_task
from augbench.tasks.base import Evaluation, Task
from augbench.tasks.evaluate import evaluate_classifier


@register_task("classification")
class Classification(Task):
    """Cross-entropy on each view; accuracy with and without test-time augmentation.

    Final metrics: `acc`, `loss`, `tta_acc` and `tta_views_evaluated` (views per image put
    through the model: 1 for identical test views, `views_evaluated`), plus the benchmark's own.
    """

    score_key = "acc"

    def build_model(self) -> nn.Module:
        s = self.bench.s
        return build_model(s["model.name"], self.dataset.num_classes, width=s["model.width"])

    def per_sample_loss(self, out: Tensor, y: Tensor, n_views: int, label_smoothing: float = 0.0) -> Tensor:
        return F.cross_entropy(out, y.repeat(n_views), reduction="none", label_smoothing=label_smoothing)

    def step_metrics(self, out: Tensor, y: Tensor, n_views: int) -> dict[str, Tensor]:
        return {"acc": (out.detach().argmax(-1) == y.repeat(n_views)).float().mean()}

    def evaluate(self, model: nn.Module, method: AugmentationMethod, split: Split, device: Any,
                 final: bool) -> Evaluation:
        s = self.bench.s
        res = evaluate_classifier(model, method, split, device, s["eval.batch_size"],
                                  tta_views=s["eval.tta_views"] if final else 0)
        metrics = res.summary()
        if final:
            metrics.update(self.bench.metrics(split, res.correct, res.tta_correct, res.inspect))
        return Evaluation(metrics, res.inspect)
