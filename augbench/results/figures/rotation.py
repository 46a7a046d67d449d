"""Figure 5: learned per-instance rotation ranges against each instance's true label-preserving interval.

Both come from inspect.pt: the method's "rotation_range" (k, 2) and the test split's
"meta.interval" (k, 2) of the same k images (radians). A glyph of rotation a keeps its label for
rotations inside (-pi/2 - a, pi/2 - a), so a = -(lo + hi) / 2 orders the instances.

Each panel is one run: of the configuration its table reports, the seed of median `coverage`
(`selection.SEED_RULE`); the panel names that seed.
"""

from __future__ import annotations

import math
import textwrap

import pandas as pd
import torch
from matplotlib.figure import Figure

from augbench.catalog_file import committed
from augbench.results.figures.common import META, MissingRuns, PlotContext, new_figure, pick_benchmark, run_label
from augbench.results.selection import SEED_RULE, representatives

TITLE_SIZE = 9  # points: a panel's title

RANGE = "rotation_range"
INTERVAL = META + "interval"
SHOWN_BY = "coverage"  # the ground-truth metric whose median seed each panel shows


def fig5_rotation(ctx: PlotContext, benchmark: str | None, max_instances: int = 64) -> Figure:
    """Learned rotation range per test instance (bars) inside its true label-preserving interval (band)."""
    def ok(df: pd.DataFrame) -> bool:
        return any(ctx.holds(RANGE)(r) for r in df["run_dir"])

    bench = benchmark or pick_benchmark(ctx, "glyphs-rotation", ok)
    if bench is None:
        raise MissingRuns("fig5-rotation: no finished run saved per-instance rotation ranges (inspect.pt)")
    df = ctx.done[ctx.done["benchmark"] == bench]
    complete = representatives(df, ctx.holds(RANGE, INTERVAL), by=SHOWN_BY)
    saved = representatives(df, ctx.holds(RANGE))
    lacking = sorted(set(map(run_label, saved["method"], saved["variant"]))
                     - set(map(run_label, complete["method"], complete["variant"])))
    if complete.empty:
        if saved.empty:
            raise MissingRuns(f"fig5-rotation: no run of {bench} saved rotation ranges")
        entry = (committed() or {}).get("benchmarks", {}).get(bench) or {}
        family = entry.get("family")
        if family not in (None, "rotation"):  # e.g. TeachAugment's affine ranges on a crop benchmark
            raise MissingRuns(f"fig5-rotation: {bench} is a {family} benchmark: its test split has no true "
                              f"rotation intervals ({INTERVAL})")
        if entry.get("embedded") is False:  # real images: nobody knows each image's label-preserving rotations
            raise MissingRuns(f"fig5-rotation: {bench} reads real images, which carry no ground truth: no true "
                              f"rotation intervals ({INTERVAL}) exist for them; --figure class-ranges shows the "
                              f"learned ranges per class")
        raise MissingRuns(f"fig5-rotation: inspect.pt of {bench} runs ({', '.join(lacking)}) holds no true intervals "
                          f"({INTERVAL}): written before the trainer saved them")
    panels = []
    for r in complete.itertuples():
        ins = ctx.inspect(r.run_dir) or {}
        learned, true = ins[RANGE].float()[:max_instances], ins[INTERVAL].float()
        n = min(len(learned), len(true))
        panels.append((run_label(r.method, r.variant), learned[:n], true[:n],
                       getattr(r, "coverage", float("nan")), getattr(r, "violation", float("nan")), r.shown))
    fig, axes = new_figure("fig5-rotation", 1, len(panels), sharey=True)
    width = _title_chars(fig.get_figwidth() / len(panels), TITLE_SIZE)
    for ax, (label, learned, true, cov, vio, shown) in zip(axes[0], panels):
        own = -(true[:, 0] + true[:, 1]) / 2  # the instance's own rotation a (interval is (-pi/2 - a, pi/2 - a))
        order = torch.argsort(own)
        a, lim, got = (torch.rad2deg(t[order]).numpy() for t in (own, true, learned))
        ax.fill_between(a, lim[:, 0], lim[:, 1], color="C0", alpha=0.2, label="label-preserving")
        ax.vlines(a, got[:, 0], got[:, 1], color="C2", linewidth=1.5, label="learned range")
        ax.axhline(0, color="grey", linewidth=0.5)
        lines = [label] + ([] if math.isnan(cov) else [f"coverage {100 * cov:.0f}%, violation {100 * vio:.0f}%"])
        ax.set_title("\n".join(textwrap.fill(t, width) for t in [*lines, shown]), fontsize=TITLE_SIZE)
        ax.set_xlabel("instance rotation a (deg)")
    axes[0, 0].set_ylabel("rotation applied (deg)")
    axes[0, 0].legend(fontsize=7, loc="lower left")
    note = f" (no true intervals saved: {', '.join(lacking)})" if lacking else ""
    fig.suptitle(f"{bench}: learned per-instance rotation ranges (Figure 5){note}\neach panel one run: "
                 f"{SEED_RULE.format(metric=SHOWN_BY)}", fontsize=10)
    return fig


def _title_chars(panel_inches: float, points: float) -> int:
    """Characters of a `points`-sized title line that fit a panel `panel_inches` wide (with a margin):
    wider titles wrap instead of running into the next panel's."""
    return max(12, int(0.85 * panel_inches * 72 / (0.6 * points)))
