"""augbench: a benchmark suite for methods that learn data augmentations.

    import augbench
    augbench.list_methods(), augbench.list_benchmarks()
    cfg = augbench.resolve("glyphs-rotation", "random-rotation", seed=0, overrides={"train.epochs": 2})
    metrics = augbench.execute(cfg, "runs/example")
"""

__version__ = "0.1.0"

from augbench.benchmarks import create_benchmark, get_benchmark, list_benchmarks, register_benchmark  # noqa: E402
from augbench.methods import (  # noqa: E402
    AugmentationMethod,
    HParam,
    MethodContext,
    StepContext,
    Views,
    create_method,
    get_method,
    list_methods,
    register_method,
)
from augbench.runs import RunConfig, execute, resolve  # noqa: E402

__all__ = [
    "AugmentationMethod", "HParam", "MethodContext", "RunConfig", "StepContext", "Views", "__version__",
    "create_benchmark", "create_method", "execute", "get_benchmark", "get_method", "list_benchmarks",
    "list_methods", "register_benchmark", "register_method", "resolve",
]
