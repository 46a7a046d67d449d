"""Performance measurement of augmentation methods (`augbench bench`).

    from augbench.perf import run_bench, check_targets
    df = run_bench("embedded", ["instaaug"], device="cuda")   # one row per method, ratios included
    print(check_targets(df))

`measure` holds the device-agnostic primitives (timing with synchronisation, clocks, peak
memory, ATen op counts), `harness` wraps one method in the real trainer, `public` rebuilds the
public InstaAug code's two-pass training step for comparison, `bench` runs and tabulates,
`report` prints and `figure` draws the step times. `ops` times each batched per-sample op
beside kornia and torchvision (`augbench bench --ops`), `syncs` counts host-device
synchronisations on any device, `epochs` times whole epochs and extrapolates a run.
"""


from augbench.lazy import lazy_getattr

# name -> module; imported on first use, so `augbench --help` builds its parser without torch
_EXPORTS = {
    **dict.fromkeys(("BASELINES", "COLUMNS", "TARGETS", "Target", "add_ratios", "check_targets", "run_bench"),
                    "augbench.perf.bench"),
    **dict.fromkeys(("CONFIGS", "MEASURES", "BenchConfig"), "augbench.perf.configs"),
    **dict.fromkeys(("MethodHarness", "synthetic_dataset"), "augbench.perf.harness"),
    **dict.fromkeys(("CLOCKS", "PeakMemory", "count_ops", "synchronize", "time_calls"), "augbench.perf.measure"),
    **dict.fromkeys(("PublicInstaAugHarness",), "augbench.perf.public"),
    **dict.fromkeys(("save_step_figure", "step_figure"), "augbench.perf.figure"),
    **dict.fromkeys(("CASES", "format_ops", "run_op_bench", "torchvision_op"), "augbench.perf.ops"),
    **dict.fromkeys(("SyncCounter", "step_syncs"), "augbench.perf.syncs"),
    **dict.fromkeys(("format_epochs", "time_epochs"), "augbench.perf.epochs"),
}
__all__ = sorted(_EXPORTS)


__getattr__ = lazy_getattr("augbench.perf", _EXPORTS, globals())
