"""Tables: aggregation over seeds, paper numbers, units, rendering and escaping."""

from __future__ import annotations

import pandas as pd
import pytest
from test_results_helpers import write_run

from augbench.errors import ConfigError
from augbench.results.cells import auto_tables, build_tables, paper_table
from augbench.results.collect import collect
from augbench.results.paper import TABLES, get_table, paper_value
from augbench.results.tables import latex_escape, render
from augbench.results.units import direction, is_percent


def _frame(root, **kw):
    return collect(root, report=lambda _: None, running_within=0, **kw)


def _cells(result, column=0):
    return {label: line[column] for label, line in zip(result.row_labels, result.cells)}


def test_mean_std_n_over_seeds_in_percent(tmp_path):
    for seed, acc in enumerate((0.5, 0.6, 0.7)):
        write_run(tmp_path, f"n{seed}", benchmark="tinyimagenet-crop", method="none", seed=seed, test={"acc": acc})
    cell = _cells(paper_table(_frame(tmp_path), "1"))["No augmentation"]
    assert (cell.status, cell.n) == ("ok", 3)
    assert cell.mean == pytest.approx(60.0) and cell.std == pytest.approx(10.0)  # sample std, ddof 1
    assert cell.paper_mean == 55.06 and cell.diff == pytest.approx(60.0 - 55.06)


def test_missing_failed_and_partial_cells_are_explicit(tmp_path):
    write_run(tmp_path, "aug", benchmark="tinyimagenet-crop", method="augerino", state="failed")
    write_run(tmp_path, "ada", benchmark="tinyimagenet-crop", method="adaaug", state="none")
    write_run(tmp_path, "none0", benchmark="tinyimagenet-crop", method="none", test={"acc": 0.5})
    write_run(tmp_path, "none1", benchmark="tinyimagenet-crop", method="none", seed=1, state="failed")
    res = paper_table(_frame(tmp_path), "1")
    cells = _cells(res)
    assert cells["Augerino"].status == "failed" and cells["AdaAug"].status == "partial"
    assert cells["InstaAug (ours)"].status == "missing" and cells["No augmentation"].n_failed == 1
    md = render(res, "md")
    assert "| Augerino | no | — (failed) |" in md and "| AdaAug | yes | — (partial) |" in md
    assert "| InstaAug (ours) | yes | — | 66.02 ± 0.18 | — |" in md
    assert "1 failed run(s) left out" in md
    assert "--- (failed)" in render(res, "latex")
    csv = pd.read_csv(__import__("io").StringIO(render(res, "csv")))
    assert csv.set_index("row")["status"]["- w/o LRP"] == "missing" and len(csv) == len(get_table("1").rows)


def test_best_is_marked_by_the_metrics_direction(tmp_path):
    write_run(tmp_path, "a", method="none", test={"acc": 0.5, "violation": 0.3, "loss": 1.0})
    write_run(tmp_path, "b", method="random-rotation", test={"acc": 0.7, "violation": 0.1, "loss": 2.0})
    (res,) = auto_tables(_frame(tmp_path))
    assert res.column_labels == ["acc (%)", "loss", "violation (%)"]
    best = {(res.row_labels[i], res.column_labels[j]) for i, line in enumerate(res.cells)
            for j, c in enumerate(line) if c.best}
    assert best == {("random-rotation", "acc (%)"), ("none", "loss"), ("random-rotation", "violation (%)")}
    md = render(res, "md")
    assert "| random-rotation | **70.00** (n=1) | 2.00 (n=1) | **10.00** (n=1) |" in md
    assert r"\textbf{70.00} (n=1)" in render(res, "latex")


def test_lone_value_is_not_marked_best(tmp_path):
    write_run(tmp_path, "a", test={"acc": 0.5})
    (res,) = auto_tables(_frame(tmp_path))
    assert not any(c.best for line in res.cells for c in line)


def test_latex_is_escaped_booktabs_and_never_truncated(tmp_path):
    long = "x" * 300
    write_run(tmp_path, "a", benchmark="my_bench", method="none", hparams={"tag": f"a_b%c&d#e {long}"},
              val_acc=(0.5,), test={"acc": 0.5})
    write_run(tmp_path, "b", benchmark="my_bench", method="none", seed=0, hparams={"tag": "other"}, val_acc=(0.4,),
              test={"acc": 0.4})
    (res,) = auto_tables(_frame(tmp_path))
    tex = render(res, "latex")
    assert r"a\_b\%c\&d\#e " + long in tex  # the whole note, escaped
    assert r"All methods on my\_bench" in tex and r"\label{tab:augbench-auto-my_bench}" in tex
    assert all(rule in tex for rule in (r"\toprule", r"\midrule", r"\bottomrule"))
    assert "..." not in tex
    assert latex_escape(r"50% of a_b & {c} #1 ~ ^ \ ") == (
        r"50\% of a\_b \& \{c\} \#1 \textasciitilde{} \textasciicircum{} \textbackslash{} ")


def test_markdown_escapes_pipes(tmp_path):
    write_run(tmp_path, "a", method="none", hparams={"tag": "a|b"}, val_acc=(0.5,), test={"acc": 0.5})
    write_run(tmp_path, "b", method="none", hparams={"tag": "c"}, val_acc=(0.4,), test={"acc": 0.4})
    (res,) = auto_tables(_frame(tmp_path))
    assert r"tag=a\|b" in render(res, "md")


def test_paper_columns_filter_runs_and_fill_metric_templates(tmp_path):
    for n, acc in ((4, 0.81), (10, 0.82)):
        write_run(tmp_path, f"i{n}", benchmark="imagenet-tta", method="instaaug", seed=0,
                  hparams={"parameterization": "lrp", "conditioning": "input"},
                  test={f"tta_acc@{n}": acc, f"resnet18/tta_acc@{n}": acc - 0.1})
    for lights, acc in ((1, 0.7), (2, 0.8)):
        write_run(tmp_path, f"raw{lights}", benchmark="rawfoot-color", method="none",
                  settings={"data.random_lightings": lights}, test={"acc": acc})
    frame = _frame(tmp_path)
    t2 = paper_table(frame, "2")
    by_row = {(lab, ex["#Sample"]): line for lab, ex, line in zip(t2.row_labels, t2.row_extras, t2.cells)}
    assert by_row[("InstaAug", "4")][0].mean == pytest.approx(81.0)
    assert by_row[("InstaAug", "10")][1].mean == pytest.approx(72.0)
    assert by_row[("InstaAug", "4")][2].status == "missing"  # XCiT
    assert by_row[("InstaAug", "10")][1].paper_mean == 70.96
    t4 = paper_table(frame, "4")
    none = t4.cells[0]
    assert [c.mean if c.status == "ok" else None for c in none] == [pytest.approx(70.0), pytest.approx(80.0), None,
                                                                     None]
    t3 = paper_table(frame, "3")  # Table 3 is D45 alone (random_lightings 0): none of these runs
    assert t3.cells[0][0].status == "missing"


def test_every_paper_cell_has_the_papers_number():
    for spec in TABLES.values():
        for row in spec.rows:
            for col in spec.columns:
                assert paper_value(spec.paper_key(row, col)) is not None, (spec.id, row.label, col.label)


def test_units_and_directions():
    assert is_percent("acc") and is_percent("tta_acc@4") and is_percent("resnet18/tta_acc@10")
    assert is_percent("coverage") and is_percent("keeps_object") and not is_percent("loss")
    assert not is_percent("entropy") and not is_percent("crop_area")
    assert direction("tta_acc_hard") == 1 and direction("violation") == -1 and direction("entropy") == 0


def test_bad_table_and_format_are_one_line_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown table '9'; valid: 1, 2, 3, 4, 5, E.1, auto"):
        build_tables(_frame(tmp_path), "9")
    write_run(tmp_path, "a", test={"acc": 0.5})
    (res,) = auto_tables(_frame(tmp_path))
    with pytest.raises(ConfigError, match="unknown table format 'html'; valid: csv, md, latex"):
        render(res, "html")
    with pytest.raises(ConfigError, match="no runs of benchmark 'x'; found: bench"):
        auto_tables(_frame(tmp_path), "x")
    assert get_table("E1").id == "E.1"


def test_without_validation_the_note_says_how_it_chose(tmp_path):
    write_run(tmp_path, "a0", hparams={"k": 1}, val_acc=(), test={"acc": 0.9})
    write_run(tmp_path, "b0", hparams={"k": 2}, val_acc=(), test={"acc": 0.1})
    write_run(tmp_path, "b1", hparams={"k": 2}, seed=1, val_acc=(), test={"acc": 0.2})
    (res,) = auto_tables(_frame(tmp_path))
    cell = res.cells[0][0]
    assert cell.selected == "k=2" and not cell.by_validation and cell.n == 2  # most seeds, never the test score
    assert "k=2 (of 2: no validation accuracy, most seeds)" in render(res, "md")
