"""One method inside the real trainer, on in-memory data, ready to be timed.

Nothing here re-implements training: `MethodHarness.step` calls `Trainer._step`, the very
function `augbench run` calls every step, so a timing can never drift from what runs.
"""

from __future__ import annotations

import copy
import math
import time
import types
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from augbench.datasets.base import Dataset, Split
from augbench.errors import ConfigError, TrainingDiverged
from augbench.methods import StepContext, Views, repeat_views
from augbench.models.modes import eval_mode
from augbench.perf.configs import MEASURES, BenchConfig
from augbench.perf.measure import synchronize
from augbench.runs import resolve
from augbench.settings import create_benchmark
from augbench.tasks.evaluate import batches, model_features, tta_logits
from augbench.train.trainer import Trainer


def synthetic_dataset(n_train: int, n_test: int, shape: tuple[int, int, int], num_classes: int,
                      seed: int = 0) -> Dataset:
    """Uniform-noise uint8 images and random labels: the cost of every op here is content-blind."""
    gen = torch.Generator().manual_seed(seed)

    def split(n: int) -> Split:
        x = torch.randint(0, 256, (n, *shape), dtype=torch.uint8, generator=gen)
        return Split(x, torch.randint(num_classes, (n,), generator=gen))

    return Dataset("perf-synthetic", split(n_train), split(n_test), [f"c{i}" for i in range(num_classes)])


class MethodHarness:
    """A `Trainer` for one method, positioned in its last epoch, with the three timed calls.

    The trainer is placed at its final epoch (`begin_epoch(epochs - 1)`), past every
    pretraining and warm-up phase (InstaAug trains without augmentation at first), so the
    step timed is the method's steady state. Batches are given as indices into the training
    split, which depends on the seed only: every method sees the same images.
    """

    system: str = "augbench"  # whose training step `step` is (the CSV's `system`)
    measures: tuple[str, ...] = MEASURES  # what the bench may time on it

    def __init__(self, benchmark: str, method: str, overrides: Mapping[str, Any], dataset: Dataset,
                 run_dir: Path, seed: int = 0) -> None:
        cfg = resolve(benchmark, method, seed, overrides)
        self.method_name = method
        self.hparams = cfg.hparams
        bench = create_benchmark(cfg.benchmark, cfg.settings)
        header = {"run_id": cfg.run_id, "benchmark": benchmark, "method": method, "seed": seed, "perf": True}
        self.trainer = t = Trainer(bench, method, cfg.hparams, seed, run_dir, header, dataset=dataset)
        self.device = t.device
        t.epoch = t.epochs - 1
        t.model.train()
        t.method.train()
        t.method.begin_epoch(t.epoch)
        #: steps per timed step-block: the method's `step_period` (one exploration every
        #: `explore_every` steps, TeachAugment's update every `update_every`), so a block carries
        #: exactly one of them; an exploring method without a validation split never explores.
        self.block = 1 if t.method.explores and t.val_split is None else t.method.step_period
        self.required_seconds = 0.0
        self.clock: Callable[[], float] = time.perf_counter  # the bench's clock (`measure.CLOCKS`)
        self._features = self._timed_features()
        self._start = copy.deepcopy(t._state())  # what `rewind` returns to

    def rewind(self) -> None:
        """Back to the state at construction: weights, optimizers, method state, RNGs, step counter.

        The bench rewinds before every timed block of steps, so each block times the same steps
        from the same state. Without it, the repeated steps train an untrained classifier on
        random-label noise at the recipe's peak learning rate (0.2 on the paper configuration),
        which diverges within about ten steps; a method that reads the classifier in eval mode
        (MADAug's look-ahead) then meets infinite logits.
        """
        self.trainer.load_state(self._start)

    @property
    def steps_since_rewind(self) -> int:
        """Training steps taken since the start state."""
        return self.trainer.global_step - int(self._start["global_step"])

    # ------------------------------------------------------------------ the timed calls
    def augment(self, x: Tensor, y: Tensor, offset: int = 0, index: Tensor | None = None) -> Views:
        """`method.sample` alone on [0, 1] images, as inside a training step (autograd on).

        `offset`: the step within the method's period that the call plays (TeachAugment updates
        its augmenter inside `sample` at one step of each period). `index`: the images' rows in the
        training split, as the trainer hands them (EntAugment reads its per-image magnitudes there).
        """
        t = self.trainer
        ctx = StepContext(y=y, features=self._features, training=True, epoch=t.epoch, step=t.global_step + offset,
                          lr=t.classifier_lr(), index=index)
        return t.method.sample(x, ctx, t.task.n_views * t.method.train_copies())

    def step(self, idx: Tensor) -> None:
        """One training step of the trainer itself (augment, forward, loss, backward, optimizers)."""
        t = self.trainer
        stats = t._step(idx)
        t.global_step += 1
        loss = stats.get("loss", 0.0)
        if not math.isfinite(loss):  # a timing of NaN arithmetic is no timing of the method
            raise TrainingDiverged(f"bench: {self.method_name}'s training step gave loss {loss} at step "
                                   f"{self.steps_since_rewind} from the start state")

    @torch.no_grad()
    def tta(self, x: Tensor, n_views: int) -> Tensor:
        """Test-time augmentation exactly as the final report computes it (`tta_logits`)."""
        t = self.trainer
        with eval_mode(t.model, t.method):  # the features a method reads are timed apart, as in `augment`
            ctx = StepContext(training=False, features=self._features if model_features(t.model) else None)
            return tta_logits(t.model, t.method, x, n_views, ctx)

    @torch.no_grad()
    def plain_forward(self, x: Tensor, n_views: int, max_chunk: int = 4096) -> Tensor:
        """`n_views` copies of `x` through the classifier in `tta_logits`' chunks: TTA's floor."""
        t = self.trainer
        with eval_mode(t.model):
            flat = repeat_views(x, n_views)
            return torch.cat([t.model(flat[s]) for s in batches(flat.shape[0], max_chunk)])

    # ------------------------------------------------------------------ required work
    def _timed_features(self) -> Any:
        """`model.features`, bound to the model (methods switch its owner to eval mode), timed.

        The time spent inside it during `augment` is work a method's definition requires
        (AdaAug's policy reads the classifier's features), reported apart from the rest.
        """
        model = self.trainer.model
        inner = getattr(model, "features", None)
        if inner is None:
            return None
        device, harness = self.device, self

        def features(owner: Any, x: Tensor) -> Tensor:
            synchronize(device)
            start = harness.clock()
            out = inner(x)
            synchronize(device)
            harness.required_seconds += harness.clock() - start
            return out

        return types.MethodType(features, model)


def dataset_for(config: BenchConfig, batch_size: int, val_fraction: float, n_batches: int, n_test: int,
                seed: int = 0) -> Dataset:
    """Enough training rows for `n_batches` distinct batches after the validation split."""
    n_train = math.ceil(n_batches * batch_size / (1.0 - val_fraction)) + 1
    shape = (config.channels, config.image_size, config.image_size)
    return synthetic_dataset(n_train, max(1, n_test), shape, config.num_classes, seed)


def fixed_batches(n_rows: int, batch_size: int, n_batches: int, device: torch.device, seed: int = 0) -> list[Tensor]:
    """`n_batches` disjoint index batches drawn once by `seed`; every method cycles through them."""
    if n_rows < batch_size:
        raise ConfigError(f"bench: {n_rows} training rows cannot fill a batch of {batch_size}")
    perm = torch.randperm(n_rows, generator=torch.Generator().manual_seed(seed))
    n_batches = max(1, min(n_batches, n_rows // batch_size))
    return [perm[i * batch_size:(i + 1) * batch_size].to(device) for i in range(n_batches)]


__all__ = ["MethodHarness", "dataset_for", "fixed_batches", "synthetic_dataset"]
