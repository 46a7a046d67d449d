"""Generic tests over the whole method registry (benchopt's "every solver runs" test).

Parametrised from `list_methods()` and the embedded benchmarks at collection time, so a
method or embedded benchmark added later is covered without editing this file.
"""

from __future__ import annotations

import math

import pytest
import torch

from augbench.benchmarks import get_benchmark, list_benchmarks
from augbench.methods import MethodContext, StepContext, create_method, get_method, list_methods
from augbench.models import build_model
from augbench.overrides import VARIANT
from augbench.rundir import RunDir
from augbench.runs import execute, resolve
from augbench.settings import settings_spec

EMBEDDED = [b for b in list_benchmarks() if get_benchmark(b).embedded]
METHODS = list_methods()

# Tiny sizes and schedules for whichever of these settings a benchmark declares.
SIZE_KEYS = {"data.n_train": 64, "data.n_test": 24, "data.n_train_per_class": 8, "data.n_test_per_class": 3,
             "model.pretrain_epochs": 1, "eval.probe_epochs": 5, "model.proj_hidden": 32}
COMMON = {"train.epochs": 1, "train.batch_size": 16, "eval.tta_views": 2, "eval.batch_size": 64,
          "model.width": 0.25, "run.device": "cpu", "run.progress": False}


def supports(method: str, bench: str) -> bool:
    """The trainer's rule (runs.resolve): the benchmark's family is among the method's families.

    A method may also declare `tasks` (e.g. AdaAug: classification only); then the benchmark's
    task must be one of them.
    """
    bench_cls, method_cls = get_benchmark(bench), get_method(method)
    family, families = bench_cls.family, method_cls.families
    tasks = getattr(method_cls, "tasks", None)
    if tasks and bench_cls.task not in tasks:
        return False
    return not family or not families or family in families


PAIRS = [(m, b) for m in METHODS for b in EMBEDDED if supports(m, b)]


def create_method_for(cfg):
    """The method of a resolved run, built as the trainer builds it (to ask whether it learns)."""
    from augbench.methods import MethodContext, create_method

    bench = get_benchmark(cfg.benchmark)
    ctx = MethodContext(num_classes=4, image_shape=(3, 32, 32), families=frozenset({bench.family}), feature_dim=32)
    return create_method(cfg.method, ctx, **cfg.hparams)


def tiny_overrides(bench: str) -> dict:
    params = settings_spec(bench).params
    return {**{k: v for k, v in SIZE_KEYS.items() if k in params}, **COMMON}


@pytest.mark.parametrize("name", METHODS)
def test_recipes_and_variants_are_valid_hyperparameters_of_registered_benchmarks(name):
    cls = get_method(name)
    assert VARIANT not in cls.hparams, f"{name} declares {VARIANT!r}, the name that chooses a variant"
    for bench, recipe in cls.recipes.items():
        assert bench in list_benchmarks(), f"{name}'s recipe for {bench!r}, which is no registered benchmark"
        cls.spec().resolve(recipe)  # declared names, valid values
    for variant, preset in cls.variants.items():
        cls.spec().resolve(preset)
        assert cls.variant_name(cls.spec().resolve(preset)) == variant, f"{name}: {variant} is named otherwise"


def test_every_method_is_covered_by_an_embedded_benchmark():
    uncovered = [m for m in METHODS if not any(supports(m, b) for b in EMBEDDED)]
    assert not uncovered, f"no embedded benchmark exercises {uncovered}"


@pytest.mark.parametrize("method,bench", PAIRS, ids=[f"{m}@{b}" for m, b in PAIRS])
def test_trains_and_evaluates_with_tta(method, bench, tmp_path):
    frozen_ok = {"allow_frozen_phi": True} if method == "instaaug" else {}  # 1 epoch: within pretraining
    cfg = resolve(bench, method, seed=0, overrides={**tiny_overrides(bench), **frozen_ok})
    metrics = execute(cfg, tmp_path / "run")
    assert RunDir(tmp_path / "run").state().state == "done"
    frozen = get_benchmark(bench).task == "fixed-classifier"
    learns = any(p.requires_grad for p in create_method_for(cfg).parameters())
    assert metrics["steps"] >= 1 or (frozen and not learns)  # nothing to train: report only
    assert any(k.split("/")[-1].startswith("tta_acc") for k in metrics), f"no test-time augmentation: {sorted(metrics)}"
    bad = {k: v for k, v in metrics.items() if isinstance(v, float) and not math.isfinite(v)}
    assert not bad, f"non-finite final metrics: {bad}"
    accs = {k: v for k, v in metrics.items() if "acc" in k}
    assert accs and all(0.0 <= v <= 1.0 for v in accs.values()), accs


def test_discovery_imports_no_helper_module_as_a_method():
    """Each module that discovery imports from `augbench.methods` registers a method.

    Helpers live inside a method's package (InstaAug's `instaaug/lrp.py`, ...); the exception
    is `base`, the interface that `augbench.methods` itself imports.
    """
    import pkgutil

    import augbench.methods as package

    discovered = {m.name for m in pkgutil.iter_modules(package.__path__) if not m.name.startswith("_")}
    modules = {get_method(name).__module__ for name in METHODS}
    registering = {m.split(".")[2] for m in modules if m.startswith("augbench.methods.")}
    assert discovered - {"base"} == registering
    assert "instaaug" in registering and get_method("instaaug").__module__ == "augbench.methods.instaaug.method"


# ---------------------------------------------------------------------------- sample contract

def _method_for(name: str) -> tuple:
    """The method as an embedded benchmark of its first supported family would build it."""
    bench = next((b for b in EMBEDDED if supports(name, b)), None)
    family = get_benchmark(bench).family if bench else sorted(get_method(name).families or {"crop"})[0]
    defaults = get_method(name).recipes.get(bench, {}) if bench else {}
    ctx = MethodContext(num_classes=4, image_shape=(3, 32, 32), families=frozenset({family}))
    return create_method(name, ctx, **defaults), family


@pytest.mark.parametrize("name", METHODS)
def test_sample_contract_and_per_sample_randomness(name):
    """Shapes, dtype and [0, 1] range kept; identical inputs get different draws per sample."""
    torch.manual_seed(0)
    method, _ = _method_for(name)
    model = build_model("small_cnn", 4, width=0.25)
    b, views = 32, 2
    x = torch.rand(1, 3, 32, 32).expand(b, 3, 32, 32).contiguous()
    y = torch.randint(0, 4, (b,))
    ctx = StepContext(y=y, features=model.features, training=True)
    method.train()
    torch.manual_seed(1)
    first = method.sample(x, ctx, views)
    torch.manual_seed(2)
    second = method.sample(x, ctx, views)
    for v in (first, second):
        assert v.n_views == views
        assert v.x.shape == (views * b, 3, 32, 32) and v.x.dtype == x.dtype and v.x.device == x.device
        assert torch.isfinite(v.x).all()
        assert v.x.min() >= -1e-6 and v.x.max() <= 1 + 1e-6
    if not torch.equal(first.x, second.x):  # a random method: draws must differ within the batch
        # (>= 2, not more: a peaked discrete distribution, e.g. InstaAug's LRP prior, repeats its mode)
        distinct = torch.unique(first.x.flatten(1), dim=0).shape[0]
        assert distinct >= 2, f"{name}: one transformation for all {views * b} identical inputs"

    loss, logs = method.objective(torch.rand(views * b), first)
    assert loss.dim() == 0 and torch.isfinite(loss)

    method.eval()
    test_ctx = StepContext(training=False, features=model.features)
    tv = method.test_views(x, 3, test_ctx)
    assert tv.shape == (3 * b, 3, 32, 32) and tv.min() >= -1e-6 and tv.max() <= 1 + 1e-6
    for key, value in method.inspect(x, test_ctx).items():
        assert value.shape[0] == b, f"inspect[{key!r}] has first dimension {value.shape[0]}, not {b}"
