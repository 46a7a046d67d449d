"""Task `fixed-classifier`: learn augmentations for a frozen pretrained classifier (paper Section 5.3, Table 2).

Only the method's parameters train (the classifier has none that require gradients, so the
trainer builds no model optimizer, and `FrozenClassifier` keeps it in eval mode, so its
BatchNorm statistics never move). The report is test-time augmentation with n views for
every n in `eval.tta_samples` (Table 2: 1, 4, 10), on that classifier and, with phi as
trained, on the classifiers of `model.transfer` (Table 2's ResNet-18 and XCiT columns).
All classifiers see the SAME sampled views of each test image, so their differences are
paired comparisons.

Classifiers come from local weights files (`augbench.models.pretrained`). An augbench
backbone without a weights file (the embedded stand-ins) is first trained by augbench itself
on the benchmark's training data (method `none`, flips, SGD with a cosine schedule): that
pretraining is a prerequisite run (`Task.prerequisites`) with its own identity and run
directory under `$AUGBENCH_CACHE/pretrained/`, which `augbench.runs.execute` finishes before
the run that freezes it, so every method and seed is compared on the same classifier.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from augbench.benchmarks.base import COMMON_SETTINGS
from augbench.datasets.base import Split, cache_root
from augbench.errors import ConfigError, DataError
from augbench.hparams import HParam, Spec
from augbench.methods import AugmentationMethod, StepContext, get_method
from augbench.models.modes import eval_mode
from augbench.models.pretrained import ClassifierSpec, load_classifier, parse_classifier_spec
from augbench.progress import advance
from augbench.rundir import FINAL_WEIGHTS, RunConfig, RunDir
from augbench.tasks import register_task
from augbench.tasks.base import Evaluation, Prerequisite, inspect_means
from augbench.tasks.classification import Classification
from augbench.tasks.evaluate import as_views, batches, model_features, to_float, views_evaluated

if TYPE_CHECKING:
    from augbench.benchmarks import Benchmark
    from augbench.datasets.base import Dataset

#: Settings every benchmark of this task declares.
FIXED_CLASSIFIER_SETTINGS: dict[str, HParam] = {
    "model.name": HParam("resnet50", str, help="frozen classifier: torchvision NAME, timm:NAME or "
                                                "augbench:BACKBONE[@WIDTH]"),
    "model.weights": HParam("", str, identity=False, help="local weights file of model.name ('' = augbench "
                                                          "trains an augbench backbone once and caches it)"),
    "model.transfer": HParam([], str, is_list=True, identity=False,
                             help="classifiers phi is also evaluated on, each TAG=ARCH[=WEIGHTS]; metrics "
                                  "TAG/acc, TAG/tta_acc@N"),
    "model.pretrain_epochs": HParam(15, int, low=1, help="epochs when augbench trains the classifier itself"),
    "model.pretrain_lr": HParam(0.05, float, low=0.0, help="SGD learning rate of that training (cosine)"),
    "model.pretrain_batch_size": HParam(64, int, low=1),
    "model.pretrain_seed": HParam(0, int, low=0, help="seed of that training: one classifier for all runs"),
    "eval.tta_samples": HParam([1, 4, 10], int, low=1, is_list=True,
                               help="test-time views n of the final report (metrics tta_acc@n)"),
}

_TAG = re.compile(r"^[A-Za-z0-9_.@+-]+$")


@dataclass(frozen=True)
class ClassifierEntry:
    """A classifier of the report: its metric tag ('' = the trained-on one), architecture, weights."""

    tag: str
    spec: ClassifierSpec
    weights: str  # '' until resolved; then a file path


def parse_transfer(entry: str, default_width: float = 1.0) -> ClassifierEntry:
    """`TAG=ARCH[=WEIGHTS]` -> ClassifierEntry (WEIGHTS may be omitted for augbench backbones)."""
    parts = entry.split("=", 2)
    if len(parts) < 2 or not _TAG.match(parts[0].strip()):
        raise ConfigError(f"model.transfer entry {entry!r}: expected TAG=ARCH[=WEIGHTS], e.g. "
                          f"resnet18=resnet18=/weights/resnet18.pth or xcit=timm:xcit_small_12_p16_224=/w/xcit.pth")
    tag, arch = parts[0].strip(), parts[1].strip()
    return ClassifierEntry(tag, parse_classifier_spec(arch, default_width), parts[2].strip() if len(parts) == 3 else "")


def wanted_classifiers(s: Mapping[str, Any]) -> list[ClassifierEntry]:
    """The trained-on classifier (tag '') and the transfer ones, as configured (weights maybe '')."""
    wanted = [ClassifierEntry("", parse_classifier_spec(s["model.name"], s["model.width"]), s["model.weights"])]
    wanted += [parse_transfer(e, s["model.width"]) for e in s["model.transfer"]]
    tags = [e.tag for e in wanted[1:]]
    if len(set(tags)) != len(tags):
        raise ConfigError(f"model.transfer: tags must be unique, got {', '.join(tags)}")
    return wanted


# ----------------------------------------------------------------------------- pretraining
def pretraining(config: RunConfig, spec: ClassifierSpec, declared: Spec) -> Prerequisite:
    """The run that trains classifier `spec` on `config`'s training data before it is frozen.

    Method `none` with flips, SGD with a cosine schedule, the best validation epoch; every other
    training setting at augbench's common default, the data settings those of `config`, so one
    classifier serves every method and seed of a benchmark. `declared`: the settings of
    `config`'s benchmark, which resolve the pretraining run's.
    """
    if spec.source != "augbench":
        raise ConfigError(f"classifier {spec} needs a local weights file: pass --set model.weights=PATH (or "
                          f"TAG=ARCH=PATH in model.transfer); only augbench:BACKBONE classifiers are trained here")
    s = config.settings
    settings = {k: hp.default for k, hp in COMMON_SETTINGS.items()}
    settings.update({k: v for k, v in s.items() if k.startswith("data.") or k.startswith("model.pretrain_")})
    settings.update({
        "model.name": spec.arch, "model.width": spec.width, "train.epochs": s["model.pretrain_epochs"],
        "train.batch_size": s["model.pretrain_batch_size"], "train.lr": s["model.pretrain_lr"],
        "train.scheduler": "cosine", "train.hflip": True, "eval.tta_views": 0, "eval.inspect_samples": 0,
        "eval.batch_size": s["eval.batch_size"], "run.device": s["run.device"], "run.progress": False,
    })
    for key in ("model.weights", "model.transfer", "eval.tta_samples"):
        settings[key] = FIXED_CLASSIFIER_SETTINGS[key].default
    settings = declared.resolve(settings)
    none = get_method("none")
    pre = RunConfig.of(config.benchmark, "none", int(s["model.pretrain_seed"]), settings, {}, bench_spec=declared,
                       method_spec=none.spec(), task="classification", family=config.family,
                       benchmark_task=config.benchmark_task, variant=none.variant_name({}, config.family))
    return Prerequisite(pre, cache_root() / "pretrained" / f"{config.benchmark}-{spec.arch}-{pre.run_id}")


# ----------------------------------------------------------------------------- evaluation
@dataclass
class FrozenEval:
    """Per-sample outcomes of each classifier over a split (tag '' = the trained-on classifier)."""

    loss: dict[str, Tensor] = field(default_factory=dict)
    correct: dict[str, Tensor] = field(default_factory=dict)
    tta_correct: dict[str, dict[int, Tensor]] = field(default_factory=dict)
    inspect: dict[str, Tensor] = field(default_factory=dict)


@torch.no_grad()
def evaluate_frozen(classifiers: Mapping[str, nn.Module], method: AugmentationMethod, split: Split,
                    device: torch.device, batch_size: int, samples: Sequence[int]) -> FrozenEval:
    """Plain and n-view test-time-augmented predictions of every classifier on shared views.

    For each batch and each n in `samples`, `method.test_views` is drawn ONCE and every
    classifier scores those views, in forward passes of at most `batch_size` images. Identical
    views (`identical_test_views`) go through each classifier once, for every n.
    """
    main = next(iter(classifiers.values()))
    ctx = StepContext(training=False, features=model_features(main))
    acc: dict[str, list[Tensor]] = {}
    inspect: dict[str, list[Tensor]] = {}
    res = FrozenEval()
    identical = method.identical_test_views()
    with eval_mode(*classifiers.values(), method):
        for sl in batches(len(split), batch_size):
            x = to_float(split.x[sl].to(device, non_blocking=True))
            y = split.y[sl].to(device, non_blocking=True)
            b = x.shape[0]
            for tag, clf in classifiers.items():
                logits = clf(x)
                acc.setdefault(f"loss/{tag}", []).append(F.cross_entropy(logits, y, reduction="none"))
                acc.setdefault(f"correct/{tag}", []).append(logits.argmax(-1) == y)
            once: dict[str, Tensor] = {}  # identical views: each classifier's outputs of the one view, for every n
            for n in samples:
                n_eval = views_evaluated(method, n)
                views = None if once else method.test_views(x, n_eval, ctx)
                for tag, clf in classifiers.items():
                    if views is None:
                        outs = once[tag]
                    else:
                        outs = torch.cat([clf(views[c]) for c in batches(views.shape[0], batch_size)])
                        outs = outs.view(n_eval, b, -1)
                        if identical:
                            once[tag] = outs
                    pred = method.combine_views(as_views(outs, n)).argmax(-1)
                    acc.setdefault(f"tta/{n}/{tag}", []).append(pred == y)
            for k, v in method.inspect(x, ctx).items():
                inspect.setdefault(k, []).append(v.detach())
            advance(b)
    for key, parts in acc.items():
        kind, _, rest = key.partition("/")
        value = torch.cat(parts).cpu()
        if kind == "loss":
            res.loss[rest] = value
        elif kind == "correct":
            res.correct[rest] = value
        else:
            n_views, _, tag = rest.partition("/")
            res.tta_correct.setdefault(tag, {})[int(n_views)] = value
    res.inspect = {k: torch.cat(v).cpu() for k, v in inspect.items()}
    return res


# ----------------------------------------------------------------------------- the task
@register_task("fixed-classifier")
class FixedClassifier(Classification):
    """A frozen pretrained classifier; only the method's parameters learn (cross-entropy objective).

    Validation metrics: `clean_acc`, `tta_acc` with `eval.tta_views` views and `score` (=
    tta_acc, the best-epoch criterion: phi is what changes). Final metrics: `acc`, `loss`,
    `tta_acc` (`eval.tta_views` views), `tta_acc@n` for each n of `eval.tta_samples`, and the
    same under `TAG/` for each transfer classifier; `tta_views_evaluated` (`views_evaluated`).
    """

    n_views = 1
    settings = FIXED_CLASSIFIER_SETTINGS
    score_key = "score"

    def __init__(self, bench: Benchmark, dataset: Dataset) -> None:
        super().__init__(bench, dataset)
        self._entries: list[ClassifierEntry] | None = None

    @classmethod
    def prerequisites(cls, config: RunConfig, spec: Spec) -> list[Prerequisite]:
        """One pretraining run per augbench classifier that has no weights file."""
        return [pretraining(config, e.spec, spec) for e in wanted_classifiers(config.settings) if not e.weights]

    def entries(self) -> list[ClassifierEntry]:
        """Every classifier of the report with its weights file, checked before training starts.

        A wrong transfer path fails the run at once, not after hours of training; an augbench
        classifier's weights are those of its finished pretraining run.
        """
        if self._entries is None:
            s = self.bench.s
            resolved = []
            for e in wanted_classifiers(s):
                if e.weights:
                    path = Path(e.weights).expanduser()
                    if not path.is_file():
                        raise DataError(f"weights file {path} of classifier {e.spec} does not exist")
                else:
                    pre = pretraining(RunConfig(self.bench.name, "none", 0, dict(s)), e.spec, self.bench.spec)
                    path = pre.run_dir / FINAL_WEIGHTS
                    if RunDir(pre.run_dir).finished(pre.config.run_id) is None or not path.is_file():
                        raise ConfigError(f"classifier {e.spec} is not pretrained yet ({pre.run_dir}): start the "
                                          f"run with `augbench run` (augbench.runs.execute runs prerequisites first)")
                resolved.append(ClassifierEntry(e.tag, e.spec, str(path)))
            self._entries = resolved
        return self._entries

    def load(self, entry: ClassifierEntry) -> nn.Module:
        return load_classifier(entry.spec, entry.weights, self.dataset.num_classes)

    def build_model(self) -> nn.Module:
        return self.load(self.entries()[0])

    def evaluate(self, model: nn.Module, method: AugmentationMethod, split: Split, device: Any,
                 final: bool) -> Evaluation:
        s = self.bench.s
        bs = s["eval.batch_size"]
        if not final:
            n = s["eval.tta_views"]
            res = evaluate_frozen({"": model}, method, split, device, bs, [n] if n > 0 else [])
            metrics = {"loss": res.loss[""].mean().item(), "clean_acc": res.correct[""].float().mean().item()}
            if n > 0:
                metrics["tta_acc"] = res.tta_correct[""][n].float().mean().item()
            metrics["score"] = metrics.get("tta_acc", metrics["clean_acc"])
            metrics.update(inspect_means(res.inspect))
            return Evaluation(metrics, res.inspect)
        n_tta = s["eval.tta_views"]
        samples = sorted(set(s["eval.tta_samples"]) | ({n_tta} if n_tta > 0 else set()))
        classifiers = {"": model}
        for e in self.entries()[1:]:
            classifiers[e.tag] = self.load(e).to(device)
        res = evaluate_frozen(classifiers, method, split, device, bs, samples)
        metrics = {}
        for tag in classifiers:
            prefix = f"{tag}/" if tag else ""
            metrics[prefix + "acc"] = res.correct[tag].float().mean().item()
            metrics[prefix + "loss"] = res.loss[tag].mean().item()
            if n_tta > 0:
                metrics[prefix + "tta_acc"] = res.tta_correct[tag][n_tta].float().mean().item()
            for n in samples:
                metrics[prefix + f"tta_acc@{n}"] = res.tta_correct[tag][n].float().mean().item()
        if n_tta > 0:
            metrics["tta_views_evaluated"] = float(views_evaluated(method, n_tta))
        metrics.update(inspect_means(res.inspect))
        tta = res.tta_correct[""][n_tta] if n_tta > 0 else None
        metrics.update(self.bench.metrics(split, res.correct[""], tta, res.inspect))
        return Evaluation(metrics, res.inspect)


__all__ = ["FIXED_CLASSIFIER_SETTINGS", "ClassifierEntry", "FixedClassifier", "FrozenEval", "evaluate_frozen",
           "parse_transfer", "pretraining", "wanted_classifiers"]
