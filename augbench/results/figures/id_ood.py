"""Figure 7: in- against out-of-distribution accuracy, with the random-colour sweep as points.

Every seed counts: each method is the mean ± sd over the seeds of one configuration, at the
sweep's benchmark settings (Table 3's: trained under the sweep's lightings) and chosen by
validation among the rest, named by method and variant (and that configuration when there were
several); each sweep point is the mean over its seeds. A key under the plot says what the
sweep's colour, size, opacity and lines encode.
"""

from __future__ import annotations

import re
from typing import Any

import matplotlib
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from augbench.results.figures.common import MissingRuns, PlotContext, new_figure, pick_benchmark, run_label
from augbench.results.paper import HP
from augbench.results.selection import choose_config

ID_OOD_PAIRS = (("tta_acc_easy", "tta_acc_hard"), ("acc_easy", "acc_hard"), ("tta_acc_id", "tta_acc_ood"),
                ("acc_id", "acc_ood"))


def _id_ood_pair(df: pd.DataFrame) -> tuple[str, str] | None:
    """The first known (in, out) accuracy pair the runs report, else any `<m>_easy`/`_hard` (`_id`/`_ood`)."""
    for a, b in ID_OOD_PAIRS:
        if a in df and b in df and df[a].notna().any() and df[b].notna().any():
            return a, b
    for col in sorted(df.columns):
        m = re.fullmatch(r"(.*)_(easy|id)", col)
        if m:
            other = f"{m.group(1)}_{'hard' if m.group(2) == 'easy' else 'ood'}"
            if other in df and df[col].notna().any() and df[other].notna().any():
                return col, other
    return None


def fig7_id_ood(ctx: PlotContext, benchmark: str | None) -> Figure:
    """In- vs out-of-distribution accuracy; the random-colour sweep as points coloured by hue,
    sized by value jitter, opacity by saturation jitter; lines join equal hue (thick: and value)."""
    bench = benchmark or pick_benchmark(ctx, "rawfoot-color", lambda d: _id_ood_pair(d) is not None)
    df = ctx.done[ctx.done["benchmark"] == bench] if bench else ctx.done.iloc[0:0]
    pair = _id_ood_pair(df) if bench else None
    if pair is None:
        raise MissingRuns("fig7-id-ood: no finished runs with in- and out-of-distribution accuracies")
    x, y = pair
    df = df.assign(x=df[x].astype(float) * 100, y=df[y].astype(float) * 100)
    fig, axes = new_figure("fig7-id-ood")
    ax = axes[0, 0]
    hue, sat, val = HP["hue"], HP["saturation"], HP["value"]
    ylorrd = matplotlib.colormaps["YlOrRd"]
    sweep = df[df["method"] == "random-color"]
    if not sweep.empty and all(c in sweep for c in (hue, sat, val)):
        pts = sweep.groupby([hue, sat, val], as_index=False)[["x", "y"]].mean()
        for keys, style in (([hue, val], {"linewidth": 1.6}), ([hue, sat], {"linewidth": 0.5})):
            for _, g in pts.groupby(keys):
                g = g.sort_values(sat if sat not in keys else val)
                ax.plot(g["x"], g["y"], color=ylorrd(0.25 + 1.5 * float(g[hue].iloc[0])), alpha=0.6, **style)
        for h, s, v, px, py in pts[[hue, sat, val, "x", "y"]].astype(float).itertuples(index=False, name=None):
            ax.scatter(px, py, s=15 + 60 * v, color=ylorrd(0.25 + 1.5 * h), alpha=0.35 + 0.65 * min(s, 1.0),
                       edgecolor="none")
        ax.scatter([], [], color=ylorrd(0.5), label=f"random colour: {len(pts)} settings (mean of their seeds)")
        fig.legend(handles=_sweep_key(ylorrd), loc="outside lower center", ncols=3, fontsize=7, frameon=False,
                   title="random-colour sweep key", title_fontsize=7)
    others = _at_settings_of(df[df["method"] != "random-color"], sweep)
    for i, ((method, variant), g) in enumerate(others.groupby(["method", "variant"], dropna=False)):
        choice = choose_config(g)
        g = choice.runs
        config = f", {choice.selected}" if choice.selected else ""
        seeds = f"mean ± sd of {len(g)} seeds" if len(g) > 1 else "1 seed"
        ax.errorbar(g["x"].mean(), g["y"].mean(), xerr=g["x"].std(ddof=1) if len(g) > 1 else None,
                    yerr=g["y"].std(ddof=1) if len(g) > 1 else None, fmt="s", markersize=8, capsize=3,
                    color=f"C{i % 10}", label=f"{run_label(method, variant)}{config} ({seeds})")
    ax.set_xlabel(f"in-distribution {x} (%)")
    ax.set_ylabel(f"out-of-distribution {y} (%)")
    ax.legend(fontsize=7)
    ax.set_title(f"{bench}: in- vs out-of-distribution accuracy (Figure 7)\nmethods: mean ± sd over seeds"
                 + ("; random colour: mean of each setting's seeds" if not sweep.empty else ""), fontsize=10)
    return fig


def _at_settings_of(df: pd.DataFrame, sweep: pd.DataFrame) -> pd.DataFrame:
    """Rows of `df` run at the benchmark settings (`set.*`) of most of the sweep's runs (all rows without a sweep)."""
    cols = [c for c in df.columns if c.startswith("set.")]
    if sweep.empty or not cols:
        return df
    def keys(d: pd.DataFrame) -> pd.Series:
        return d[cols].apply(lambda r: "|".join("" if pd.isna(v) else str(v) for v in r), axis=1)

    return df[keys(df) == keys(sweep).value_counts().index[0]] if not df.empty else df


def _sweep_key(cmap: matplotlib.colors.Colormap) -> list[Line2D]:
    """Legend entries saying what each visual channel of the random-colour sweep encodes."""
    def dot(**kw: Any) -> Line2D:
        return Line2D([], [], linestyle="none", marker="o", **kw)

    return [dot(color=cmap(0.25), markersize=6, label="colour: hue jitter 0 (light)"),
            dot(color=cmap(1.0), markersize=6, label="to 0.5 (dark)"),
            dot(color="grey", markersize=4, label="size: value jitter (small 0, large 1)"),
            dot(color="grey", markersize=6, alpha=0.35, label="opacity: saturation jitter (faint 0, solid 1)"),
            Line2D([], [], color="grey", linewidth=1.6, label="thick line: equal hue and value"),
            Line2D([], [], color="grey", linewidth=0.5, label="thin line: equal hue and saturation")]
