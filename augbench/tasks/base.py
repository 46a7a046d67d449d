"""What every task declares: its model, views per step, loss, evaluation, settings and score.

The trainer is the same for every task. A task is a class registered by name
(`augbench.tasks.register_task`) that a benchmark names in `Benchmark.task`; its `settings`
are merged into every such benchmark's declarations, and `score_key` names the validation
metric that selects the best epoch (and, in tables, the best hyperparameters).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from torch import Tensor, nn

from augbench.hparams import HParam, Spec

if TYPE_CHECKING:
    from augbench.benchmarks import Benchmark
    from augbench.datasets.base import Dataset, Split
    from augbench.methods import AugmentationMethod
    from augbench.rundir import RunConfig


@runtime_checkable
class TaskModel(Protocol):
    """The model interface the trainer and methods rely on (beyond `forward`).

    `features(x)` gives the penultimate representation of [0, 1] images and `head(features)`
    the outputs from it; `feature_dim` is the size of those features, or None when the model
    exposes none (a frozen classifier without a recognisable final linear layer).
    """

    feature_dim: int | None

    def features(self, x: Tensor) -> Tensor: ...

    def head(self, features: Tensor) -> Tensor: ...


@dataclass
class Evaluation:
    """A task's evaluation of a split: scalar metrics, and per-sample inspect values for figures."""

    metrics: dict[str, float]
    inspect: dict[str, Tensor] = field(default_factory=dict)


@dataclass(frozen=True)
class Prerequisite:
    """A run that must be done before another starts (e.g. the classifier a task freezes)."""

    config: RunConfig
    run_dir: Path


class Task:
    """Base task. `n_views` views per input are drawn each training step."""

    name: ClassVar[str] = ""
    n_views: ClassVar[int] = 1
    settings: ClassVar[dict[str, HParam]] = {}  # declared by every benchmark of this task
    score_key: ClassVar[str] = "acc"  # validation metric maximised by model selection

    def __init__(self, bench: Benchmark, dataset: Dataset) -> None:
        self.bench = bench
        self.dataset = dataset

    @classmethod
    def prerequisites(cls, config: RunConfig, spec: Spec) -> list[Prerequisite]:
        """Runs `augbench.runs.execute` must finish before this task's run starts (default: none).

        `spec` declares every setting of `config`'s benchmark (`augbench.settings.settings_spec`):
        what a prerequisite's own settings are resolved with.
        """
        return []

    @classmethod
    def score(cls, metrics: dict[str, float]) -> float:
        """The model-selection score of validation metrics (0 when there is no validation split)."""
        return float(metrics.get(cls.score_key, 0.0))

    def build_model(self) -> nn.Module:
        raise NotImplementedError

    def per_sample_loss(self, out: Tensor, y: Tensor, n_views: int, label_smoothing: float = 0.0) -> Tensor:
        """(V*B,) loss of each view; the method's objective turns it into the step's scalar.

        `label_smoothing`: what the method's recipe asks of a cross-entropy on labels (MADAug's code: 0.1).
        """
        raise NotImplementedError

    def view_credit(self, out: Tensor, per_sample_loss: Tensor, n_views: int) -> Tensor | None:
        """(V*B,) detached: the part of the step's summed loss that each view's transformation
        changes, up to terms it cannot change (the reward of a score-function estimator).

        None (default): a view's loss depends on its own transformation alone, so its loss is its
        credit. A task whose views share a loss (contrastive) must override this, or REINFORCE is biased.
        """
        return None

    def evaluate(self, model: nn.Module, method: AugmentationMethod, split: Split, device: Any,
                 final: bool) -> Evaluation:
        """Metrics on a split; `final` is the test report (test-time augmentation, benchmark metrics)."""
        raise NotImplementedError

    def step_metrics(self, out: Tensor, y: Tensor, n_views: int) -> dict[str, Tensor]:
        """Extra training-step statistics from the step's outputs (detached), for the records."""
        return {}


def inspect_means(inspect: dict[str, Tensor]) -> dict[str, float]:
    """Means of the per-sample scalar inspect values (e.g. crop area), reported as metrics."""
    return {k: v.float().mean().item() for k, v in inspect.items() if v.dim() == 1 and v.is_floating_point()}
