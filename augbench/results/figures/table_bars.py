"""Tables as bars: a paper table (ours against the paper's number) and the generic table per benchmark.

Bars always start at zero (a bar's length is its value); each bar is labelled with its mean, so
differences of a point or two stay readable without cutting the axis.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.container import BarContainer
from matplotlib.figure import Figure

from augbench.results.cells import auto_tables, paper_table
from augbench.results.figures.common import MissingRuns, PlotContext, new_figure


def _label_means(ax: Axes) -> None:
    """Write each bar's value (its mean) just past its end."""
    for bars in ax.containers:
        if isinstance(bars, BarContainer):
            ax.bar_label(bars, fmt="%.1f", padding=3, fontsize=6)


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
        values = list(data["value"]) + [p for p, _ in paper]
        _label_means(ax)
        ax.set_xlim(0.0, min(100.0, max(values) * 1.12) if values and max(values) > 0 else 100.0)
        ax.set_xlabel(col)
        ax.set_ylabel("")
    fig.suptitle(f"Table {res.id}: {res.title}", fontsize=9)
    return fig


def fig_bars(ctx: PlotContext, benchmark: str | None) -> Iterator[tuple[str, Figure]]:
    """Accuracy (and TTA accuracy) per method for each benchmark, the generic tables as bars."""
    tables = auto_tables(ctx.frame, benchmark) if not ctx.frame.empty else []
    drawn = 0
    for res in tables:
        keep = [j for j, lab in enumerate(res.column_labels) if lab.split(" ")[0] in ("acc", "tta_acc")]
        data = pd.DataFrame([(res.row_labels[i], res.column_labels[j], v) for i, line in enumerate(res.cells)
                             for j in keep for v in line[j].values], columns=["method", "metric", "value"])
        if data.empty:
            continue
        fig, axes = new_figure("bars")
        sns.barplot(data=data, x="value", y="method", hue="metric", order=res.row_labels, errorbar="sd",
                    ax=axes[0, 0], capsize=0.15, err_kws={"linewidth": 1})
        axes[0, 0].set_xlabel("accuracy (%)")
        axes[0, 0].set_ylabel("")
        _label_means(axes[0, 0])
        axes[0, 0].set_xlim(left=0.0)
        sns.move_legend(axes[0, 0], "upper left", bbox_to_anchor=(1.01, 1), title=None, fontsize=8)
        fig.suptitle(f"{res.benchmark}: mean ± sd over seeds", fontsize=10)
        drawn += 1
        yield f"bars-{res.benchmark}", fig
    if not drawn:
        raise MissingRuns(f"bars: no finished runs{' of ' + benchmark if benchmark else ''}")
