"""Figure 6: learned crops of InstaAug, InstaAug without input, and random crop, per test image.

For each method and example image: the likeliest crops drawn on the image, the density of crop
centres, and P(crop area >= t). Everything comes from each run's inspect.pt: exact candidate
probabilities ("crop_probs" with "const.candidate_boxes") where saved, else the sampled boxes
"crop_boxes" (k, S, 4) with equal weights; the images are the run's own "x". A run that saved
no crops is left out and named in the title; missing images become grey placeholders.

Each method is one run: of the configuration its table reports, the seed of median ground-truth
score (`keeps_object`, where the benchmark knows its objects; else test accuracy), by
`selection.SEED_RULE`; the column titles name the seeds and the title the rule.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import matplotlib
import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from augbench.results.figures.common import (
    CONST,
    MissingRuns,
    PlotContext,
    acc_metric,
    images,
    new_figure,
    pick_benchmark,
    show_image,
)
from augbench.results.selection import SEED_RULE, display_value, representatives

PROBS, BOXES, CANDIDATES = "crop_probs", "crop_boxes", CONST + "candidate_boxes"
METHODS = (("InstaAug", "instaaug", "lrp"), ("InstaAug w/o input", "instaaug", "input-free"),
           ("Random crop", "random-crop", ""))
TOP_BOXES = 8  # crops drawn on each image: the likeliest ones
GROUND_TRUTH = ("keeps_object",)  # of units.GROUND_TRUTH_METRICS, those that score crops: first present wins


@dataclass
class CropSource:
    """One method's crops: per example image, boxes (M, 4) and their weights (M,), plus the images."""

    label: str
    run_dir: str
    crops: list[tuple[torch.Tensor, torch.Tensor]]
    images: np.ndarray | None
    exact: bool  # weights are the candidates' probabilities (else equal weights on sampled boxes)
    seed: str = ""  # the run's seed
    shown: str = ""  # which seed this is and why (`representatives`)


def _crops(ins: dict[str, torch.Tensor], n: int) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], bool]:
    if PROBS in ins and CANDIDATES in ins:
        probs, cands = ins[PROBS].float(), ins[CANDIDATES].float()
        if probs.dim() == 2 and cands.shape == (probs.shape[1], 4):
            return [(cands, probs[i]) for i in range(min(n, probs.shape[0]))], True
    boxes = ins.get(BOXES)
    if boxes is not None and boxes.dim() == 3 and boxes.shape[-1] == 4:
        boxes = boxes.float()
        weights = torch.full((boxes.shape[1],), 1.0 / boxes.shape[1])
        return [(boxes[i], weights) for i in range(min(n, boxes.shape[0]))], False
    return [], False


def _saves_crops(ctx: PlotContext) -> Callable[[str], bool]:
    probs, boxes = ctx.holds(PROBS), ctx.holds(BOXES)
    return lambda run_dir: probs(run_dir) or boxes(run_dir)


def shown_by(df: pd.DataFrame) -> str:
    """The metric whose median seed the figure shows: a ground-truth crop score if reported, else accuracy."""
    return next((m for m in GROUND_TRUTH if m in df and df[m].notna().any()), acc_metric(df))


def crop_sources(ctx: PlotContext, bench: str, n_examples: int) -> tuple[list[CropSource], list[str]]:
    """The methods' crops on `bench` (runs chosen as in the tables) and notes on what is missing."""
    df = ctx.done[ctx.done["benchmark"] == bench]
    by = shown_by(df)  # the same for every method of the figure
    saved = _saves_crops(ctx)
    out: list[CropSource] = []
    no_crops, no_images, sampled = [], [], []
    for label, method, variant in METHODS:
        runs = df[(df["method"] == method) & (df["variant"].fillna("") == variant)]
        chosen = representatives(runs, saved, by=by)
        if chosen.empty:
            if not runs.empty:
                no_crops.append(label)
            continue
        run_dir = str(chosen["run_dir"].iloc[0])
        ins = ctx.inspect(run_dir) or {}
        crops, exact = _crops(ins, n_examples)
        if not crops:
            no_crops.append(label)
            continue
        if PROBS in ins and not exact:
            sampled.append(label)
        imgs = images(ins)
        if imgs is None:
            no_images.append(label)
        out.append(CropSource(label, run_dir, crops, imgs, exact, display_value(chosen["seed"].iloc[0]),
                              str(chosen["shown"].iloc[0])))
    notes = [f"{what}: {', '.join(labels)}" for what, labels in
             (("no crops saved", no_crops), ("sampled crops only", sampled), ("no test images saved", no_images))
             if labels]
    return out, notes


def fig6_crops(ctx: PlotContext, benchmark: str | None, n_examples: int = 3) -> Figure:
    """Per example image and method: likely crops drawn on it, crop-centre density, P(crop area >= t)."""
    def ok(df: pd.DataFrame) -> bool:
        return any(map(_saves_crops(ctx), df[df["method"] == "instaaug"]["run_dir"]))

    bench = benchmark or pick_benchmark(ctx, "tinyimagenet-crop", ok)
    if bench is None:
        raise MissingRuns(f"fig6-crops: no finished InstaAug run saved its crops (inspect.pt {PROBS}/{BOXES})")
    sources, notes = crop_sources(ctx, bench, n_examples)
    if not any(s.label.startswith("InstaAug") for s in sources):
        raise MissingRuns(f"fig6-crops: no InstaAug run of {bench} saved its crops")
    n_rows = min(n_examples, min(len(s.crops) for s in sources))
    fig, axes = new_figure("fig6-crops", n_rows, 3 * len(sources))
    thresholds = np.linspace(0, 1, 51)
    reds = matplotlib.colormaps["Reds"]
    for m, src in enumerate(sources):
        for i in range(n_rows):
            boxes, w = src.crops[i]
            ax_img, ax_den, ax_size = axes[i, 3 * m: 3 * m + 3]
            show_image(ax_img, None if src.images is None or i >= len(src.images) else src.images[i])
            wmax = float(w.max())
            for b in torch.argsort(w, descending=True)[:TOP_BOXES].tolist():
                cy, cx, h, wd = boxes[b].tolist()
                ax_img.add_patch(Rectangle((cx - wd / 2, cy - h / 2), wd, h, fill=False, linewidth=1.2,
                                           edgecolor=reds(0.3 + 0.7 * float(w[b]) / wmax)))
            ax_img.set_xlim(0, 1)
            ax_img.set_ylim(1, 0)
            hist, _, _ = np.histogram2d(boxes[:, 0].numpy(), boxes[:, 1].numpy(), bins=16, range=((0, 1), (0, 1)),
                                        weights=w.numpy())
            ax_den.imshow(hist, cmap="magma", extent=(0, 1, 1, 0))
            area = (boxes[:, 2] * boxes[:, 3]).numpy()
            above = [(w.numpy() * (area >= t)).sum() / max(w.sum().item(), 1e-12) for t in thresholds]
            ax_size.fill_between(thresholds, above, color="C3", alpha=0.6)
            ax_size.set_ylim(0, 1.02)
            ax_size.set_xlim(0, 1)
            for ax in (ax_img, ax_den):
                ax.set_xticks([])
                ax.set_yticks([])
            ax_size.tick_params(labelsize=6)
            if i == 0:
                ax_img.set_title(f"{src.label}, seed {src.seed}\ncrops", fontsize=8)
                ax_den.set_title("centre density", fontsize=8)
                ax_size.set_title("P(area ≥ t)", fontsize=8)
    note = f" ({'; '.join(notes)})" if notes else ""
    rule = SEED_RULE.format(metric=shown_by(ctx.done[ctx.done["benchmark"] == bench]))
    seeds = "; ".join(f"{s.label}: {s.shown}" for s in sources)
    fig.suptitle(f"{bench}: learned crops (Figure 6){note}\neach method one run, {rule} ({seeds})", fontsize=10)
    return fig
