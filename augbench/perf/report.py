"""The text report of `augbench bench`: the headline columns per method and the targets' verdicts."""

from __future__ import annotations

import math

import pandas as pd

from augbench.numformat import format_number
from augbench.perf.bench import TARGETS, check_targets, row_label

#: (column, heading, number format); the method column is its label
DISPLAY: list[tuple[str, str, str]] = [
    ("method", "method", ""),
    ("augment_img_s", "aug img/s", ",.0f"),
    ("augment_own_pct", "aug %step", ".1f"),
    ("augment_required_pct", "req %step", ".1f"),
    ("step_ms", "step ms", ".1f"),
    ("step_x_none", "x none", ".2f"),
    ("step_x_crop", "x crop", ".2f"),
    ("step_x_public", "x public", ".2f"),
    ("tta_ms", "tta ms", ".1f"),
    ("tta_x_none", "x none", ".2f"),
    ("tta_x_plain", "x plain", ".2f"),
    ("tta_own_x_plain", "own x plain", ".2f"),
    ("step_mem_mb", "step MB", ".1f"),
    ("mem_x_none", "x none", ".2f"),
    ("mem_x_crop", "x crop", ".2f"),
]


def format_table(df: pd.DataFrame) -> str:
    """The headline columns of the measured methods, one line per method."""
    ok = df[df["status"] == "ok"]
    shown = [d for d in DISPLAY if d[0] != "step_x_public" or ok[d[0]].notna().any()]
    cells = [[row_label(row) if col == "method" else format_number(row[col], f, "-") for col, _, f in shown]
             for _, row in ok.iterrows()]
    return pd.DataFrame(cells, columns=[head for _, head, _ in shown]).to_string(index=False)


def format_report(df: pd.DataFrame) -> str:
    """Header, table, skipped/failed methods and the issue's targets, as printed by `augbench bench`."""
    first = df.iloc[0]
    lines = [
        f"config {first['config']} on {first['benchmark']}: {first.get('model', '?')}, batch {first['batch_size']}, "
        f"{first['image_size']}x{first['image_size']}, TTA {first['tta_views']} views x {first['tta_batch']} images",
        f"device {first['device']} ({first['device_name']}, {first['threads']} threads), torch {first['torch']}, "
        f"{first.get('clock', 'wall')} clock, median of {first['reps']} rounds (ratios: median of per-round ratios)",
    ]
    sources = sorted({s for s in df["mem_source"] if s})
    if sources:
        lines.append("peak memory above the start of an untimed call: " + "; ".join(sources))
    lines.append("x none / x crop: cost relative to none / random-crop; aug %step, req %step: augmentation "
                 "(own work / required feature pass) as % of the none training step; x plain: TTA over as many "
                 "plain forwards of the same classifier, own x plain: without the feature passes it requires")
    if "system" in df and (df["system"] == "public").any():
        lines.append("[public code]: InstaAug's training step as the public code runs it (two classifier passes, "
                     "the second in eval mode backpropagating through the classifier); x public: augbench's step "
                     "over it")
    if (df["status"] == "ok").any():
        lines += ["", format_table(df)]
    others = df[df["status"] != "ok"]
    if len(others):
        lines.append("")
        lines += [f"{r['status']}: {row_label(r)} ({r['note']})" for _, r in others.iterrows()]
    targets = check_targets(df, TARGETS)
    if len(targets):
        lines += ["", "targets (value +- half the IQR over rounds; noise: over the limit by less than that):"]
        for label, group in targets.groupby("target", sort=False):
            limit = group["limit"].iloc[0]
            if not group["value"].map(math.isfinite).any():
                lines.append(f"  {label}, limit {limit:g}: not measured")
                continue
            binding = bool(group["binding"].any())
            lines.append(f"  {label}, limit {limit:g}" + ("" if binding else f" [{group['note'].iloc[0]}]") + ":")
            for _, t in group.iterrows():
                value = format_number(t["value"], ".3g", "-")
                if math.isfinite(t["noise"]):
                    value += f" +- {t['noise']:.2g}"
                lines.append(f"    {t['verdict']:>6}  {t['method']}: {value}")
    return "\n".join(lines)


