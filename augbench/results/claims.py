"""Figures quoted in prose, checked against the committed results they quote.

A Markdown document marks each number it quotes with an invisible HTML comment right before it
that says where the number comes from; `check_text` recomputes every marked number from that
file, rounds it as the text writes it, and lists the ones that disagree:

    InstaAug covers <!--= results/results.csv glyphs-rotation instaaug/uniform coverage mean -->79% of it
    (seeds: <!--= results/results.csv glyphs-rotation instaaug/uniform coverage seed=0 -->84%, ...)

The fields are: a results table written by `augbench collect` (or `augbench demo`'s
results.csv), relative to the document; the benchmark; the method, with `/variant` where the
table names one; the metric (percent for fraction metrics, as in the tables); and the statistic:
`mean`, `low`/`high` (the 95% interval), `std`, `min`, `max`, `n`, `seed=K` (one seed's value),
`diff:REF` (the paired mean difference against row REF of the same table, e.g. `diff:none`) or
`verdict:REF` (better / worse / not separated, compared with the word that follows). Numbers are
taken from the same cells the tables show (the configuration chosen by validation).
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from pathlib import Path

from augbench.errors import DataError

MARKER = re.compile(r"<!--=\s*(?P<query>[^>]*?)\s*-->\s*"
                    r"(?P<value>[+\-−]?\d+(?:\.\d+)?|[A-Za-z][A-Za-z ]*?)(?=[%\s,;.)\]]|$)")


@dataclass(frozen=True)
class Claim:
    """One marked number: what the text says, where it says it, and what it quotes."""

    line: int
    query: str
    written: str


def claims(text: str) -> list[Claim]:
    """Every marked number of a document, in order."""
    out = []
    for i, line in enumerate(text.splitlines(), 1):
        for m in MARKER.finditer(line):
            out.append(Claim(i, m.group("query"), m.group("value").strip()))
    return out


@functools.lru_cache(maxsize=8)
def _tables(path: Path) -> dict[str, object]:
    from augbench.results.cells import auto_tables  # pandas: only when a marker is recomputed
    from augbench.results.schema import read_frame

    frame = read_frame(path)
    return {t.benchmark: t for t in auto_tables(frame)} if not frame.empty else {}


def value(base: Path, query: str) -> float | str:
    """The number (or verdict) a marker's query names, from the file it names (relative to `base`)."""
    from augbench.results.cells import TableResult  # pandas: only when a marker is recomputed
    from augbench.results.tables import verdict

    parts = query.split()
    if len(parts) != 5:
        raise DataError(f"claim {query!r}: expected FILE BENCHMARK METHOD[/VARIANT] METRIC STATISTIC")
    file, bench, method, metric, stat = parts
    tables = _tables((base / file).resolve())
    table = tables.get(bench)
    if not isinstance(table, TableResult):
        raise DataError(f"claim {query!r}: no runs of {bench} in {file}; found: {', '.join(sorted(tables))}")
    method, _, variant = method.partition("/")
    label = f"{method} ({variant})" if variant else method
    if label not in table.row_labels:
        raise DataError(f"claim {query!r}: no row {label!r}; rows: {', '.join(table.row_labels)}")
    metrics = [c.metric for c in table.cells[0]]
    if metric not in metrics:
        raise DataError(f"claim {query!r}: no metric {metric!r}; metrics: {', '.join(metrics)}")
    cell = table.cells[table.row_labels.index(label)][metrics.index(metric)]
    if cell.status != "ok":
        raise DataError(f"claim {query!r}: the cell is {cell.status}")
    if stat.startswith(("diff:", "verdict:")):
        kind, _, ref = stat.partition(":")
        paired = cell.vs.get(ref)
        if paired is None:
            raise DataError(f"claim {query!r}: not compared with {ref!r}; references: "
                            f"{', '.join(label for _, label in table.references())}")
        return paired.diff if kind == "diff" else verdict(paired)
    if stat.startswith("seed="):
        by_seed = cell.by_seed()
        seed = int(stat.split("=", 1)[1])
        if seed not in by_seed:
            raise DataError(f"claim {query!r}: no seed {seed}; seeds: {', '.join(map(str, sorted(by_seed)))}")
        return by_seed[seed]
    stats = {"mean": cell.mean, "low": cell.low, "high": cell.high, "std": cell.std, "n": float(cell.n),
             "min": min(cell.values), "max": max(cell.values)}
    if stat not in stats:
        raise DataError(f"claim {query!r}: unknown statistic {stat!r}; valid: {', '.join(stats)}, seed=K, diff:REF, "
                        "verdict:REF")
    return stats[stat]


def check_text(text: str, base: Path) -> list[str]:
    """One line per marked number that differs from its source (rounded as written), or whose query fails."""
    problems = []
    for c in claims(text):
        try:
            actual = value(base, c.query)
        except DataError as exc:
            problems.append(f"line {c.line}: {exc}")
            continue
        if isinstance(actual, str):
            if not actual.startswith(c.written):
                problems.append(f"line {c.line}: says {c.written!r}, {c.query} is {actual!r}")
            continue
        written = c.written.replace("−", "-")
        try:
            number = float(written)
        except ValueError:
            problems.append(f"line {c.line}: {c.written!r} is not a number ({c.query})")
            continue
        decimals = len(written.split(".")[1]) if "." in written else 0
        if math.isnan(actual) or abs(actual - number) > 0.5 * 10 ** -decimals + 1e-9:  # not a rounding of it
            problems.append(f"line {c.line}: says {c.written}, {c.query} is {actual:.{decimals + 2}f}")
    return problems
