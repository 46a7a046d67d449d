"""Golden test: checked-in run directories must give exactly the checked-in frame and tables.

Inputs: tests/golden/runs (hand-written records written by tests/golden/build_runs.py: several
seeds, a random-crop sweep selected by validation, a missing cell, a failed run, an interrupted
run with a truncated records file, a done run whose test record was cut off, a corrupt line).
Expected outputs: tests/golden/expected (collect.csv and each table as .csv, .md and .tex).

To regenerate after an intended change (review the diff before committing!):

    AUGBENCH_REGEN_GOLDEN=1 .venv/bin/python -m pytest tests/test_results_golden.py -q
    # and, if the inputs themselves change:  .venv/bin/python tests/golden/build_runs.py  (first)
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from augbench.results.cells import auto_tables, paper_table
from augbench.results.collect import collect
from augbench.results.tables import SUFFIX, render

GOLDEN = Path(__file__).parent / "golden"
RUNS = GOLDEN / "runs"
EXPECTED = GOLDEN / "expected"
REGEN = os.environ.get("AUGBENCH_REGEN_GOLDEN") == "1"
PAPER_TABLES = ("1", "3", "4", "E.1")


def _frame(problems: list[str] | None = None):
    # running_within=0: runs without status are "partial" whatever the files' mtimes after a checkout
    return collect(RUNS, running_within=0, report=(problems.append if problems is not None else lambda _: None))


def outputs() -> dict[str, str]:
    """Every golden output, by file name."""
    frame = _frame()
    buf = io.StringIO()
    frame.to_csv(buf, index=False, lineterminator="\n")
    out = {"collect.csv": buf.getvalue()}
    for res in [paper_table(frame, t) for t in PAPER_TABLES] + auto_tables(frame):
        for fmt, suffix in SUFFIX.items():
            out[f"table-{res.id.replace('.', '')}.{suffix}"] = render(res, fmt)
    return out


def test_golden_outputs_byte_for_byte():
    produced = outputs()
    if REGEN:
        EXPECTED.mkdir(exist_ok=True)
        for name, text in produced.items():
            (EXPECTED / name).write_text(text)
        pytest.skip(f"regenerated {len(produced)} golden files in {EXPECTED}")
    expected = sorted(p.name for p in EXPECTED.iterdir())
    assert sorted(produced) == expected, "set of golden files changed: regenerate (see module docstring)"
    for name, text in produced.items():
        assert text == (EXPECTED / name).read_text(), f"{name} differs from the golden file"


def test_golden_problems_are_reported_one_line_each():
    problems: list[str] = []
    _frame(problems)
    assert all("\n" not in p for p in problems)
    joined = "\n".join(problems)
    assert "adaaug-s0/records.jsonl:4: truncated last line" in joined
    assert "instaaug-lrp-s1/records.jsonl:3: unreadable line" in joined
    assert "none-s2: no test record, final metrics taken from status.json" in joined
    assert len(problems) == 4


def test_golden_numbers_are_the_intended_ones():
    """Spot checks that make the golden files meaningful (not just frozen)."""
    frame = _frame()
    t1 = paper_table(frame, "1")
    cells = {label: line[0] for label, line in zip(t1.row_labels, t1.cells)}
    none = cells["No augmentation"]  # seeds 0..2: 55.1, 55.3, 54.9 (seed 2 recovered from status.json)
    assert none.status == "ok" and none.n == 3
    assert none.mean == pytest.approx(55.1) and none.std == pytest.approx(0.2)
    rc = cells["Random crop"]  # scale 0.5 has the better TEST accuracy but the worse validation accuracy
    assert rc.selected == "scale_min=0.1" and rc.mean == pytest.approx(64.5) and rc.candidates == 2
    assert cells["Augerino"].status == "failed" and cells["AdaAug"].status == "partial"
    assert cells["- w/o LRP"].status == "missing"
    insta = cells["InstaAug (ours)"]
    assert insta.best and insta.n == 3 and insta.diff == pytest.approx((66.2 + 65.9 + 66.0) / 3 - 66.02)
    state = frame.drop_duplicates("run_id").set_index("run_dir")["state"]
    assert state["tin/adaaug-s0"] == "stalled" and state["tin/augerino-s0"] == "failed"
