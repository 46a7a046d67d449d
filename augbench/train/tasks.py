"""Tasks: what the model is, how many views a step takes, the per-sample loss and the evaluation.

The trainer is the same for every task; a task registers here by name (`Benchmark.task`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import torch.nn.functional as F
from torch import Tensor, nn

from augbench.errors import ConfigError
from augbench.models import build_model
from augbench.train.evaluate import evaluate_classifier

if TYPE_CHECKING:
    from augbench.benchmarks import Benchmark
    from augbench.datasets.base import Dataset, Split
    from augbench.methods import AugmentationMethod

TASKS: dict[str, type["Task"]] = {}


def register_task(name: str):  # type: ignore[no-untyped-def]
    def deco(cls: type[Task]) -> type[Task]:
        cls.name = name
        TASKS[name] = cls
        return cls

    return deco


def get_task(name: str) -> type["Task"]:
    """The task registered as `name` (tasks beyond classification live in their own modules)."""
    import augbench.train.contrastive  # noqa: F401  (registers "contrastive")
    import augbench.train.fixed_classifier  # noqa: F401  (registers "fixed-classifier")

    if name not in TASKS:
        raise ConfigError(f"unknown task {name!r}; valid: {', '.join(sorted(TASKS))}")
    return TASKS[name]


class Task:
    """Base task. `n_views` views per input are drawn each training step."""

    name: ClassVar[str] = ""
    n_views: ClassVar[int] = 1

    def __init__(self, bench: "Benchmark", dataset: "Dataset") -> None:
        self.bench = bench
        self.dataset = dataset

    def build_model(self) -> nn.Module:
        raise NotImplementedError

    def per_sample_loss(self, out: Tensor, y: Tensor, n_views: int) -> Tensor:
        """(V*B,) loss of each view; the method's objective turns it into the step's scalar."""
        raise NotImplementedError

    def evaluate(self, model: nn.Module, method: "AugmentationMethod", split: "Split", device: Any,
                 final: bool) -> dict[str, float]:
        """Metrics on a split; `final` is the test report (test-time augmentation, benchmark metrics)."""
        raise NotImplementedError

    def step_metrics(self, out: Tensor, y: Tensor, n_views: int) -> dict[str, Tensor]:
        """Extra training-step statistics from the step's outputs (detached), for the records."""
        return {}


@register_task("classification")
class Classification(Task):
    """Supervised classification with cross-entropy (the paper's Sections 5.1-5.4)."""

    def build_model(self) -> nn.Module:
        s = self.bench.s
        return build_model(s["model.name"], self.dataset.num_classes, width=s["model.width"])

    def per_sample_loss(self, out: Tensor, y: Tensor, n_views: int) -> Tensor:
        return F.cross_entropy(out, y.repeat(n_views), reduction="none")

    def step_metrics(self, out: Tensor, y: Tensor, n_views: int) -> dict[str, Tensor]:
        return {"acc": (out.detach().argmax(-1) == y.repeat(n_views)).float().mean()}

    def evaluate(self, model: nn.Module, method: "AugmentationMethod", split: "Split", device: Any,
                 final: bool) -> dict[str, float]:
        s = self.bench.s
        res = evaluate_classifier(model, method, split, device, s["eval.batch_size"],
                                  tta_views=s["eval.tta_views"] if final else 0)
        metrics = res.summary()
        if final:
            metrics.update(self.bench.metrics(split, res.correct, res.tta_correct, res.inspect))
        self.last_inspect = res.inspect
        return metrics
