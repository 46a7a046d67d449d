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
    for seed, (shift, a_shift) in enumerate(((0.0, 0.0), (0.01, 0.012), (0.03, 0.029))):
        write_run(tmp_path, f"a{seed}", method="none", seed=seed,
                  test={"acc": 0.5 + a_shift, "violation": 0.3 + a_shift, "loss": 1.0 + a_shift})
        write_run(tmp_path, f"b{seed}", method="random-rotation", seed=seed,
                  test={"acc": 0.7 + shift, "violation": 0.1 + shift, "loss": 2.0 + shift})
    (res,) = auto_tables(_frame(tmp_path))
    assert res.column_labels == ["acc (%)", "loss", "violation (%)"]
    best = {(res.row_labels[i], res.column_labels[j]) for i, line in enumerate(res.cells)
            for j, c in enumerate(line) if c.best}
    assert best == {("random-rotation", "acc (%)"), ("none", "loss"), ("random-rotation", "violation (%)")}
    md = render(res, "md")
    row = ("| random-rotation | **71.33 [67.54, 75.13]** (n=3) | 2.01 [1.98, 2.05] (n=3) | **11.33 [7.54, 15.13]** "
           "(n=3) |")
    assert row in md
    assert r"\textbf{71.33 [67.54, 75.13]} (n=3)" in render(res, "latex")


def test_one_seed_separates_nothing(tmp_path):
    write_run(tmp_path, "a", method="none", test={"acc": 0.5})
    write_run(tmp_path, "b", method="random-rotation", test={"acc": 0.7})
    (res,) = auto_tables(_frame(tmp_path))
    assert all(line[0].best and line[0].tied for line in res.cells)
    assert "| acc (%) | random-rotation | none | 1 | +20.00 | 1.00 [1.00, 1.00] | 1 common seed: no test |  |" \
        in render(res, "md")


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
    assert by_row[("InstaAug", "4")][2].status == "not-reported"  # XCiT: finished runs that do not report it
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


def test_kept_object_rates_are_scored_by_their_gain_over_chance(tmp_path):
    """Large crops keep the object by themselves: the table marks the gain over chance, not the rate."""
    for seed, (shift, placed) in enumerate(((0.0, 0.0), (0.002, 0.004), (0.005, 0.003))):
        write_run(tmp_path, f"big{seed}", method="teachaugment", seed=seed,
                  test={"keeps_object": 0.99 - shift, "keeps_object_chance": 0.99 - shift})
        write_run(tmp_path, f"placed{seed}", method="instaaug", seed=seed,
                  test={"keeps_object": 0.95 - placed, "keeps_object_chance": 0.85 - shift})
    frame = _frame(tmp_path)
    test = frame[frame["split"] == "test"].set_index("method")
    assert test.loc["instaaug", "keeps_object_gain"].tolist() == pytest.approx([0.10, 0.098, 0.102])
    assert test.loc["teachaugment", "keeps_object_gain"].tolist() == pytest.approx([0.0] * 3)
    (res,) = auto_tables(frame)
    best = {(res.row_labels[i], res.column_labels[j]) for i, line in enumerate(res.cells)
            for j, c in enumerate(line) if c.best}
    assert best == {("instaaug (uniform)", "keeps_object_gain (%)")}  # (the fake bench has no family)
    assert direction("keeps_object") == 0 and direction("keeps_object_chance") == 0
    assert direction("keeps_object_gain") == 1 and is_percent("keeps_object_gain")


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


def _seeds(root, name, accs, **kw):
    for seed, acc in enumerate(accs):
        write_run(root, f"{name}{seed}", seed=seed, test={"acc": acc}, **kw)


def test_cells_carry_the_95_percent_t_interval_and_tables_show_it(tmp_path):
    _seeds(tmp_path, "n", (0.5, 0.6, 0.7), benchmark="tinyimagenet-crop", method="none")
    res = paper_table(_frame(tmp_path), "1")
    cell = _cells(res)["No augmentation"]
    half = 4.302652729749 * 10.0 / 3 ** 0.5  # t(0.975, 2) * s / sqrt(n), s = 10 points
    assert cell.half == pytest.approx(half) and (cell.low, cell.high) == (pytest.approx(60 - half),
                                                                          pytest.approx(60 + half))
    md = render(res, "md")
    # (the column mixes plain and TTA accuracy: each cell names its kind)
    lo, hi = 60 - half, 60 + half
    assert f"| No augmentation | no | 60.00 [{lo:.2f}, {hi:.2f}] (n=3, plain) | 55.06 ± 0.10 | +4.94 (in CI) |" in md
    assert "mean [95% CI (Student t over seeds), clipped to the metric's range where marked CI clipped], n seeds" in md
    assert "| No augmentation | no | 60.00 ± 10.00 (n=3, plain) |" in render(res, "md", spread="std")
    assert "sample std over seeds" in render(res, "md", spread="std")
    tex = render(res, "latex")
    assert r"95\% CI (Student t over seeds)" in tex and r"$+4.94$ (in CI)" in tex
    csv = pd.read_csv(__import__("io").StringIO(render(res, "csv"))).set_index("row").loc["No augmentation"]
    assert csv["ci_half"] == pytest.approx(half, abs=1e-4) and csv["interval"] == "95% CI (Student t over seeds)"
    assert bool(csv["paper_in_ci"]) and csv["ci_low"] == pytest.approx(60 - half, abs=1e-4)
    with pytest.raises(ConfigError, match="unknown spread 'sd'; valid: ci, std"):
        render(res, "md", spread="sd")


def test_paper_outside_our_interval_is_said(tmp_path):
    _seeds(tmp_path, "n", (0.600, 0.601, 0.602), benchmark="tinyimagenet-crop", method="none")
    md = render(paper_table(_frame(tmp_path), "1"), "md")
    assert "+5.04 (outside CI)" in md


def test_a_win_needs_a_paired_comparison_that_separates_otherwise_a_tie(tmp_path):
    _seeds(tmp_path, "a", (0.90, 0.91, 0.92), method="none")
    _seeds(tmp_path, "b", (0.50, 0.515, 0.52), method="random-rotation")
    (res,) = auto_tables(_frame(tmp_path))
    a, b = (line[0] for line in res.cells)
    assert a.best and not a.tied and not b.best  # clear win
    assert "| none | **91.00 [88.52, 93.48]** (n=3) |" in render(res, "md")

    _seeds(tmp_path / "close", "a", (0.90, 0.91, 0.92), method="none")
    _seeds(tmp_path / "close", "b", (0.89, 0.90, 0.935), method="random-rotation")
    (res,) = auto_tables(_frame(tmp_path / "close"))
    a, b = (line[0] for line in res.cells)
    assert a.best and b.best and a.tied and b.tied  # the per-seed differences change sign: both bold, a tie
    md = render(res, "md")
    assert "**91.00 [88.52, 93.48]** (n=3, tie)" in md and "(n=3, tie)" in md.split("| random-rotation |")[1]


def test_paired_seeds_separate_what_unpaired_intervals_cannot(tmp_path):
    """Seeds differ a lot, but every seed's rotation run beats that seed's none run by 2 points: a win."""
    _seeds(tmp_path, "a", (0.50, 0.70, 0.90), method="none")
    _seeds(tmp_path, "b", (0.52, 0.725, 0.915), method="random-rotation")
    (res,) = auto_tables(_frame(tmp_path))
    none, rot = (line[0] for line in res.cells)
    assert (none.low, none.high) != (none.mean, none.mean) and none.high > rot.low  # unpaired intervals overlap
    assert rot.best and not rot.tied and not none.best
    p = rot.vs["none"]
    assert p.n == 3 and p.diff == pytest.approx(2.0) and p.better == 1 and p.low > 0
    assert p.p_better == 1.0
    assert res.references() == [("none", "none"), ("global", "random-rotation")]
    md = render(res, "md")
    assert "| acc (%) | random-rotation | none | 3 | +2.00 [+0.76, +3.24] | 1.00 [1.00, 1.00] | better |" in md
    csv = pd.read_csv(__import__("io").StringIO(render(res, "csv"))).set_index("row").loc["random-rotation"]
    assert csv["vs_none_verdict"] == "better" and csv["vs_none_n"] == 3 and csv["vs_global"] == "random-rotation"


def test_intervals_never_leave_the_metrics_range(tmp_path):
    _seeds(tmp_path, "a", (0.99, 0.90), method="none")  # t(0.975, 1) = 12.7: the raw interval reaches 152%
    (res,) = auto_tables(_frame(tmp_path))
    cell = res.cells[0][0]
    assert cell.high == 100.0 and cell.clipped and cell.mean + cell.half > cell.high
    assert "(n=2, CI clipped)" in render(res, "md")


def test_mixed_plain_and_tta_cells_name_their_metric(tmp_path):
    _seeds(tmp_path, "n", (0.5, 0.6), benchmark="tinyimagenet-crop", method="none")
    for seed in (0, 1):
        write_run(tmp_path, f"r{seed}", benchmark="tinyimagenet-crop", method="random-crop", seed=seed,
                  test={"acc": 0.6, "tta_acc": 0.62 + seed / 100})
    md = render(paper_table(_frame(tmp_path), "1"), "md")
    assert "(n=2, tie, CI clipped, plain)" in md.split("| No augmentation |")[1].split("\n")[0]
    assert "(n=2, tie, TTA)" in md.split("| Random crop |")[1].split("\n")[0]
    (auto,) = auto_tables(_frame(tmp_path))
    assert "plain" not in render(auto, "md") and "TTA)" not in render(auto, "md")  # one metric per column


def test_a_metric_finished_runs_lack_is_not_reported_never_running(tmp_path):
    write_run(tmp_path, "done", method="none", test={"acc": 0.5})
    write_run(tmp_path, "rot", method="random-rotation", test={"acc": 0.6, "coverage": 0.4})
    write_run(tmp_path, "live", method="none", seed=1, state="none", old=False)
    (tmp_path / "live" / "heartbeat").touch()
    (res,) = auto_tables(collect(tmp_path, report=lambda _: None))
    cells = _cells(res, res.column_labels.index("coverage (%)"))
    assert cells["none"].status == "not-reported"
    md = render(res, "md")
    assert "not reported" in md.split("| none |")[1] and "(running)" not in md


def test_a_validation_tie_is_said_and_broken_by_the_documented_rule(tmp_path):
    for angle in (22.5, 45.0):
        for seed in (0, 1):
            write_run(tmp_path, f"a{angle}-{seed}", method="random-rotation", seed=seed,
                      hparams={"max_angle": angle}, val_acc=(1.0,), test={"acc": 0.9 + angle / 1000})
    (res,) = auto_tables(_frame(tmp_path))
    cell = res.cells[0][0]
    assert cell.selected == "max_angle=22.5" and cell.tie == 2 and cell.candidates == 2
    md = render(res, "md")
    assert ("max_angle=22.5 (validation tie of 2 of 2, broken by more seeds, then the first in sorted order "
            "of the configuration's values)") in md
