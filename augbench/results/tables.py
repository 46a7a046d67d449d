"""Tables as text: CSV, Markdown and LaTeX renderings of one `augbench.results.cells.TableResult`.

CSV is long (one line per cell, every number, the paired comparisons with the references);
Markdown and LaTeX (booktabs, escaped, never truncated) use the paper's wide layout with the
paper's number and the difference beside ours, then a second table of paired comparisons. Ours
reads mean [the 95% Student-t interval over seeds, clipped to the metric's range: "CI clipped"
says where] (`spread="ci"`, the default) or mean ± the sample std (`spread="std"`), always with
n. Bold is the column's best: the leader when paired comparisons separate it from every other
cell; "tie" marks best cells that they do not separate. Δ says whether the paper's number lies
inside our interval. In a column that mixes plain and TTA accuracy each cell names its kind.
Missing cells are shown, not hidden: "—" (and why: failed, running, partial) in Markdown, "---"
in LaTeX, `status` in CSV; a metric finished runs lack reads "not reported".
"""

from __future__ import annotations

import io
import math
from typing import Any

import pandas as pd

from augbench.errors import ConfigError
from augbench.numformat import format_number
from augbench.results.cells import NOT_REPORTED, Cell, TableResult
from augbench.results.formats import FORMATS, SPREADS, SUFFIX  # noqa: F401 (SUFFIX: re-exported for callers)
from augbench.results.paper import TABLES
from augbench.results.selection import TIE_RULE
from augbench.results.stats import IMPROVEMENT_NAME, INTERVAL_NAME, MAX_SEEDS, PAIRED_NAME, POWER, Paired
from augbench.results.units import is_percent, metric_kind

DASH = {"md": "—", "latex": "---"}
_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def latex_escape(text: str) -> str:
    """Escape LaTeX's special characters in plain text."""
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))


def _ours(cell: Cell, fmt: str, spread: str = "ci", kind: bool = False) -> str:
    if cell.status == NOT_REPORTED:
        return "not reported"
    if cell.status != "ok":
        why = "" if cell.status == "missing" else f" ({cell.status})"
        return DASH[fmt] + why
    pm = {"md": " ± ", "latex": r" $\pm$ "}[fmt]
    body = format_number(cell.mean)
    if cell.n > 1:
        body += (f" [{format_number(cell.low)}, {format_number(cell.high)}]" if spread == "ci"
                 else pm + format_number(cell.std))
    if cell.best:
        body = f"**{body}**" if fmt == "md" else rf"\textbf{{{body}}}"
    tags = [f"n={cell.n}"] + (["tie"] if cell.tied else []) + (["CI clipped"] if cell.clipped and spread == "ci"
                                                                  else [])
    tags += [metric_kind(cell.metric)] if kind else []
    return f"{body} ({', '.join(tags)})"


def spread_caption(spread: str, fmt: str) -> str:
    """What "ours" shows, for a caption: the interval's kind (or std), n, bold and ties."""
    what = (f"mean [{INTERVAL_NAME}, clipped to the metric's range where marked CI clipped]" if spread == "ci"
            else "mean ± sample std over seeds")
    text = (f"Ours: {what}, n seeds; bold: best in its column, separated from every other cell by a paired "
            "comparison over seeds (95% interval of the per-seed difference excludes 0); several bold, marked tie: "
            "the paired comparisons do not separate them")
    if fmt == "latex":
        return latex_escape(text).replace("±", r"$\pm$").replace("bold:", r"\textbf{bold}:", 1)
    return text.replace("bold:", "**bold**:", 1)


def protocol_note(result: TableResult) -> str:
    """How augbench's protocol differs from the paper's for a paper table ("" for others)."""
    spec = TABLES.get(result.id)
    return spec.protocol if spec is not None and result.has_paper else ""


def _paper(cell: Cell, fmt: str) -> str:
    if math.isnan(cell.paper_mean):
        return DASH[fmt]
    pm = {"md": " ± ", "latex": r" $\pm$ "}[fmt]
    return format_number(cell.paper_mean) + ("" if math.isnan(cell.paper_std) else pm + format_number(cell.paper_std))


def _diff(cell: Cell, fmt: str) -> str:
    d = cell.diff
    if math.isnan(d):
        return DASH[fmt]
    inside = cell.paper_in_ci
    where = "" if inside is None else " (in CI)" if inside else " (outside CI)"
    shown = format_number(d, "+.2f")
    return (shown if fmt == "md" else f"${shown}$") + where


def _signed(x: float) -> str:
    return format_number(x, "+.2f")


def verdict(p: Paired) -> str:
    """"better" / "worse" when the paired interval excludes 0, else "not separated" (or why there is no test)."""
    if p.n < 2:
        return f"{p.n} common seed{'s' if p.n != 1 else ''}: no test"
    return {1: "better", -1: "worse", 0: "not separated"}[p.better]


def seeds_text(p: Paired) -> str:
    """Seeds for 80% power at the observed difference: a number, "no difference" or "more than MAX_SEEDS"."""
    if p.n < 2:
        return ""
    if p.seeds_needed is not None:
        return str(p.seeds_needed)
    return "no difference" if p.diff == 0 else f"> {MAX_SEEDS}"


def comparisons(result: TableResult) -> pd.DataFrame:
    """One row per (column, row, reference): the paired comparison as display strings, in table order."""
    rows = []
    for j, label in enumerate(result.column_labels):
        for _, ref in result.references():
            for row_label, line in zip(result.row_labels, result.cells):
                p = line[j].vs.get(ref)
                if p is None:
                    continue
                ci = f"[{_signed(p.low)}, {_signed(p.high)}]" if p.n >= 2 else ""
                rows.append({"Column": label, "Method": row_label, "Reference": ref, "n": str(p.n),
                             "Δ (95% CI)": f"{_signed(p.diff)} {ci}".strip(),
                             "P(better) (95% CI)": f"{p.p_better:.2f} [{p.p_low:.2f}, {p.p_high:.2f}]",
                             "Verdict": verdict(p), f"Seeds for {POWER:.0%} power": seeds_text(p)})
    return pd.DataFrame(rows)


def comparison_caption() -> str:
    """What the comparison table shows."""
    return (f"Paired comparisons with the references ({PAIRED_NAME}; {IMPROVEMENT_NAME}). Better / worse: the "
            f"interval excludes 0; seeds for {POWER:.0%} power: how many seeds a paired t-test needs to separate "
            "the observed difference at that spread")


def _notes(result: TableResult) -> list[str]:
    """Per row: which configuration was chosen (once if the same in every column) and left-out failures."""
    out = []
    for line in result.cells:
        chosen = [(label, f"{c.selected} (" + (
                      f"validation tie of {c.tie} of {c.candidates}, broken by {TIE_RULE}" if c.tie else
                      f"best of {c.candidates} by validation" if c.by_validation else
                      f"of {c.candidates}: no validation accuracy, most seeds") + ")")
                  for label, c in zip(result.column_labels, line) if c.selected]
        if len({text for _, text in chosen}) == 1:
            parts = [chosen[0][1]]
        else:
            parts = [f"{label}: {text}" for label, text in chosen]
        failed = max((c.n_failed for c in line if c.status == "ok"), default=0)
        if failed:
            parts.append(f"{failed} failed run(s) left out")
        unlearned = max(line, key=lambda c: c.not_learned, default=None)
        if unlearned is not None and unlearned.not_learned:
            parts.append(f"{unlearned.not_learned} run(s) flagged by the run's diagnosis ({unlearned.diagnoses})"
                         if "diverged" in unlearned.diagnoses.split(",") else
                         f"{unlearned.not_learned} run(s) did not learn ({unlearned.diagnoses})")
        out.append("; ".join(parts))
    return out


def wide(result: TableResult, fmt: str, spread: str = "ci") -> pd.DataFrame:
    """The display layout as strings: Method, extra columns, then (ours, paper, Δ) per column group."""
    esc = latex_escape if fmt == "latex" else (lambda s: str(s).replace("|", "\\|"))
    data: dict[Any, list[str]] = {}
    multi = result.has_paper
    key = (lambda a, b: (a, b)) if multi else (lambda a, b: a)
    data[key("Method", "")] = [esc(s) for s in result.row_labels]
    for name in result.extra_columns:
        data[key(esc(name), "")] = [esc(e.get(name, "")) for e in result.row_extras]
    delta = {"md": "Δ", "latex": r"$\Delta$"}[fmt]
    for j, label in enumerate(result.column_labels):
        col = [line[j] for line in result.cells]
        mixed = result.mixes_metrics(j)
        data[key(esc(label), "ours")] = [_ours(c, fmt, spread, mixed) for c in col]
        if result.has_paper:
            data[key(esc(label), "paper")] = [_paper(c, fmt) for c in col]
            data[key(esc(label), delta)] = [_diff(c, fmt) for c in col]
    notes = _notes(result)
    if any(notes):
        data[key("Note", "")] = [esc(n) for n in notes]
    df = pd.DataFrame(data)
    if multi:
        df.columns = pd.MultiIndex.from_tuples(list(data))
    return df


def to_markdown(result: TableResult, spread: str = "ci") -> str:
    """GitHub Markdown: a title line, the table (best of ours in bold), then what the numbers are."""
    df = wide(result, "md", spread)
    header = [" ".join(p for p in c if p) if isinstance(c, tuple) else c for c in df.columns]
    lines = [f"**Table {result.id}.** {result.title}", "", "| " + " | ".join(header) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in df.itertuples(index=False, name=None)]
    lines += ["", spread_caption(spread, "md") + "."]
    if protocol_note(result):
        lines += ["", protocol_note(result) + "."]
    comp = comparisons(result)
    if not comp.empty:
        cols = list(comp.columns)
        lines += ["", "| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
        lines += ["| " + " | ".join(str(v).replace("|", "\\|") for v in row) + " |"
                  for row in comp.itertuples(index=False, name=None)]
        lines += ["", comparison_caption() + "."]
    if result.provenance:
        lines += ["", "Made by: " + "; ".join(result.provenance) + "."]
    return "\n".join(lines) + "\n"


def to_latex(result: TableResult, spread: str = "ci") -> str:
    """A booktabs table environment; every cell escaped, nothing truncated (Styler writes cells whole)."""
    df = wide(result, "latex", spread)
    n_text = 1 + len(result.extra_columns)
    has_note = any(_notes(result))
    colfmt = "l" * n_text + "r" * (df.shape[1] - n_text - has_note) + "l" * has_note
    caption = latex_escape(result.title) + (". " + spread_caption(spread, "latex") + (
        r"; paper: its reported value; $\Delta$: ours $-$ paper, in points (in or outside our CI)."
        if result.has_paper else "."))
    protocol = protocol_note(result)
    caption += " " + latex_escape(protocol) + "." if protocol else ""
    label = "tab:augbench-" + result.id.replace(".", "").lower()
    text = df.style.hide(axis="index").to_latex(column_format=colfmt, hrules=True, multicol_align="c",
                                                position_float="centering", caption=caption, label=label)
    comp = comparisons(result)
    if not comp.empty:
        comp = comp.map(latex_escape).rename(columns=lambda c: latex_escape(c).replace("Δ", r"$\Delta$"))
        text += comp.style.hide(axis="index").to_latex(
            column_format="lllr" + "l" * (comp.shape[1] - 4), hrules=True, position_float="centering",
            caption=latex_escape(f"{result.title}: {comparison_caption()}."), label=label + "-paired")
    return text + "".join(f"% made by: {line}\n" for line in result.provenance)


def _paired_columns(result: TableResult, cell: Cell) -> dict[str, Any]:
    """`vs_<role>_*` columns: the cell against each reference (role none or global), empty where not compared."""
    out: dict[str, Any] = {}
    for role, ref in result.references():
        p = cell.vs.get(ref)
        out[f"vs_{role}"] = ref
        for name, value in (("n", None if p is None else p.n), ("diff", p and p.diff), ("low", p and p.low),
                            ("high", p and p.high), ("p_better", p and p.p_better), ("p_low", p and p.p_low),
                            ("p_high", p and p.p_high), ("verdict", p and verdict(p)),
                            ("seeds_needed", p and p.seeds_needed)):
            out[f"vs_{role}_{name}"] = value
    return out


def to_csv(result: TableResult, spread: str = "ci") -> str:
    """Long format: one line per cell with every number (percent for fraction metrics)."""
    rows = []
    for i, (label, extras, line) in enumerate(zip(result.row_labels, result.row_extras, result.cells)):
        method, variant = result.rows_meta[i] if result.rows_meta else ("", "")
        for col_label, c in zip(result.column_labels, line):
            rows.append({"table": result.id, "benchmark": result.benchmark, "row_index": i, "row": label,
                         **{f"{k}": extras.get(k, "") for k in result.extra_columns},
                         "column": col_label, "method": method, "variant": variant, "metric": c.metric,
                         "unit": "percent" if is_percent(c.metric) else "value", "status": c.status, "n": c.n,
                         "mean": c.mean, "std": c.std, "ci_half": c.half, "ci_low": c.low if c.n > 1 else math.nan,
                         "ci_high": c.high if c.n > 1 else math.nan, "interval": INTERVAL_NAME, "best": c.best,
                         "tied": c.tied, "paper_mean": c.paper_mean, "paper_std": c.paper_std, "paper_n": c.paper_n,
                         "diff": c.diff, "paper_in_ci": c.paper_in_ci, "n_failed": c.n_failed,
                         "n_unfinished": c.n_unfinished, "selected": c.selected, "candidates": c.candidates,
                         "selection_tie": c.tie, "ci_clipped": c.clipped if c.n > 1 else None,
                         "made_by": "; ".join(result.provenance),
                         **_paired_columns(result, c)})
    df = pd.DataFrame(rows)
    if not df.empty:
        for col in ["paper_n"] + [c for c in df.columns if c.endswith(("_seeds_needed", "_n")) and c.startswith("vs_")]:
            df[col] = df[col].astype("Int64")
    buf = io.StringIO()
    df.to_csv(buf, index=False, float_format="%.4f", lineterminator="\n")
    return buf.getvalue()


RENDERERS = {"csv": to_csv, "md": to_markdown, "latex": to_latex}


def render(result: TableResult, fmt: str, spread: str = "ci") -> str:
    """The table in one of FORMATS; ± shows the 95% t-interval's half-width (`ci`) or the std (`std`)."""
    if fmt not in RENDERERS:
        raise ConfigError(f"unknown table format {fmt!r}; valid: {', '.join(FORMATS)}")
    if spread not in SPREADS:
        raise ConfigError(f"unknown spread {spread!r}; valid: {', '.join(SPREADS)}")
    return RENDERERS[fmt](result, spread)
