"""What every figure shares: sizes, the missing-input error, a run's inspect.pt, and small helpers.

inspect.pt (written by the trainer at <run>/inspect.pt, a flat dict of tensors) holds, for the
first k test images, per-sample values with first dimension k: "x" uint8 (k, C, H, W) images,
"y" labels, "index" positions in the test split, "meta.<name>" for each meta tensor of the test
split (e.g. "meta.interval" true rotation intervals, "meta.box" object boxes) and the method's
own inspect keys ("rotation_range", "crop_probs", "crop_boxes" (k, S, 4), ...); and constants
"const.<name>" (e.g. "const.candidate_boxes" (K, 4), the LRP candidates). Boxes are (center_y,
center_x, height, width) as fractions of the image. Runs written before this layout lack some
keys: a figure then says which, never rebuilding what is missing.

Figures are plain `matplotlib.figure.Figure`s (no pyplot state): nothing to close, no backend
to select, safe to build in any process.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure

from augbench.errors import AugbenchError
from augbench.results.selection import finished_runs
from augbench.rundir import INSPECT

DPI = 100
FIGSIZE: dict[str, tuple[float, float]] = {
    "table": (8.0, 5.0), "bars": (12.0, 5.5), "E1-heatmap": (11.0, 4.5), "E1-lambda": (6.0, 4.0),
    "fig5-rotation": (12.0, 4.0), "class-ranges": (14.0, 4.0),
    "fig6-crops": (18.0, 6.5), "fig7-id-ood": (7.0, 5.5), "curves": (12.0, 3.6),
}
IMAGES = "x"  # inspect.pt: uint8 (k, C, H, W) test images
META = "meta."  # inspect.pt: per-sample meta tensors of the test split
CONST = "const."  # inspect.pt: values that are not per sample

Inspect = dict[str, torch.Tensor]


class MissingRuns(AugbenchError):
    """A figure cannot be drawn because the runs (or the files) it needs are not there."""


def load_inspect(path: Path) -> Inspect | None:
    """A run's inspect.pt as a dict of CPU tensors, or None if it is absent or unreadable."""
    if not path.exists():
        return None
    try:
        value = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001  (a corrupt file counts as a missing one)
        return None
    return value if isinstance(value, dict) else None


@dataclass
class PlotContext:
    """What every figure builder reads: the collected frame, its finished runs, and the results folder."""

    frame: pd.DataFrame
    root: Path
    _inspect: dict[str, Inspect | None] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self.done = finished_runs(self.frame)

    def inspect(self, run_dir: str) -> Inspect | None:
        """The run's inspect.pt (read once), or None."""
        if run_dir not in self._inspect:
            self._inspect[run_dir] = load_inspect(self.root / run_dir / INSPECT)
        return self._inspect[run_dir]

    def holds(self, *keys: str) -> Callable[[str], bool]:
        """A test of run directories: does its inspect.pt hold all of `keys`?"""
        def test(run_dir: str) -> bool:
            ins = self.inspect(run_dir)
            return ins is not None and all(k in ins for k in keys)
        return test


def run_label(method: str, variant: Any) -> str:
    """"method (variant)", or the method alone when it has no variant."""
    return f"{method} ({variant})" if isinstance(variant, str) and variant else method


def new_figure(name: str, nrows: int = 1, ncols: int = 1, **kw: Any) -> tuple[Figure, Any]:
    """A figure at the fixed size of its kind (`FIGSIZE`) and a 2-D array of axes."""
    fig = Figure(figsize=FIGSIZE["table" if name.startswith("table-") else name], dpi=DPI, layout="constrained")
    return fig, fig.subplots(nrows, ncols, squeeze=False, **kw)


def pick_benchmark(ctx: PlotContext, default: str, ok: Callable[[pd.DataFrame], bool]) -> str | None:
    """The paper's benchmark if its runs qualify, else the first benchmark (sorted) whose runs do."""
    names = [default] + sorted(set(ctx.done["benchmark"]) - {default}) if not ctx.done.empty else []
    for name in names:
        if ok(ctx.done[ctx.done["benchmark"] == name]):
            return name
    return None


def acc_metric(df: pd.DataFrame) -> str:
    """TTA accuracy where the runs report it, else plain accuracy."""
    return "tta_acc" if "tta_acc" in df and df["tta_acc"].notna().any() else "acc"


def images(ins: Inspect | None) -> np.ndarray | None:
    """The saved test images as (k, H, W, C) for imshow ((k, H, W) when grey), or None if not saved."""
    x = None if ins is None else ins.get(IMAGES)
    if x is None or x.dim() != 4:
        return None
    x = x.permute(0, 2, 3, 1)
    return (x[..., 0] if x.shape[-1] == 1 else x).numpy()


def show_image(ax: Any, image: np.ndarray | None) -> None:
    """An image spanning [0, 1] x [0, 1] (y down, as box fractions), or a grey placeholder."""
    if image is None:
        ax.imshow(np.full((8, 8), 0.8), cmap="gray", vmin=0, vmax=1, extent=(0, 1, 1, 0))
    elif image.ndim == 2:
        ax.imshow(image, cmap="gray", vmin=0, vmax=255 if image.dtype == np.uint8 else 1, extent=(0, 1, 1, 0))
    else:
        ax.imshow(image, extent=(0, 1, 1, 0))
