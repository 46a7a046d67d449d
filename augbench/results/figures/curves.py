"""Training curves per benchmark: validation and training accuracy, entropy and lambda per epoch."""

from __future__ import annotations

from collections.abc import Iterator

import seaborn as sns
from matplotlib.figure import Figure

from augbench.results.figures.common import MissingRuns, PlotContext, new_figure, run_label

LAMBDA_METRICS = ("lambda", "lam")


def fig_curves(ctx: PlotContext, benchmark: str | None) -> Iterator[tuple[str, Figure]]:
    """Per benchmark: validation accuracy, entropy and lambda per epoch, one line per run."""
    frame = ctx.frame[ctx.frame["split"].isin(["train", "val"])] if not ctx.frame.empty else ctx.frame
    benches = [benchmark] if benchmark else sorted(frame["benchmark"].dropna().unique()) if not frame.empty else []
    drawn = 0
    for bench in benches:
        df = frame[frame["benchmark"] == bench]
        df = df.assign(label=[run_label(m, v) for m, v in zip(df["method"], df["variant"])])
        labels = sorted(df["label"].unique())
        palette = dict(zip(labels, sns.color_palette(n_colors=len(labels))))
        panels = []
        for split, metric, title in (("val", "acc", "validation accuracy"), ("train", "acc", "training accuracy")):
            d = df[df["split"] == split]
            if metric in d and d[metric].notna().any():
                panels.append((d, metric, title))
        entropy_split = "val" if "entropy" in df and df[df["split"] == "val"]["entropy"].notna().any() else "train"
        d = df[df["split"] == entropy_split]
        if "entropy" in d and d["entropy"].notna().any():
            panels.append((d, "entropy", f"entropy ({entropy_split})"))
        for name in LAMBDA_METRICS:
            if name in df and df[name].notna().any():
                panels.append((df[df[name].notna()].drop_duplicates(["run_id", "epoch"], keep="last"), name, "λ"))
                break
        if not panels:
            continue
        fig, axes = new_figure("curves", 1, len(panels))
        for ax, (d, metric, title) in zip(axes[0], panels):
            d = d[d[metric].notna()].astype({metric: float})
            sns.lineplot(data=d, x="epoch", y=metric, hue="label", hue_order=labels, palette=palette, units="run_id",
                         estimator=None, ax=ax, linewidth=1, legend=ax is axes[0, 0])
            ax.set_title(title, fontsize=9)
        if axes[0, 0].get_legend() is not None:
            sns.move_legend(axes[0, 0], "best", fontsize=7, title=None)
        fig.suptitle(f"{bench}: training curves per run", fontsize=10)
        drawn += 1
        yield f"curves-{bench}", fig
    if not drawn:
        raise MissingRuns(f"curves: no training or validation records{' of ' + benchmark if benchmark else ''}")
