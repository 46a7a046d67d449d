"""Performance measurement of augmentation methods (`augbench bench`, issue 9).

    from augbench.perf import run_bench, check_targets
    df = run_bench("embedded", ["instaaug"], device="cuda")   # one row per method, ratios included
    print(check_targets(df))

`measure` holds the device-agnostic primitives (timing with synchronisation, peak memory,
ATen op counts), `harness` wraps one method in the real trainer, `bench` runs and tabulates.
"""

from augbench.perf.bench import BASELINES, COLUMNS, MEASURES, TARGETS, Target, add_ratios, check_targets, run_bench
from augbench.perf.harness import CONFIGS, BenchConfig, MethodHarness, synthetic_dataset
from augbench.perf.measure import PeakMemory, count_ops, synchronize, time_calls

__all__ = ["BASELINES", "COLUMNS", "CONFIGS", "MEASURES", "TARGETS", "BenchConfig", "MethodHarness", "PeakMemory",
           "Target", "add_ratios", "check_targets", "count_ops", "run_bench", "synchronize", "synthetic_dataset",
           "time_calls"]
