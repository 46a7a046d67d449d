"""The figure of `augbench bench --figure`: training-step time per method, augbench's and the public code's.

One bar per measured row (median over rounds, whiskers the interquartile range), labelled with
its cost relative to random-crop, and augbench's InstaAug also relative to the public code's
InstaAug step when the bench compared them. A plain `matplotlib.figure.Figure` (no pyplot state).
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from augbench.perf.bench import row_label
from augbench.perf.public import AUGBENCH

COLORS = {AUGBENCH: "#4c72b0", "public": "#dd8452"}


def step_figure(df: pd.DataFrame) -> Figure:
    """Step time per row of a bench table (`perf.bench.COLUMNS`); raises ValueError when none has one."""
    rows = df[(df["status"] == "ok") & df["step_ms"].notna()].reset_index(drop=True)
    if rows.empty:
        raise ValueError("no training step was measured: nothing to draw")
    scale, unit = (1e3, "s") if rows["step_ms"].max() >= 1e3 else (1.0, "ms")
    systems = [s if isinstance(s, str) and s else AUGBENCH for s in rows.get("system", [AUGBENCH] * len(rows))]
    fig = Figure(figsize=(max(5.0, 1.1 * len(rows) + 2), 4.2), dpi=100)
    ax = fig.add_subplot()
    heights = rows["step_ms"] / scale
    iqr = rows["step_iqr_ms"].fillna(0.0) / scale / 2
    ax.bar(range(len(rows)), heights, yerr=iqr, capsize=3, color=[COLORS.get(s, "grey") for s in systems])
    for i, r in rows.iterrows():
        notes = []
        if math.isfinite(r.get("step_x_crop", math.nan)):
            notes.append(f"{r['step_x_crop']:.2f}x crop")
        if math.isfinite(r.get("step_x_public", math.nan)):
            notes.append(f"{r['step_x_public']:.2f}x public")
        ax.text(i, heights[i] + iqr[i], "\n".join(notes), ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(rows)), [row_label(r).replace(" [", "\n[") for _, r in rows.iterrows()], fontsize=8)
    ax.set_ylabel(f"training step ({unit}, median over rounds)")
    ax.set_ylim(0, float((heights + iqr).max()) * 1.25)
    first = rows.iloc[0]
    ax.set_title(f"{first['config']} config ({first.get('model', '?')}, batch {first['batch_size']})\n"
                 f"{first['device_name']}, {first['threads']} thread(s), {first.get('clock', 'wall')} clock",
                 fontsize=9)
    handles = [Patch(color=COLORS[s], label=f"{s} code's training step") for s in COLORS if s in systems]
    if len(handles) > 1:
        ax.legend(handles=handles, fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig


def save_step_figure(df: pd.DataFrame, path: Path | str) -> Path:
    """Draw `step_figure` into `path` (PNG, PDF, SVG by suffix); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    step_figure(df).savefig(path)
    return path


__all__ = ["save_step_figure", "step_figure"]
