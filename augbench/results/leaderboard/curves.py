"""A method's training curves for its leaderboard page: validation accuracy and training loss per
epoch, one line per run, drawn with plain matplotlib (a figure in a fraction of a second)."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

PANELS = (("val", "acc", "validation accuracy"), ("train", "loss", "training loss"))


def method_curves(runs: pd.DataFrame) -> Figure | None:
    """One panel per metric the runs recorded (see PANELS), or None when they recorded none."""
    panels = []
    for split, metric, title in PANELS:
        d = runs[(runs["split"] == split)] if "split" in runs else runs.iloc[0:0]
        if metric in d and d[metric].notna().any():
            panels.append((d[d[metric].notna()], metric, title))
    if not panels:
        return None
    fig = Figure(figsize=(4.2 * len(panels), 2.8), dpi=80)  # fixed margins: no layout engine, fast to save
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    fig.subplots_adjust(left=0.09, right=0.98, bottom=0.17, top=0.9, wspace=0.25)
    for ax, (d, metric, title) in zip(axes, panels):
        for (run_id, seed), g in d.groupby(["run_id", "seed"], sort=True, dropna=False):
            g = g.drop_duplicates(["epoch"], keep="last").sort_values("epoch")
            ax.plot(g["epoch"].astype(float), g[metric].astype(float), marker="o", markersize=3, linewidth=1,
                    label=f"seed {seed} ({str(run_id)[:8]})")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    if runs["run_id"].nunique() <= 8:  # more lines than that: a legend would hide them
        axes[0].legend(fontsize=7)
    return fig
