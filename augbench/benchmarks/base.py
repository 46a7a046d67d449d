"""A benchmark fixes dataset, splits, model, task, transformation family, schedule and evaluation.

Settings are declared like method hyperparameters, under dotted names that `--set` reaches
(common ones here, the task's in `Task.settings`, the benchmark's own in `Benchmark.settings`;
`augbench.settings` merges them): `data.*` (dataset, sizes, paths), `model.*`, `train.*`
(schedule), `eval.*` and `run.*` (bookkeeping that never changes a result, so it stays out of
the run's identity). A method's defaults on a benchmark are the method's own
(`AugmentationMethod.recipes`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import Tensor

from augbench.datasets.base import Dataset, Split
from augbench.hparams import HParam, Spec

#: The embedded stand-ins' short CPU schedules (15 epochs or fewer): four validation checks per
#: epoch, so that InstaAug's lambda can react within the run (its controller on these schedules
#: is InstaAug's recipe, `augbench.methods.instaaug.recipes.STAND_IN`).
STAND_IN_SCHEDULE: dict[str, Any] = {"train.val_checks": 4}
#: The folder benchmarks (a user's own images): the same four checks per epoch, which InstaAug's
#: rule for data nobody tuned it for counts its lambda controller's reaction time in
#: (`augbench.methods.instaaug.schedule_rule`).
FOLDER_SCHEDULE: dict[str, Any] = {"train.val_checks": 4}

COMMON_SETTINGS: dict[str, HParam] = {
    "model.name": HParam("small_cnn", str, help="backbone (augbench.models.BACKBONES)"),
    "model.width": HParam(1.0, float, low=0.0625, high=16, help="channel width multiplier"),
    "train.epochs": HParam(10, int, low=1, help="training epochs"),
    "train.batch_size": HParam(64, int, low=1),
    "train.optimizer": HParam("sgd", str, choices=("sgd", "adam")),
    "train.lr": HParam(0.05, float, low=0.0),
    "train.momentum": HParam(0.9, float, low=0.0, high=1.0),
    "train.nesterov": HParam(False, bool,
                             help="Nesterov momentum for SGD (the paper's code sets it; the paper is silent)"),
    "train.weight_decay": HParam(5e-4, float, low=0.0),
    "train.scheduler": HParam("plateau", str, choices=("plateau", "cosine", "multistep", "none"),
                              help="plateau: lr x factor when validation accuracy stalls (paper D.1)"),
    "train.milestones": HParam([], int, is_list=True, help="multistep: epochs at which lr is multiplied by gamma"),
    "train.gamma": HParam(0.1, float, low=0.0, help="multistep: lr factor at each milestone"),
    "train.plateau_factor": HParam(0.9, float, low=0.0, high=1.0),
    "train.plateau_patience": HParam(10, int, low=0),
    "train.hflip": HParam(False, bool, help="random horizontal flips for every method (the paper's base augmentation)"),
    "train.val_fraction": HParam(0.1, float, low=0.0, high=0.9, help="validation split carved from train by the seed"),
    "train.val_checks": HParam(1, int, low=1,
                               help="validation checks per epoch that methods' controllers react to (InstaAug's "
                                    "lambda); the last is the epoch's validation"),
    "train.select": HParam("best", str, choices=("best", "last"),
                           help="weights reported: best validation epoch or last"),
    "train.amp": HParam("off", str, choices=("off", "bf16", "fp16"),
                        help="mixed precision for the classifier's forward pass "
                             "(changes numerics: part of the identity)"),
    "eval.tta_views": HParam(10, int, low=0, help="test-time augmentation views (0: none)"),
    "eval.batch_size": HParam(256, int, low=1, identity=False),
    "eval.inspect_samples": HParam(256, int, low=0, identity=False,
                                   help="test samples whose distribution parameters are saved for plots"),
    "run.device": HParam("auto", str, identity=False, help="cpu, cuda, cuda:N or auto"),
    "run.checkpoint_every_steps": HParam(0, int, low=0, identity=False, help="extra mid-epoch checkpoints (0: off)"),
    "run.checkpoint_minutes": HParam(5.0, float, low=0.0, identity=False,
                                     help="mid-epoch checkpoint interval in minutes"),
    "run.log_every": HParam(50, int, low=1, identity=False, help="training records every N steps"),
    "run.channels_last": HParam(False, bool, identity=False, help="channels_last memory format (faster convs on CUDA)"),
    "run.compile": HParam(False, bool, identity=False, help="torch.compile the classifier"),
    "run.progress": HParam(True, bool, identity=False, help="progress bar (only on a terminal)"),
    "run.tensorboard": HParam(False, bool, identity=False,
                              help="also write the records' scalars to <run>/tensorboard (needs tensorboard)"),
    "run.threads": HParam(0, int, low=0, identity=False,
                          help="torch CPU threads; 0 (auto): OMP_NUM_THREADS, SLURM's CPUs per task, else the "
                               "CPUs this process may use (a local sweep divides them among its parallel runs)"),
    "run.distributed": HParam("auto", str, choices=("auto", "off"), identity=False,
                              help="auto: data-parallel over torchrun's or submitit's processes (WORLD_SIZE > 1); "
                                   "off: one process"),
}


class Benchmark:
    """Base class of benchmarks; subclasses set the class attributes and `load`."""

    name: ClassVar[str] = ""
    family: ClassVar[str] = ""  # "crop", "rotation", "color"
    task: ClassVar[str] = "classification"
    paper: ClassVar[str] = ""  # where in the paper, e.g. "Table 1"
    description: ClassVar[str] = ""
    embedded: ClassVar[bool] = False  # runs with no data on disk
    settings: ClassVar[dict[str, HParam]] = {}  # benchmark-specific declarations
    defaults: ClassVar[dict[str, Any]] = {}  # overrides of COMMON_SETTINGS and the task's defaults

    def __init__(self, settings: Mapping[str, Any], spec: Spec) -> None:
        """`settings` resolved by `spec`, every declaration of the benchmark and its task
        (`augbench.settings.create_benchmark` builds both)."""
        self.s = dict(settings)
        self.spec = spec  # what tasks resolve a prerequisite run's settings with

    def load(self) -> Dataset:
        """The dataset, with uint8 images (N, C, H, W)."""
        raise NotImplementedError

    def metrics(self, split: Split, correct: Tensor, tta_correct: Tensor | None,
                inspect: Mapping[str, Tensor]) -> dict[str, float]:
        """Benchmark-specific metrics beyond accuracy (group accuracies, ground-truth invariance).

        `correct`/`tta_correct` are per-sample booleans over `split`; `inspect` holds the
        method's per-sample distribution parameters over the same samples.
        """
        return {}


def accuracy_by_group(correct: Tensor, group: Tensor, groups: Mapping[str, list[int]], prefix: str) -> dict[str, float]:
    """Accuracy over the samples whose `group` value is in each named list."""
    out = {}
    for name, members in groups.items():
        mask = torch.isin(group, torch.tensor(members, device=group.device))
        if mask.any():
            out[f"{prefix}{name}"] = correct[mask].float().mean().item()
    return out


def magnitude_metrics(y: Tensor, inspect: Mapping[str, Tensor], fragile: Tensor) -> dict[str, float]:
    """Where a per-image magnitude method augments hard: its mean magnitude overall
    (`magnitude`), on the images whose label strong ops destroy (`magnitude_fragile`, by the
    stand-in's ground truth `fragile`, (N,) bool) and on the others (`magnitude_robust`).

    The magnitude is the method's "magnitude" (N,), or its "magnitude_per_class" (N, K) at the
    true label `y` (a method whose magnitude depends on the label, as SRA's). {} when it reports
    neither. A method that follows the instance has the fragile mean below the robust one.
    """
    if "magnitude" in inspect:
        m = inspect["magnitude"].float()
    elif "magnitude_per_class" in inspect:
        per_class = inspect["magnitude_per_class"].float()
        m = per_class.gather(1, y[: len(per_class)].to(per_class.device).long().unsqueeze(1)).squeeze(1)
    else:
        return {}
    fragile = fragile[: len(m)].to(m.device)
    out = {"magnitude": m.mean().item()}
    if fragile.any():
        out["magnitude_fragile"] = m[fragile].mean().item()
    if (~fragile).any():
        out["magnitude_robust"] = m[~fragile].mean().item()
    return out
