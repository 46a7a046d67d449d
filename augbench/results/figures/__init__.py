"""Figures from collected runs, drawn from what is on disk only (records and each run's inspect.pt).

Figures (`FIGURE_NAMES`; builders in `augbench.results.figures.registry.FIGURES`):
- `table-<id>`: our accuracy per row of a paper table with the paper's number (`table_bars`).
- `bars`: every method of every benchmark in the folder, the generic tables as bars (`table_bars`).
- `E1-heatmap`, `E1-lambda`: accuracy over [Hmin, Hmax] and fixed against dynamic lambda
  (Appendix E.1, `appendix_e1`).
- `fig5-rotation`: learned per-instance rotation ranges inside each instance's true interval (`rotation`).
- `class-ranges`: learned ranges per class where no ground truth exists (a user's tree; `class_ranges`).
- `fig6-crops`: sampled crops, crop-centre densities and crop sizes per method (`crops`).
- `fig7-id-ood`: in- against out-of-distribution accuracy, random-colour sweep as points (`id_ood`).
- `curves`: training curves per run, one figure per benchmark (`curves`).

No figure rebuilds a method or loads a dataset: test images, true intervals and candidate boxes
come from inspect.pt (layout in `common`). A figure whose inputs are missing raises
`common.MissingRuns` with one line saying what is missing, or draws a placeholder and says so.

This module only names the figures (no matplotlib, no torch), so command-line parsers can list
them cheaply.
"""

from __future__ import annotations

from augbench.results.paper import TABLES

FIGURE_NAMES: tuple[str, ...] = (
    *(f"table-{t.replace('.', '')}" for t in TABLES), "bars", "E1-heatmap", "E1-lambda", "fig5-rotation",
    "class-ranges", "fig6-crops", "fig7-id-ood", "curves",
)
