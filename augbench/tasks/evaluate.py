"""Evaluation passes: plain predictions, test-time augmentation with n views, method introspection."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from augbench.datasets.base import Split
from augbench.methods import AugmentationMethod, StepContext
from augbench.models.modes import eval_mode
from augbench.progress import advance
from augbench.tasks.base import inspect_means


def to_float(x_u8: Tensor) -> Tensor:
    """uint8 images to [0, 1] floats on their device."""
    return x_u8.float().div_(255)


def model_features(model: nn.Module) -> Callable[[Tensor], Tensor] | None:
    """The model's `features` (TaskModel), or None when it exposes no penultimate features."""
    return model.features if getattr(model, "feature_dim", None) is not None else None  # type: ignore[return-value]


def batches(n: int, batch_size: int) -> list[slice]:
    return [slice(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]


def views_evaluated(method: AugmentationMethod, n_views: int) -> int:
    """Views per input that test-time augmentation with `n_views` puts through the model.

    One when the method's test views are all alike (`identical_test_views`: `none`), else
    `n_views`; recorded as the metric `tta_views_evaluated`.
    """
    return 1 if n_views > 0 and method.identical_test_views() else n_views


def as_views(outs: Tensor, n_views: int) -> Tensor:
    """Outputs of the evaluated views (n_eval, B, ...) as the (n_views, B, ...) `combine_views` expects.

    A single evaluated view stands for all n (identical views), so every combination rule
    sees what n forwards of identical views would have given it.
    """
    return outs if outs.shape[0] == n_views else outs.expand(n_views, *outs.shape[1:])


def tta_logits(model: Callable[[Tensor], Tensor], method: AugmentationMethod, x: Tensor, n_views: int,
               ctx: StepContext, max_chunk: int = 4096) -> Tensor:
    """Combined logits over `n_views` test-time views, batched in chunks of at most `max_chunk` images.

    `method.combine_views` says how: mean logits (InstaAug, C.2), mean log-probabilities
    (Augerino), or a method's own rule. Identical views are evaluated once (`views_evaluated`).
    """
    n_eval = views_evaluated(method, n_views)
    views = method.test_views(x, n_eval, ctx)  # (V*B, C, H, W), view-major
    outs = torch.cat([model(views[s]) for s in batches(views.shape[0], max_chunk)])
    return method.combine_views(as_views(outs.view(n_eval, x.shape[0], -1), n_views))


@dataclass
class EvalResult:
    """Per-sample outcomes over a split, so benchmarks can compute any grouped metric."""

    loss: Tensor
    correct: Tensor
    tta_correct: Tensor | None = None
    inspect: dict[str, Tensor] = field(default_factory=dict)
    tta_views_evaluated: int = 0  # views per input that went through the model (`views_evaluated`)

    def summary(self) -> dict[str, float]:
        out = {"loss": self.loss.mean().item(), "acc": self.correct.float().mean().item()}
        if self.tta_correct is not None:
            out["tta_acc"] = self.tta_correct.float().mean().item()
            out["tta_views_evaluated"] = float(self.tta_views_evaluated)
        out.update(inspect_means(self.inspect))
        return out


@torch.no_grad()
def evaluate_classifier(model: nn.Module, method: AugmentationMethod, split: Split, device: torch.device,
                        batch_size: int, tta_views: int = 0, inspect_all: bool = True,
                        max_samples: int | None = None) -> EvalResult:
    """Accuracy and loss with and without test-time augmentation, plus `method.inspect` per sample."""
    n = len(split) if max_samples is None else min(len(split), max_samples)
    losses: list[Tensor] = []
    correct: list[Tensor] = []
    tta_correct: list[Tensor] = []
    inspect: dict[str, list[Tensor]] = {}
    ctx = StepContext(training=False, features=model_features(model))
    with eval_mode(model, method):
        for s in batches(n, batch_size):
            x = to_float(split.x[s].to(device, non_blocking=True))
            y = split.y[s].to(device, non_blocking=True)
            logits = model(x)
            losses.append(F.cross_entropy(logits, y, reduction="none"))
            correct.append(logits.argmax(-1) == y)
            if tta_views > 0:
                tta_correct.append(tta_logits(model, method, x, tta_views, ctx).argmax(-1) == y)
            if inspect_all:
                for k, v in method.inspect(x, ctx).items():
                    inspect.setdefault(k, []).append(v.detach())
            advance(x.shape[0])
    return EvalResult(
        loss=torch.cat(losses).cpu(), correct=torch.cat(correct).cpu(),
        tta_correct=torch.cat(tta_correct).cpu() if tta_correct else None,
        inspect={k: torch.cat(v).cpu() for k, v in inspect.items()},
        tta_views_evaluated=views_evaluated(method, tta_views),
    )
