"""Which cells of a column are best, and how every row compares with the references, paired by seed.

Every method of a seed shares the data split and the initialisation, so methods are compared on
their per-seed differences (`augbench.results.stats.paired`), never by whether two unpaired
intervals happen to clear each other. A column's leader (by the metric's direction) wins alone
when its paired comparison separates it from every other cell; otherwise it and every cell it
does not separate from are tied for best.

The references of a table are its `none` row and its family's global augmentation (random crop,
colour or rotation: whichever of them the table has; a benchmark has one family). Each row is
compared with each reference on every metric that has a direction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from augbench.results.stats import Paired, paired
from augbench.results.units import direction, metric_range

if TYPE_CHECKING:
    from augbench.results.cells import Cell

NO_AUGMENTATION = "none"
#: The global (input-independent) augmentation of each family: the baseline a learned one must beat.
GLOBAL_COUNTERPARTS = ("random-crop", "random-color", "random-rotation")


ROLES = (("none", (NO_AUGMENTATION,)), ("global", GLOBAL_COUNTERPARTS))


def references(rows: Sequence[tuple[str, str]]) -> list[tuple[str, int]]:
    """(role, row index) of a table's references: its first `none` row ("none"), then its first
    global augmentation row ("global"); a table without one of them has fewer."""
    out = []
    for role, wanted in ROLES:
        found = next((i for i, (method, variant) in enumerate(rows) if method in wanted and not variant), None)
        if found is not None:
            out.append((role, found))
    return out


def compare(a: Cell, b: Cell) -> Paired:
    """Cell `a` against cell `b` (same metric direction: `a`'s), paired by seed."""
    return paired(a.by_seed(), b.by_seed(), direction(a.metric) or 1, metric_range(a.metric))


def mark_best(column: Sequence[Cell]) -> None:
    """Mark the column's best cells: the leader alone when paired comparisons separate it from every
    other cell, else the leader and every cell it does not separate from (all marked tied)."""
    col = [c for c in column if c.status == "ok"]
    if len(col) < 2:  # a lone number is not "best" of anything
        return
    sign = direction(col[0].metric)
    if sign == 0:
        return
    leader = max(col, key=lambda c: sign * c.mean)
    best = [c for c in col if c is leader or compare(leader, c).better != 1]
    for c in best:
        c.best, c.tied = True, len(best) > 1
