"""Appendix E.1: InstaAug accuracy over the entropy bounds [Hmin, Hmax], and fixed against dynamic lambda."""

from __future__ import annotations

import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from augbench.results.figures.common import MissingRuns, PlotContext, acc_metric, new_figure, pick_benchmark
from augbench.results.paper import E1_INTERVALS, FIXED_LAMBDA_RULE, HP, paper_results
from augbench.results.selection import choose_config


def _instaaug_lrp(df: pd.DataFrame) -> pd.DataFrame:
    return df[(df["method"] == "instaaug") & (df["variant"] == "lrp")]


def fig_e1_heatmap(ctx: PlotContext, benchmark: str | None) -> Figure:
    """Mean accuracy over [Hmin, Hmax] (ours, left) and the paper's Table E.1 (right)."""
    hmin, hmax = HP["hmin"], HP["hmax"]

    def ok(df: pd.DataFrame) -> bool:
        d = _instaaug_lrp(df)
        return hmin in d and hmax in d and d[[hmin, hmax]].drop_duplicates().dropna().shape[0] > 1

    bench = benchmark or pick_benchmark(ctx, "tinyimagenet-crop", ok)
    df = _instaaug_lrp(ctx.done[ctx.done["benchmark"] == bench]) if bench else ctx.done.iloc[0:0]
    if bench is None or not ok(df):
        raise MissingRuns("E1-heatmap: no InstaAug (LRP) runs with several [Hmin, Hmax] settings")
    metric = acc_metric(df)
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
    fig, axes = new_figure("E1-heatmap", 1, 2)
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

    bench = benchmark or pick_benchmark(ctx, "tinyimagenet-crop", ok)
    done = ctx.done
    df = done[(done["benchmark"] == bench) & (done["method"] == "instaaug")] if bench else done.iloc[0:0]
    if bench is None or not ok(df):
        raise MissingRuns(f"E1-lambda: no InstaAug runs with {rule.split('.', 1)[1]}={FIXED_LAMBDA_RULE}")
    metric = acc_metric(df)
    df = df.assign(acc_pct=df[metric].astype(float) * 100)
    fixed = df[df[rule] == FIXED_LAMBDA_RULE].assign(lam=lambda d: d[lam].astype(float))
    fig, axes = new_figure("E1-lambda")
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
