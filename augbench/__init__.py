"""augbench: a benchmark suite for methods that learn data augmentations.

    import augbench
    augbench.list_methods(), augbench.list_benchmarks()
    cfg = augbench.resolve("glyphs-rotation", "random-rotation", seed=0, overrides={"train.epochs": 2})
    metrics = augbench.execute(cfg, "runs/example")

Names are imported lazily, so commands that only read run directories start without torch.
"""

from __future__ import annotations

from augbench.lazy import lazy_getattr

__version__ = "0.1.0"

_EXPORTS = {
    "AugmentationMethod": "augbench.methods", "register_task": "augbench.tasks", "HParam": "augbench.hparams",
    "MethodContext": "augbench.methods",
    "StepContext": "augbench.methods", "Views": "augbench.methods", "create_method": "augbench.methods",
    "get_method": "augbench.methods", "list_methods": "augbench.methods", "register_method": "augbench.methods",
    "create_benchmark": "augbench.settings", "get_benchmark": "augbench.benchmarks",
    "list_benchmarks": "augbench.benchmarks", "register_benchmark": "augbench.benchmarks",
    "RunConfig": "augbench.rundir", "execute": "augbench.runs", "resolve": "augbench.runs",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


__getattr__ = lazy_getattr("augbench", _EXPORTS, globals())
