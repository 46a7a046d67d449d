"""Figures from collected runs (seaborn on the Agg backend), each written as PNG and PDF.

Figures (`FIGURES`):
- `table-<id>`: our accuracy per row of a paper table (bars: mean, error bars: sd over seeds)
  with the paper's number as a marker, one panel per column group.
- `bars`: every method of every benchmark in the folder (the generic tables as bars).
- `E1-heatmap`: InstaAug accuracy over [Hmin, Hmax] next to the paper's Table E.1.
- `E1-lambda`: accuracy with a fixed lambda against the dynamic rule (Figure E.1).
- `fig5-rotation`: learned per-instance rotation ranges against each instance's true
  label-preserving interval (Figure 5), from `inspect.pt` ("rotation_range") and the glyph test
  split's "interval" (recomputed from the benchmark when inspect does not hold it).
- `fig6-crops`: sampled crops, crop-centre densities and crop-size distributions for InstaAug,
  InstaAug w/o input and random crop (Figure 6), from "crop_probs" and the candidate boxes.
- `fig7-id-ood`: in- vs out-of-distribution accuracy with the random-colour sweep as points (Figure 7).
- `curves`: training curves per run (accuracy, entropy, lambda) for each benchmark.

A figure whose runs are missing raises `MissingRuns` with one line saying what is missing;
`render_all` reports it and goes on. Sizes are fixed per figure (`FIGSIZE` at `DPI`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from augbench.errors import AugbenchError  # noqa: E402
from augbench.results import records as rec  # noqa: E402
from augbench.results.paper import E1_INTERVALS, FIXED_LAMBDA_RULE, HP, TABLES, paper_results  # noqa: E402
from augbench.results.tables import auto_tables, choose_config, finished_runs, paper_table  # noqa: E402

DPI = 100
FIGSIZE: dict[str, tuple[float, float]] = {
    "table": (8.0, 5.0), "bars": (8.0, 4.5), "E1-heatmap": (11.0, 4.5), "E1-lambda": (6.0, 4.0),
    "fig5-rotation": (12.0, 4.0), "fig6-crops": (18.0, 6.5), "fig7-id-ood": (7.0, 5.5), "curves": (12.0, 3.6),
}
INSPECT = "inspect.pt"  # written by the trainer next to the records
LAMBDA_METRICS = ("lambda", "lam")
ID_OOD_PAIRS = (("tta_acc_easy", "tta_acc_hard"), ("acc_easy", "acc_hard"), ("tta_acc_id", "tta_acc_ood"),
                ("acc_id", "acc_ood"))


class MissingRuns(AugbenchError):
    """A figure cannot be drawn because the runs (or their files) it needs are not there."""


@dataclass
class PlotContext:
    """What every figure builder reads: the collected frame, finished runs, and the results folder."""

    frame: pd.DataFrame
    root: Path

    def __post_init__(self) -> None:
        self.done = finished_runs(self.frame)
        self._inspect: dict[str, dict[str, torch.Tensor] | None] = {}

    def config(self, run_dir: str) -> dict[str, Any]:
        """The run's config.json (full settings, unlike the frame's identity-only `set.*`)."""
        return rec.read_json(self.root / run_dir / rec.CONFIG) or {}

    def inspect(self, run_dir: str) -> dict[str, torch.Tensor] | None:
        """The run's inspect.pt (per-sample distribution parameters of the first test samples), or None."""
        if run_dir not in self._inspect:
            path = self.root / run_dir / INSPECT
            try:
                self._inspect[run_dir] = torch.load(path, map_location="cpu", weights_only=True) \
                    if path.exists() else None
            except Exception:  # noqa: BLE001  (a corrupt file counts as a missing one)
                self._inspect[run_dir] = None
        return self._inspect[run_dir]


def _label(method: str, variant: Any) -> str:
    return f"{method} ({variant})" if isinstance(variant, str) and variant else method


def _new(name: str, nrows: int = 1, ncols: int = 1, **kw: Any) -> tuple[Figure, Any]:
    key = "table" if name.startswith("table-") else name
    fig, axes = plt.subplots(nrows, ncols, figsize=FIGSIZE[key], dpi=DPI, layout="constrained", squeeze=False, **kw)
    return fig, axes


# ---------------------------------------------------------------------------------------------- tables
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
    fig, axes = _new(f"table-{table_id}", 1, len(res.column_labels), sharey=True)
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
        if values:
            lo, hi = min(values), max(values)
            ax.set_xlim(max(0.0, lo - 0.15 * (hi - lo) - 2), min(100.0, hi + 0.1 * (hi - lo) + 2))
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
        fig, axes = _new("bars")
        sns.barplot(data=data, x="value", y="method", hue="metric", order=res.row_labels, errorbar="sd",
                    ax=axes[0, 0], capsize=0.15, err_kws={"linewidth": 1})
        axes[0, 0].set_xlabel("accuracy (%)")
        axes[0, 0].set_ylabel("")
        sns.move_legend(axes[0, 0], "upper left", bbox_to_anchor=(1.01, 1), title=None, fontsize=8)
        fig.suptitle(f"{res.benchmark}: mean ± sd over seeds", fontsize=10)
        drawn += 1
        yield f"bars-{res.benchmark}", fig
    if not drawn:
        raise MissingRuns(f"bars: no finished runs{' of ' + benchmark if benchmark else ''}")


# ---------------------------------------------------------------------------------------------- E.1
def _pick_benchmark(ctx: PlotContext, default: str, ok: Callable[[pd.DataFrame], bool]) -> str | None:
    """The paper's benchmark if its runs qualify, else the first benchmark (sorted) whose runs do."""
    names = [default] + sorted(set(ctx.done["benchmark"]) - {default}) if not ctx.done.empty else []
    for name in names:
        if ok(ctx.done[ctx.done["benchmark"] == name]):
            return name
    return None


def _instaaug(df: pd.DataFrame) -> pd.DataFrame:
    return df[(df["method"] == "instaaug") & (df["variant"] == "lrp")]


def _acc_metric(df: pd.DataFrame) -> str:
    return "tta_acc" if "tta_acc" in df and df["tta_acc"].notna().any() else "acc"


def fig_e1_heatmap(ctx: PlotContext, benchmark: str | None) -> Figure:
    """Mean accuracy over [Hmin, Hmax] (ours, left) and the paper's Table E.1 (right)."""
    hmin, hmax = HP["hmin"], HP["hmax"]

    def ok(df: pd.DataFrame) -> bool:
        d = _instaaug(df)
        return hmin in d and hmax in d and d[[hmin, hmax]].drop_duplicates().dropna().shape[0] > 1

    bench = benchmark or _pick_benchmark(ctx, "tinyimagenet-crop", ok)
    df = _instaaug(ctx.done[ctx.done["benchmark"] == bench]) if bench else ctx.done.iloc[0:0]
    if bench is None or not ok(df):
        raise MissingRuns("E1-heatmap: no InstaAug (LRP) runs with several [Hmin, Hmax] settings")
    metric = _acc_metric(df)
    rule = HP["lambda_rule"]
    if rule in df:  # the dynamic rule only: fixed-lambda runs are Figure E.1's other curve
        df = df[df[rule].fillna("") != FIXED_LAMBDA_RULE]
    ours = df.assign(v=df[metric].astype(float) * 100).pivot_table(index=hmin, columns=hmax, values="v", aggfunc="mean")
    table = paper_results().set_index(["table", "setting"])["mean"]
    paper = pd.DataFrame([(lo, hi, table[("E.1", f"hmin={lo:.1f};hmax={hi:.1f}")]) for lo, hi in E1_INTERVALS],
                         columns=["Hmin", "Hmax", "acc"]).pivot_table(index="Hmin", columns="Hmax", values="acc")
    rows = sorted(set(ours.index) | set(paper.index))
    cols = sorted(set(ours.columns) | set(paper.columns))
    lo, hi = min(ours.min().min(), paper.min().min()), max(ours.max().max(), paper.max().max())
    fig, axes = _new("E1-heatmap", 1, 2)
    panels = ((ours, f"ours: {bench}, {metric} (%)"), (paper, "paper: Tiny-ImageNet, Table E.1 (%)"))
    for ax, (data, title) in zip(axes[0], panels):
        data = data.reindex(index=rows, columns=cols)
        sns.heatmap(data, annot=True, fmt=".1f", cmap="viridis", vmin=lo, vmax=hi, ax=ax, cbar=True,
                    annot_kws={"fontsize": 7})
        ax.grid(False)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("Hmax")
        ax.set_ylabel("Hmin")
    return fig


def fig_e1_lambda(ctx: PlotContext, benchmark: str | None) -> Figure:
    """Accuracy against a fixed lambda, with the dynamic rule's mean ± sd as a band (Figure E.1)."""
    rule, lam = HP["lambda_rule"], HP["lam0"]

    def ok(df: pd.DataFrame) -> bool:
        d = df[df["method"] == "instaaug"]
        return rule in d and lam in d and (d[rule] == FIXED_LAMBDA_RULE).any()

    bench = benchmark or _pick_benchmark(ctx, "tinyimagenet-crop", ok)
    done = ctx.done
    df = done[(done["benchmark"] == bench) & (done["method"] == "instaaug")] if bench else done.iloc[0:0]
    if bench is None or not ok(df):
        raise MissingRuns(f"E1-lambda: no InstaAug runs with {rule.split('.', 1)[1]}={FIXED_LAMBDA_RULE}")
    metric = _acc_metric(df)
    df = df.assign(acc_pct=df[metric].astype(float) * 100)
    fixed = df[df[rule] == FIXED_LAMBDA_RULE].assign(lam=lambda d: d[lam].astype(float))
    fig, axes = _new("E1-lambda")
    ax = axes[0, 0]
    sns.lineplot(data=fixed, x="lam", y="acc_pct", marker="o", errorbar="sd", ax=ax, label="fixed λ")
    dynamic = df[df[rule] != FIXED_LAMBDA_RULE]
    dynamic = choose_config(dynamic)[0]["acc_pct"] if len(dynamic) else dynamic["acc_pct"]
    if len(dynamic):
        m, s = dynamic.mean(), (dynamic.std(ddof=1) if len(dynamic) > 1 else 0.0)
        ax.axhline(m, color="C3", label="dynamic λ (InstaAug)")
        ax.axhspan(m - s, m + s, color="C3", alpha=0.15)
    ax.set_xlabel("λ")
    ax.set_ylabel(f"test {metric} (%)")
    ax.set_title(f"{bench}: fixed vs dynamic λ", fontsize=10)
    ax.legend(fontsize=8)
    return fig


# ---------------------------------------------------------------------------------------------- Figure 5
def representatives(ctx: PlotContext, df: pd.DataFrame, needs: tuple[str, ...] = ()) -> pd.DataFrame:
    """One finished run per (method, variant): of the configuration chosen by validation (as in the
    tables), the lowest seed whose inspect.pt holds one of `needs` (any run if `needs` is empty)."""
    out = []
    for _, group in df.groupby(["method", "variant"], sort=True, dropna=False):
        chosen = choose_config(group)[0]
        chosen = chosen.sort_values(["seed", "run_id"])
        for r in chosen.itertuples():
            ins = ctx.inspect(r.run_dir) if needs else None
            if not needs or (ins is not None and any(k in ins for k in needs)):
                out.append(r.Index)
                break
    return df.loc[out]


def _load_split(ctx: PlotContext, run_dir: str, n: int) -> Any:
    """The benchmark's test split of a run (its own settings), or None with the reason."""
    from augbench.benchmarks import create_benchmark

    cfg = ctx.config(run_dir)
    try:
        bench = create_benchmark(cfg["benchmark"], cfg.get("settings") or {})
        return bench.load().test.subset(torch.arange(n)), None
    except Exception as exc:  # noqa: BLE001  (unavailable data must not stop a figure)
        return None, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


def fig5_rotation(ctx: PlotContext, benchmark: str | None, max_instances: int = 64) -> Figure:
    """Learned rotation range per test instance (bars) inside its true label-preserving interval (band)."""
    def ok(df: pd.DataFrame) -> bool:
        return any(ctx.inspect(r) is not None and "rotation_range" in ctx.inspect(r) for r in df["run_dir"])

    bench = benchmark or _pick_benchmark(ctx, "glyphs-rotation", ok)
    if bench is None:
        raise MissingRuns("fig5-rotation: no finished run saved per-instance rotation ranges (inspect.pt)")
    panels = []
    for r in representatives(ctx, ctx.done[ctx.done["benchmark"] == bench], ("rotation_range",)).itertuples():
        ins = ctx.inspect(r.run_dir)
        if ins is None or "rotation_range" not in ins:
            continue
        learned = ins["rotation_range"].float()[:max_instances]
        true = ins.get("interval")
        if true is None:
            split, why = _load_split(ctx, r.run_dir, len(learned))
            if split is None or "interval" not in split.meta:
                raise MissingRuns(f"fig5-rotation: true intervals of {bench} unavailable ({why or 'no interval meta'})")
            true = split.meta["interval"]
        panels.append((_label(r.method, r.variant), learned, true.float()[: len(learned)],
                       getattr(r, "coverage", float("nan")), getattr(r, "violation", float("nan"))))
    if not panels:
        raise MissingRuns(f"fig5-rotation: no run of {bench} saved rotation ranges")
    fig, axes = _new("fig5-rotation", 1, len(panels), sharey=True)
    for ax, (label, learned, true, cov, vio) in zip(axes[0], panels):
        a = -(true[:, 0] + true[:, 1]) / 2  # the instance's own rotation (interval is (-pi/2 - a, pi/2 - a))
        order = torch.argsort(a)
        a, true, learned = (torch.rad2deg(t[order]).numpy() for t in (a, true, learned))
        ax.fill_between(a, true[:, 0], true[:, 1], color="C0", alpha=0.2, label="label-preserving")
        ax.vlines(a, learned[:, 0], learned[:, 1], color="C2", linewidth=1.5, label="learned range")
        ax.axhline(0, color="grey", linewidth=0.5)
        title = label if math.isnan(cov) else f"{label}\ncoverage {100 * cov:.0f}%, violation {100 * vio:.0f}%"
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("instance rotation a (deg)")
    axes[0, 0].set_ylabel("rotation applied (deg)")
    axes[0, 0].legend(fontsize=7, loc="lower left")
    fig.suptitle(f"{bench}: learned per-instance rotation ranges (Figure 5)", fontsize=10)
    return fig


# ---------------------------------------------------------------------------------------------- Figure 6
def candidate_boxes(ctx: PlotContext, run_dir: str) -> torch.Tensor | None:
    """(K, 4) LRP candidate boxes of a run's method, rebuilt from its config, or None.

    Looks for a `candidate_boxes` attribute, else any submodule holding an LRP `CandidateSet`
    (`.candidates.boxes`); boxes are (center_y, center_x, height, width) as fractions.
    """
    from augbench.benchmarks import create_benchmark
    from augbench.methods import MethodContext, create_method

    cfg = ctx.config(run_dir)
    try:
        bench = create_benchmark(cfg["benchmark"], cfg.get("settings") or {})
        data = bench.load()
        method = create_method(cfg["method"], MethodContext(data.num_classes, data.image_shape,
                                                            frozenset({bench.family})), **(cfg.get("hparams") or {}))
    except Exception:  # noqa: BLE001  (data or method unavailable here: the caller falls back)
        return None
    found = getattr(method, "candidate_boxes", None)
    if callable(found):
        found = found()
    if found is None:
        found = next((m.candidates.boxes for m in method.modules()
                      if hasattr(getattr(m, "candidates", None), "boxes")), None)
    return None if found is None else torch.as_tensor(found).detach().float().cpu()


CropSource = tuple[str, str, list[tuple[torch.Tensor, torch.Tensor]]]


def _crop_sources(ctx: PlotContext, bench: str, n_examples: int, n_random: int) -> list[CropSource]:
    """(label, run_dir, [(boxes (M, 4), weights (M,)) per example]) for InstaAug, w/o input, random crop.

    Exact candidate probabilities ("crop_probs" with the LRP candidates) where available, else the
    sampled boxes of inspect's "crop_boxes" (B, S, 4), else (random crop) boxes drawn from its
    hyperparameters.
    """
    from augbench.methods.random_crop import sample_resized_crop_boxes

    df = ctx.done[ctx.done["benchmark"] == bench]
    out: list[CropSource] = []
    for label, method, variant in (("InstaAug", "instaaug", "lrp"), ("InstaAug w/o input", "instaaug", "input-free"),
                                   ("Random crop", "random-crop", "")):
        runs = representatives(ctx, df[(df["method"] == method) & (df["variant"].fillna("") == variant)],
                               () if method == "random-crop" else ("crop_probs", "crop_boxes"))
        if runs.empty:
            continue
        run_dir = runs["run_dir"].iloc[0]
        ins = ctx.inspect(run_dir) or {}
        per: list[tuple[torch.Tensor, torch.Tensor]] = []
        if "crop_probs" in ins:
            probs = ins["crop_probs"].float()
            cands = candidate_boxes(ctx, run_dir)
            if cands is not None and cands.shape == (probs.shape[1], 4):
                per = [(cands, probs[i]) for i in range(min(n_examples, probs.shape[0]))]
        if not per and "crop_boxes" in ins and ins["crop_boxes"].dim() == 3:
            boxes = ins["crop_boxes"].float()
            per = [(boxes[i], torch.full((boxes.shape[1],), 1.0 / boxes.shape[1]))
                   for i in range(min(n_examples, boxes.shape[0]))]
        if not per and method == "random-crop":
            hp = ctx.config(run_dir).get("hparams") or {}
            gen = torch.Generator().manual_seed(0)
            for _ in range(n_examples):
                cy, cx, h, w = sample_resized_crop_boxes(
                    n_random, (64, 64), (hp.get("scale_min", 0.08), hp.get("scale_max", 1.0)),
                    (hp.get("ratio_min", 0.75), hp.get("ratio_max", 4 / 3)), torch.device("cpu"), generator=gen)
                per.append((torch.stack([cy, cx, h, w], -1), torch.full((n_random,), 1.0 / n_random)))
        if per:
            out.append((label, run_dir, per))
    return out


def fig6_crops(ctx: PlotContext, benchmark: str | None, n_examples: int = 3, n_random: int = 2000) -> Figure:
    """Per example image and method: likely crops drawn on it, crop-centre density, P(crop area >= t)."""
    def ok(df: pd.DataFrame) -> bool:
        return any((ins := ctx.inspect(r)) is not None and ("crop_probs" in ins or "crop_boxes" in ins)
                   for r in df[df["method"] == "instaaug"]["run_dir"])

    bench = benchmark or _pick_benchmark(ctx, "tinyimagenet-crop", ok)
    if bench is None:
        raise MissingRuns("fig6-crops: no finished InstaAug run saved its crops (inspect.pt crop_probs/crop_boxes)")
    sources = _crop_sources(ctx, bench, n_examples, n_random)
    if not any(lab.startswith("InstaAug") for lab, _, _ in sources):
        raise MissingRuns(f"fig6-crops: no InstaAug run of {bench} saved its crops")
    n_rows = min(n_examples, min(len(per) for _, _, per in sources))
    split, why = _load_split(ctx, sources[0][1], n_rows)
    images = None if split is None else split.x.permute(0, 2, 3, 1).numpy()
    fig, axes = _new("fig6-crops", n_rows, 3 * len(sources))
    thresholds = np.linspace(0, 1, 51)
    for m, (label, _, per) in enumerate(sources):
        for i in range(n_rows):
            boxes, w = per[i]
            ax_img, ax_den, ax_size = axes[i, 3 * m: 3 * m + 3]
            if images is not None:
                ax_img.imshow(images[i], extent=(0, 1, 1, 0))
            else:
                ax_img.imshow(np.full((8, 8), 0.8), cmap="gray", vmin=0, vmax=1, extent=(0, 1, 1, 0))
            top = torch.argsort(w, descending=True)[:8]
            wmax = float(w.max())
            for b in top.tolist():
                cy, cx, h, wd = boxes[b].tolist()
                ax_img.add_patch(Rectangle((cx - wd / 2, cy - h / 2), wd, h, fill=False, linewidth=1.2,
                                           edgecolor=plt.cm.Reds(0.3 + 0.7 * float(w[b]) / wmax)))
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
                ax_img.set_title(f"{label}\ncrops", fontsize=8)
                ax_den.set_title("centre density", fontsize=8)
                ax_size.set_title("P(area ≥ t)", fontsize=8)
    note = "" if images is not None else f" (test images unavailable: {why})"
    fig.suptitle(f"{bench}: learned crops (Figure 6){note}", fontsize=10)
    return fig


# ---------------------------------------------------------------------------------------------- Figure 7
def _id_ood_pair(df: pd.DataFrame) -> tuple[str, str] | None:
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
    bench = benchmark or _pick_benchmark(ctx, "rawfoot-color", lambda d: _id_ood_pair(d) is not None)
    df = ctx.done[ctx.done["benchmark"] == bench] if bench else ctx.done.iloc[0:0]
    pair = _id_ood_pair(df) if bench else None
    if pair is None:
        raise MissingRuns("fig7-id-ood: no finished runs with in- and out-of-distribution accuracies")
    x, y = pair
    df = df.assign(x=df[x].astype(float) * 100, y=df[y].astype(float) * 100)
    fig, axes = _new("fig7-id-ood")
    ax = axes[0, 0]
    hue, sat, val = HP["hue"], HP["saturation"], HP["value"]
    sweep = df[df["method"] == "random-color"]
    if not sweep.empty and all(c in sweep for c in (hue, sat, val)):
        pts = sweep.groupby([hue, sat, val], as_index=False)[["x", "y"]].mean()
        for keys, style in (([hue, val], dict(linewidth=1.6)), ([hue, sat], dict(linewidth=0.5))):
            for _, g in pts.groupby(keys):
                g = g.sort_values(sat if sat not in keys else val)
                ax.plot(g["x"], g["y"], color=plt.cm.YlOrRd(0.25 + 1.5 * float(g[hue].iloc[0])), alpha=0.6, **style)
        for h, s, v, px, py in pts[[hue, sat, val, "x", "y"]].astype(float).itertuples(index=False, name=None):
            ax.scatter(px, py, s=15 + 60 * v, color=plt.cm.YlOrRd(0.25 + 1.5 * h), alpha=0.35 + 0.65 * min(s, 1.0),
                       edgecolor="none")
        ax.scatter([], [], color=plt.cm.YlOrRd(0.5), label="random colour (sweep)")
    others = df[df["method"] != "random-color"]
    for i, ((method, variant), g) in enumerate(others.groupby(["method", "variant"], dropna=False)):
        ax.errorbar(g["x"].mean(), g["y"].mean(), xerr=g["x"].std(ddof=1) if len(g) > 1 else None,
                    yerr=g["y"].std(ddof=1) if len(g) > 1 else None, fmt="s", markersize=8, capsize=3,
                    color=f"C{i % 10}", label=_label(method, variant))
    ax.set_xlabel(f"in-distribution {x} (%)")
    ax.set_ylabel(f"out-of-distribution {y} (%)")
    ax.legend(fontsize=7)
    ax.set_title(f"{bench}: in- vs out-of-distribution (Figure 7)", fontsize=10)
    return fig


# ---------------------------------------------------------------------------------------------- curves
def fig_curves(ctx: PlotContext, benchmark: str | None) -> Iterator[tuple[str, Figure]]:
    """Per benchmark: validation accuracy, entropy and lambda per epoch, one line per run."""
    frame = ctx.frame[ctx.frame["split"].isin(["train", "val"])] if not ctx.frame.empty else ctx.frame
    benches = [benchmark] if benchmark else sorted(frame["benchmark"].dropna().unique()) if not frame.empty else []
    drawn = 0
    for bench in benches:
        df = frame[frame["benchmark"] == bench]
        df = df.assign(label=[_label(m, v) for m, v in zip(df["method"], df["variant"])])
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
        fig, axes = _new("curves", 1, len(panels))
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


# ---------------------------------------------------------------------------------------------- registry
Builder = Callable[[PlotContext, "str | None"], Iterator[tuple[str, Figure]]]  # yields (file name, figure)


def _one(builder: Callable[..., Figure], name: str) -> Builder:
    def run(ctx: PlotContext, benchmark: str | None) -> Iterator[tuple[str, Figure]]:
        yield name, builder(ctx, benchmark)
    return run


def _table(table_id: str) -> Builder:
    def run(ctx: PlotContext, benchmark: str | None) -> Iterator[tuple[str, Figure]]:
        yield f"table-{table_id.replace('.', '')}", fig_table(ctx, table_id)
    return run


FIGURES: dict[str, Builder] = {
    **{f"table-{t.replace('.', '')}": _table(t) for t in TABLES},
    "bars": fig_bars,
    "E1-heatmap": _one(fig_e1_heatmap, "E1-heatmap"),
    "E1-lambda": _one(fig_e1_lambda, "E1-lambda"),
    "fig5-rotation": _one(fig5_rotation, "fig5-rotation"),
    "fig6-crops": _one(fig6_crops, "fig6-crops"),
    "fig7-id-ood": _one(fig7_id_ood, "fig7-id-ood"),
    "curves": fig_curves,
}


def save(fig: Figure, out_dir: Path, name: str) -> list[Path]:
    """`name`.png and `name`.pdf at the figure's fixed size (no tight bbox: sizes stay as declared)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{name}.png", out_dir / f"{name}.pdf"]
    for p in paths:
        fig.savefig(p, dpi=DPI)
    plt.close(fig)
    return paths


def render(name: str, frame: pd.DataFrame, root: Path | str, out_dir: Path | str,
           benchmark: str | None = None) -> list[Path]:
    """Write one figure (or a family, e.g. curves per benchmark); MissingRuns if its runs are absent."""
    from augbench.errors import ConfigError

    if name not in FIGURES:
        raise ConfigError(f"unknown figure {name!r}; valid: {', '.join(FIGURES)}, all")
    ctx = PlotContext(frame, Path(root))
    paths: list[Path] = []
    with sns.axes_style("whitegrid"):
        for fig_name, fig in FIGURES[name](ctx, benchmark):
            paths += save(fig, Path(out_dir), fig_name)
    return paths


def render_all(frame: pd.DataFrame, root: Path | str, out_dir: Path | str, report: Callable[[str], None],
               benchmark: str | None = None, names: list[str] | None = None) -> list[Path]:
    """Every figure that its runs allow; each missing one is reported in one line."""
    paths: list[Path] = []
    for name in names or list(FIGURES):
        try:
            paths += render(name, frame, root, out_dir, benchmark)
        except MissingRuns as exc:
            report(str(exc))
        finally:
            plt.close("all")
    return paths
