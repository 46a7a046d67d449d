"""Task `fixed-classifier`: learn augmentations for a frozen pretrained classifier (paper Section 5.3, Table 2).

Only the method's parameters train (the classifier has none that require gradients, so the
trainer builds no model optimizer, and `FrozenClassifier` keeps it in eval mode, so its
BatchNorm statistics never move). The report is test-time augmentation with n views for
every n in `eval.tta_samples` (Table 2: 1, 4, 10), on that classifier and, with phi as
trained, on the classifiers of `model.transfer` (Table 2's ResNet-18 and XCiT columns).
All classifiers see the SAME sampled views of each test image, so their differences are
paired comparisons.

Classifiers come from local weights files (`augbench.models.pretrained`). An augbench
backbone without a weights file (the embedded stand-ins) is first trained by augbench's own
trainer on the benchmark's training data (no augmentation but flips), once per data and
pretraining settings: it is cached under `$AUGBENCH_CACHE/pretrained/`, so every method and
seed is compared on the same frozen classifier, as in the paper.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from augbench.benchmarks.base import Benchmark
from augbench.datasets.base import Split, cache_root
from augbench.errors import ConfigError, DataError
from augbench.hparams import HParam
from augbench.methods import AugmentationMethod, StepContext
from augbench.models.pretrained import ClassifierSpec, load_classifier, parse_classifier_spec
from augbench.results import records as rec
from augbench.train.evaluate import batches, to_float
from augbench.train.tasks import Classification, register_task

if TYPE_CHECKING:
    from augbench.datasets.base import Dataset

PRETRAIN_VERSION = 1  # bump when pretraining changes: it is part of the cache key

#: Settings every benchmark of this task declares (merged into its `settings`).
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


# ----------------------------------------------------------------------------- pretraining
class _Pretraining(Benchmark):
    """Supervised training of a classifier that will be frozen (never registered)."""

    name = "pretraining"
    task = "classification"


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Exclusive lock: two jobs of a sweep never train the same cached classifier at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _rng_devices() -> list[int]:
    return list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []


def pretrain_classifier(bench: Benchmark, dataset: "Dataset", spec: ClassifierSpec) -> Path:
    """Weights of `spec` trained by augbench on `dataset.train` (cached; trained on first use).

    Runs augbench's trainer (method "none", flips, SGD with a cosine schedule, validation split
    for the best epoch) in a cache folder keyed by the data and pretraining settings, so
    an interrupted pretraining resumes and later runs reuse it. The caller's RNG state is
    restored afterwards: a run's result never depends on whether the cache was warm.
    """
    if spec.source != "augbench":
        raise ConfigError(f"classifier {spec} needs a local weights file: pass --set model.weights=PATH (or "
                          f"TAG=ARCH=PATH in model.transfer); only augbench:BACKBONE classifiers are trained here")
    s = bench.s
    key = {"version": PRETRAIN_VERSION, "benchmark": bench.name, "classifier": str(spec),
           "data": {k: v for k, v in sorted(s.items()) if k.startswith("data.")},
           "pretrain": {k: s[k] for k in ("model.pretrain_epochs", "model.pretrain_lr",
                                         "model.pretrain_batch_size", "model.pretrain_seed")}}
    blob = json.dumps(key, sort_keys=True, default=str)
    digest = hashlib.sha256(blob.encode()).hexdigest()[:16]
    run_dir = cache_root() / "pretrained" / f"{bench.name}-{spec.arch}-{digest}"
    weights = run_dir / "final_weights.pt"

    def done() -> bool:
        status = rec.read_json(run_dir / rec.STATUS)
        return status is not None and status.get("state") == "done" and weights.is_file()

    if done():
        return weights
    with _file_lock(run_dir / ".lock"):
        if done():  # another job finished it while we waited
            return weights
        from augbench.train.trainer import Trainer  # the trainer imports the tasks: import late

        settings = _Pretraining.spec().resolve({
            "model.name": spec.arch, "model.width": spec.width, "train.epochs": s["model.pretrain_epochs"],
            "train.batch_size": s["model.pretrain_batch_size"], "train.lr": s["model.pretrain_lr"],
            "train.scheduler": "cosine", "train.hflip": True, "eval.tta_views": 0, "eval.inspect_samples": 0,
            "eval.batch_size": s["eval.batch_size"], "run.device": s["run.device"], "run.progress": False,
        })
        rec.atomic_write_text(run_dir / "pretrain.json", json.dumps(key, indent=1, sort_keys=True, default=str))
        header = {"run_id": digest, "benchmark": f"{bench.name}/pretrain", "method": "none",
                  "seed": s["model.pretrain_seed"]}
        with torch.random.fork_rng(devices=_rng_devices()):
            metrics = Trainer(_Pretraining(settings), "none", {}, s["model.pretrain_seed"], run_dir, header,
                              dataset=dataset).fit()
        rec.write_status(run_dir, "done", metrics=metrics)
    return weights


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
    classifier scores those views, in forward passes of at most `batch_size` images.
    """
    main = next(iter(classifiers.values()))
    modes = {k: m.training for k, m in classifiers.items()}, method.training
    for m in classifiers.values():
        m.eval()
    method.eval()
    features = main.features if getattr(main, "has_features", hasattr(main, "features")) else None
    ctx = StepContext(training=False, features=features)
    acc: dict[str, list[Tensor]] = {}
    inspect: dict[str, list[Tensor]] = {}
    res = FrozenEval()
    try:
        for sl in batches(len(split), batch_size):
            x = to_float(split.x[sl].to(device, non_blocking=True))
            y = split.y[sl].to(device, non_blocking=True)
            b = x.shape[0]
            for tag, clf in classifiers.items():
                logits = clf(x)
                acc.setdefault(f"loss/{tag}", []).append(F.cross_entropy(logits, y, reduction="none"))
                acc.setdefault(f"correct/{tag}", []).append(logits.argmax(-1) == y)
            for n in samples:
                views = method.test_views(x, n, ctx)
                for tag, clf in classifiers.items():
                    outs = torch.cat([clf(views[c]) for c in batches(views.shape[0], batch_size)])
                    pred = method.combine_views(outs.view(n, b, -1)).argmax(-1)
                    acc.setdefault(f"tta/{n}/{tag}", []).append(pred == y)
            for k, v in method.inspect(x, ctx).items():
                inspect.setdefault(k, []).append(v.detach())
    finally:
        for k, m in classifiers.items():
            m.train(modes[0][k])
        method.train(modes[1])
    for key, parts in acc.items():
        kind, _, rest = key.partition("/")
        value = torch.cat(parts).cpu()
        if kind == "loss":
            res.loss[rest] = value
        elif kind == "correct":
            res.correct[rest] = value
        else:
            n, _, tag = rest.partition("/")
            res.tta_correct.setdefault(tag, {})[int(n)] = value
    res.inspect = {k: torch.cat(v).cpu() for k, v in inspect.items()}
    return res


def _inspect_means(inspect: Mapping[str, Tensor]) -> dict[str, float]:
    return {k: v.float().mean().item() for k, v in inspect.items() if v.dim() == 1 and v.is_floating_point()}


# ----------------------------------------------------------------------------- the task
@register_task("fixed-classifier")
class FixedClassifier(Classification):
    """A frozen pretrained classifier; only the method's parameters learn (cross-entropy objective).

    Validation metrics: `clean_acc`, `tta_acc` with `eval.tta_views` views and `score` (=
    tta_acc, the best-epoch criterion: phi is what changes; no `acc` key, which the trainer
    would prefer). Final metrics: `acc`, `loss`, `tta_acc` (`eval.tta_views` views),
    `tta_acc@n` for each n of `eval.tta_samples`, and the same under `TAG/` for each
    transfer classifier.
    """

    n_views = 1

    def __init__(self, bench: Benchmark, dataset: "Dataset") -> None:
        super().__init__(bench, dataset)
        self._entries: list[ClassifierEntry] | None = None

    def entries(self) -> list[ClassifierEntry]:
        """The trained-on classifier (tag '') and the transfer ones, each with a weights file.

        Checked (and missing augbench classifiers pretrained) before training starts, so a
        wrong transfer path fails the run at once, not after hours of training.
        """
        if self._entries is None:
            s = self.bench.s
            wanted = [ClassifierEntry("", parse_classifier_spec(s["model.name"], s["model.width"]), s["model.weights"])]
            wanted += [parse_transfer(e, s["model.width"]) for e in s["model.transfer"]]
            tags = [e.tag for e in wanted[1:]]
            if len(set(tags)) != len(tags):
                raise ConfigError(f"model.transfer: tags must be unique, got {', '.join(tags)}")
            resolved = []
            for e in wanted:
                if e.weights:
                    path = Path(e.weights).expanduser()
                    if not path.is_file():
                        raise DataError(f"weights file {path} of classifier {e.spec} does not exist")
                else:
                    path = pretrain_classifier(self.bench, self.dataset, e.spec)
                resolved.append(ClassifierEntry(e.tag, e.spec, str(path)))
            self._entries = resolved
        return self._entries

    def load(self, entry: ClassifierEntry) -> nn.Module:
        return load_classifier(entry.spec, entry.weights, self.dataset.num_classes)

    def build_model(self) -> nn.Module:
        return self.load(self.entries()[0])

    def evaluate(self, model: nn.Module, method: AugmentationMethod, split: Split, device: Any,
                 final: bool) -> dict[str, float]:
        s = self.bench.s
        bs = s["eval.batch_size"]
        if not final:
            n = s["eval.tta_views"]
            res = evaluate_frozen({"": model}, method, split, device, bs, [n] if n > 0 else [])
            metrics = {"loss": res.loss[""].mean().item(), "clean_acc": res.correct[""].float().mean().item()}
            if n > 0:
                metrics["tta_acc"] = res.tta_correct[""][n].float().mean().item()
            metrics["score"] = metrics.get("tta_acc", metrics["clean_acc"])
            metrics.update(_inspect_means(res.inspect))
            self.last_inspect = res.inspect
            return metrics
        n_tta = s["eval.tta_views"]
        samples = sorted(set(s["eval.tta_samples"]) | ({n_tta} if n_tta > 0 else set()))
        classifiers = {"": model}
        for e in self.entries()[1:]:
            classifiers[e.tag] = self.load(e).to(device)
        res = evaluate_frozen(classifiers, method, split, device, bs, samples)
        metrics: dict[str, float] = {}
        for tag in classifiers:
            prefix = f"{tag}/" if tag else ""
            metrics[prefix + "acc"] = res.correct[tag].float().mean().item()
            metrics[prefix + "loss"] = res.loss[tag].mean().item()
            if n_tta > 0:
                metrics[prefix + "tta_acc"] = res.tta_correct[tag][n_tta].float().mean().item()
            for n in samples:
                metrics[prefix + f"tta_acc@{n}"] = res.tta_correct[tag][n].float().mean().item()
        metrics.update(_inspect_means(res.inspect))
        tta = res.tta_correct[""][n_tta] if n_tta > 0 else None
        metrics.update(self.bench.metrics(split, res.correct[""], tta, res.inspect))
        self.last_inspect = res.inspect
        return metrics


__all__ = ["FIXED_CLASSIFIER_SETTINGS", "ClassifierEntry", "FixedClassifier", "FrozenEval", "evaluate_frozen",
           "parse_transfer", "pretrain_classifier"]
