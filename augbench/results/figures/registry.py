"""Every figure by name, and writing them: each as PNG and PDF at its fixed size (`common.FIGSIZE`)."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from augbench.atomic import write_if_changed
from augbench.errors import ConfigError
from augbench.results.figures import FIGURE_NAMES
from augbench.results.figures.appendix_e1 import fig_e1_heatmap, fig_e1_lambda
from augbench.results.figures.class_ranges import fig_class_ranges
from augbench.results.figures.common import DPI, MissingRuns, PlotContext
from augbench.results.figures.crops import fig6_crops
from augbench.results.figures.curves import fig_curves
from augbench.results.figures.id_ood import fig7_id_ood
from augbench.results.figures.rotation import fig5_rotation
from augbench.results.figures.table_bars import fig_bars, fig_table
from augbench.results.paper import TABLES

Builder = Callable[[PlotContext, str | None], Iterator[tuple[str, Figure]]]  # yields (file name, figure)


def _one(builder: Callable[[PlotContext, str | None], Figure], name: str) -> Builder:
    def run(ctx: PlotContext, benchmark: str | None) -> Iterator[tuple[str, Figure]]:
        yield name, builder(ctx, benchmark)
    return run


def _table(table_id: str) -> Builder:
    def run(ctx: PlotContext, benchmark: str | None) -> Iterator[tuple[str, Figure]]:
        yield f"table-{table_id.replace('.', '')}", fig_table(ctx, table_id)
    return run


_BUILDERS: dict[str, Builder] = {
    **{f"table-{t.replace('.', '')}": _table(t) for t in TABLES},
    "bars": fig_bars,
    "E1-heatmap": _one(fig_e1_heatmap, "E1-heatmap"),
    "E1-lambda": _one(fig_e1_lambda, "E1-lambda"),
    "fig5-rotation": _one(fig5_rotation, "fig5-rotation"),
    "class-ranges": _one(fig_class_ranges, "class-ranges"),
    "fig6-crops": _one(fig6_crops, "fig6-crops"),
    "fig7-id-ood": _one(fig7_id_ood, "fig7-id-ood"),
    "curves": fig_curves,
}
FIGURES: dict[str, Builder] = {name: _BUILDERS[name] for name in FIGURE_NAMES}  # in the listed order


def save(fig: Figure, out_dir: Path, name: str) -> list[Path]:
    """`name`.png and `name`.pdf at the figure's fixed size (no tight bbox: sizes stay as declared)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{name}.png", out_dir / f"{name}.pdf"]
    for p in paths:
        buf = io.BytesIO()
        # no creation date (PDF) or software stamp: the same runs give byte-identical files
        metadata = {"CreationDate": None, "Producer": None} if p.suffix == ".pdf" else {"Software": None}
        fig.savefig(buf, format=p.suffix[1:], dpi=DPI, metadata=metadata)
        write_if_changed(p, buf.getvalue())
    return paths


def render(name: str, frame: pd.DataFrame, root: Path | str, out_dir: Path | str,
           benchmark: str | None = None) -> list[Path]:
    """Write one figure (or a family, e.g. curves per benchmark); MissingRuns if its runs are absent."""
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
    return paths
