"""Tables as bars: a paper table (ours against the paper's number) and the generic table per benchmark.

Bars always start at zero (a bar's length is its value); each bar is labelled with its mean, so
differences of a point or two stay readable without cutting the axis. The label sits past the end
of the bar, of its error bar and of the paper's diamond, so none hides another.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.container import BarContainer
from matplotlib.figure import Figure

from augbench.results.cells import TableResult, auto_tables, paper_table
from augbench.results.figures.common import MissingRuns, PlotContext, new_figure
from augbench.results.units import GROUND_TRUTH_METRICS

LABEL_ROOM = 0.14  # of the axis span, beyond the farthest bar end, error bar or diamond: room for the labels


def _marks(ax: Axes) -> np.ndarray:
    """(x, y) of everything drawn beside the bars: error bars and their caps, the paper's diamonds."""
    points = [line.get_xydata() for line in ax.lines]
    points += [np.asarray(c.get_offsets()) for c in ax.collections]
    if not points:
        return np.empty((0, 2))
    stacked = np.concatenate([np.asarray(p, dtype=float).reshape(-1, 2) for p in points])
    return stacked[np.isfinite(stacked).all(axis=1)]


def _label_means(ax: Axes) -> None:
    """Write each bar's value (its mean) past the end of the bar and of whatever marks its row (the error
    bar, the paper's diamond), then widen the axis so the labels stay inside it."""
    marks = _marks(ax)
    ends = [0.0]
    for bars in ax.containers:
        if not isinstance(bars, BarContainer):
            continue
        for patch, datum in zip(bars.patches, np.asarray(bars.datavalues, dtype=float)):
            value = float(datum)
            if not math.isfinite(value):
                continue
            y0, y1 = sorted((patch.get_y(), patch.get_y() + patch.get_height()))
            row = [float(x) for x in marks[(marks[:, 1] >= y0) & (marks[:, 1] <= y1), 0]]
            end = max([value, *row]) if value >= 0 else min([value, *row])
            ends.append(end)
            ax.annotate(f"{value:.1f}", (end, (y0 + y1) / 2), xytext=(3 if value >= 0 else -3, 0),
                        textcoords="offset points", ha="left" if value >= 0 else "right", va="center", fontsize=6)
    low, high = min(ends), max(ends)
    span = (high - low) or 1.0
    ax.set_xlim(low - LABEL_ROOM * span if low < 0 else 0.0, high + LABEL_ROOM * span)


def fig_table(ctx: PlotContext, table_id: str) -> Figure:
    """Bars of our mean with sd error bars per row, the paper's number as a black diamond."""
    res = paper_table(ctx.frame, table_id)
    if not any(c.status == "ok" for line in res.cells for c in line):
        raise MissingRuns(f"table-{res.id.replace('.', '')}: no finished runs of {res.benchmark} for any row of "
                          f"Table {res.id}")
    labels = list(res.row_labels)
    dup = {lab for lab in labels if labels.count(lab) > 1}
    labels = [lab + (" (" + ", ".join(f"{k} {v}" for k, v in ex.items()) + ")" if lab in dup else "")
              for lab, ex in zip(labels, res.row_extras)]
    fig, axes = new_figure(f"table-{table_id}", 1, len(res.column_labels), sharey=True)
    for j, (ax, col) in enumerate(zip(axes[0], res.column_labels)):
        data = pd.DataFrame([(labels[i], v) for i, line in enumerate(res.cells) for v in line[j].values],
                            columns=["row", "value"])
        if not data.empty:
            sns.barplot(data=data, x="value", y="row", order=labels, errorbar="sd", color="#4c72b0", ax=ax,
                        capsize=0.2, err_kws={"linewidth": 1})
        paper = [(line[j].paper_mean, i) for i, line in enumerate(res.cells) if not math.isnan(line[j].paper_mean)]
        if paper:
            ax.scatter([p for p, _ in paper], [i for _, i in paper], marker="D", color="black", s=18, zorder=3,
                       label="paper")
            ax.legend(loc="lower right", fontsize=7)
        ax.set_yticks(range(len(labels)), labels)
        _label_means(ax)
        ax.set_xlabel(col)
        ax.set_ylabel("")
    fig.suptitle(f"Table {res.id}: {res.title}", fontsize=9)
    return fig


def _panel(res: TableResult, names: tuple[str, ...]) -> pd.DataFrame:
    """(method, metric, value) of the table's columns named `names`, one row per seed."""
    keep = [j for j, lab in enumerate(res.column_labels) if lab.split(" ")[0] in names]
    return pd.DataFrame([(res.row_labels[i], res.column_labels[j], v) for i, line in enumerate(res.cells)
                         for j in keep for v in line[j].values], columns=["method", "metric", "value"])


def fig_bars(ctx: PlotContext, benchmark: str | None) -> Iterator[tuple[str, Figure]]:
    """Accuracy (and TTA accuracy) per method for each benchmark, the generic tables as bars, and
    beside it the benchmark's ground-truth metrics where it reports any: on a stand-in where every
    method is near 100% accurate, those are what separates the methods."""
    tables = auto_tables(ctx.frame, benchmark) if not ctx.frame.empty else []
    drawn = 0
    for res in tables:
        candidates = ((_panel(res, ("acc", "tta_acc")), "accuracy (%)"),
                      (_panel(res, GROUND_TRUTH_METRICS), "ground-truth and OOD metrics (%)"))
        panels = [(data, xlabel) for data, xlabel in candidates if not data.empty]
        if not panels:
            continue
        fig, axes = new_figure("bars", 1, len(panels), sharey=True)
        for ax, (data, xlabel) in zip(axes[0], panels):
            sns.barplot(data=data, x="value", y="method", hue="metric", order=res.row_labels, errorbar="sd",
                        ax=ax, capsize=0.15, err_kws={"linewidth": 1})
            ax.set_xlabel(xlabel)
            ax.set_ylabel("")
            _label_means(ax)  # gains over chance can be negative: shown left of a zero line
            if float(data["value"].min()) < 0:
                ax.axvline(0.0, color="grey", linewidth=0.8)
            sns.move_legend(ax, "upper center", bbox_to_anchor=(0.5, -0.1), title=None, fontsize=7,
                            ncol=2, frameon=False)
        fig.suptitle(f"{res.benchmark}: mean ± sd over seeds", fontsize=10)
        drawn += 1
        yield f"bars-{res.benchmark}", fig
    if not drawn:
        raise MissingRuns(f"bars: no finished runs{' of ' + benchmark if benchmark else ''}")
