"""Learned ranges per class on data without ground truth (a user's own tree): which classes get wide ones?

A folder benchmark knows no label-preserving interval for any image, so Figure 5's comparison
cannot be drawn; what can be read is whether a learned method treats the classes differently.
From each run's inspect.pt (the first test images, interleaved by class, with labels "y"), one
panel per quantity the runs saved, x = class, one series per method: the class mean of

- the rotation range's width (degrees, "rotation_range"),
- the hue, saturation and value ranges' widths (turns and fractions, "<channel>_range"),
- the sampled crops' area (fraction of the image, "crop_boxes"),

with the spread over the class's images as an error bar. Each series is one run: of the
configuration its table reports, the lowest seed (`selection.representatives`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from matplotlib.figure import Figure

from augbench.results.figures.common import Inspect, MissingRuns, PlotContext, new_figure, run_label
from augbench.results.selection import representatives

LABELS = "y"


def _width(key: str, scale: float = 1.0) -> Callable[[Inspect], torch.Tensor | None]:
    def get(ins: Inspect) -> torch.Tensor | None:
        r = ins.get(key)
        return None if r is None else (r[:, 1] - r[:, 0]).float() * scale
    return get


def _area(ins: Inspect) -> torch.Tensor | None:
    boxes = ins.get("crop_boxes")  # (k, S, 4): center_y, center_x, height, width
    return None if boxes is None else (boxes[..., 2] * boxes[..., 3]).float().mean(-1)


#: quantity label -> per-sample values from inspect.pt
QUANTITIES: dict[str, Callable[[Inspect], torch.Tensor | None]] = {
    "rotation range width (deg)": _width("rotation_range", 180.0 / math.pi),
    "hue range width (turns)": _width("hue_range"),
    "saturation range width": _width("saturation_range"),
    "value range width": _width("value_range"),
    "crop area (fraction of the image)": _area,
}


def _has_ranges(ins: Inspect | None) -> bool:
    return ins is not None and LABELS in ins and any(get(ins) is not None for get in QUANTITIES.values())


def fig_class_ranges(ctx: PlotContext, benchmark: str | None) -> Figure:
    """Per-class mean learned ranges (one panel per quantity, one series per method) of one benchmark."""
    usable = ctx.done[[_has_ranges(ctx.inspect(str(d))) for d in ctx.done["run_dir"]]] if not ctx.done.empty \
        else ctx.done
    names = sorted(set(usable["benchmark"])) if not usable.empty else []
    if benchmark is not None:
        names = [b for b in names if b == benchmark]
    if not names:
        where = f" of {benchmark}" if benchmark else ""
        raise MissingRuns(f"class-ranges: no finished run{where} saved per-sample ranges with labels (inspect.pt)")
    bench = names[0]
    runs = representatives(usable[usable["benchmark"] == bench])
    series = []  # (label, {quantity: (classes, means, stds)}, shown)
    for r in runs.itertuples():
        ins = ctx.inspect(r.run_dir) or {}
        y = ins[LABELS].long()
        stats = {}
        for quantity, get in QUANTITIES.items():
            values = get(ins)
            if values is None:
                continue
            labels = y[: len(values)]
            present = torch.unique(labels)
            means = torch.stack([values[labels == c].mean() for c in present])
            stds = torch.stack([values[labels == c].std(unbiased=False) for c in present])
            stats[quantity] = (present.numpy(), means.numpy(), stds.numpy())
        series.append((run_label(r.method, r.variant), stats, r.shown))
    shown = [q for q in QUANTITIES if any(q in s for _, s, _ in series)]
    fig, axes = new_figure("class-ranges", 1, len(shown))
    for ax, quantity in zip(axes[0], shown):
        members = [(label, s[quantity]) for label, s, _ in series if quantity in s]
        for i, (label, (xs, ys, errs)) in enumerate(members):
            offset = (i - (len(members) - 1) / 2) * 0.8 / max(len(members), 1)
            ax.errorbar(xs + offset, ys, yerr=errs, fmt="o", markersize=4, capsize=2, label=label)
        ax.set_xlabel("class")
        ax.set_xticks(sorted({int(c) for _, (xs, _, _) in members for c in xs}))
        ax.set_title(quantity, fontsize=9)
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=7)  # each panel its own: the methods that report its quantity differ
    fig.suptitle(f"{bench}: learned ranges per class (class mean; bar: standard deviation over its test "
                 f"images)\neach series one run: the lowest seed of the configuration its table reports",
                 fontsize=9)
    return fig
