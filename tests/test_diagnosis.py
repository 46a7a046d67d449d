"""A learned method that did not learn says so; one that cannot learn is refused at resolve time."""

from __future__ import annotations

import json
import math

import pytest

from augbench.cli import main
from augbench.errors import ConfigError
from augbench.methods import MethodContext, get_method
from augbench.results.cells import Cell, TableResult
from augbench.results.tables import _notes
from augbench.runs import execute, resolve
from augbench.train.diagnosis import diagnose, explain

BAND = {"h_min": 2.5, "h_max": 3.0, "h_init": 0.7, "h_top": 2.83}


def _val(*entropies: float, lr: float = 1.0) -> list[dict[str, float]]:
    return [{"entropy": h, "phi_lr_factor": lr} for h in entropies]


def test_diagnose_flags_each_failure_and_passes_a_healthy_run():
    assert diagnose(_val(0.7, 0.7, lr=0.0), BAND) == ["phi_frozen"]
    assert diagnose(_val(0.7, 0.71, 0.69), BAND) == ["never_moved"]
    assert diagnose(_val(0.7, -1.0, -3.0), BAND) == ["collapsed"]
    assert diagnose(_val(-11.1, -11.1), {**BAND, "h_init": -11.1}) == ["never_moved"]  # below the band from init
    assert diagnose(_val(0.7, 2.0, 2.82), {**BAND, "h_max": 2.6}) == ["saturated"]
    # within 5% of the way from init to the maximum: LRP crops at 2.77 of log 17 nats (a real run)
    assert diagnose(_val(0.7, 2.8, 2.77), {**BAND, "h_max": 2.6}) == ["saturated"]
    assert diagnose(_val(0.7, 2.8, 2.6), {**BAND, "h_max": 2.6}) == []
    assert diagnose(_val(0.7, 1.5, 2.7), BAND) == []
    assert diagnose(_val(0.7), {}) == []  # no band: no entropy flags
    assert diagnose([{"acc": 0.5}], BAND) == []  # a method without these logs
    assert "collapsed" in explain(["collapsed"], _val(0.7, -3.0), BAND)


def test_instaaug_states_its_band_and_family_maximum():
    m = get_method("instaaug")(MethodContext(4, (3, 32, 32), frozenset({"crop"})), parameterization="lrp")
    band = m.entropy_band()
    assert band["h_top"] == pytest.approx(math.log(m.distribution.n_raw), abs=1e-4)
    assert band["h_init"] < band["h_min"] < band["h_top"]
    color = get_method("instaaug")(MethodContext(4, (3, 32, 32), frozenset({"color"})), parameterization="color")
    assert color.entropy_band()["h_init"] < -10  # the colour ranges start at width ~0 (sigmoid(-4))


def test_resolve_refuses_a_run_whose_phi_never_trains():
    with pytest.raises(ConfigError) as err:
        resolve("tinyimagenet-crop", "instaaug", 0, {"train.epochs": 3})
    text = str(err.value)
    assert "\n" not in text and "train.epochs" in text and "pretrain_epochs" in text and "allow_frozen_phi" in text
    cfg = resolve("tinyimagenet-crop", "instaaug", 0, {"train.epochs": 3, "allow_frozen_phi": True})
    assert cfg.run_id == resolve("tinyimagenet-crop", "instaaug", 0, {"train.epochs": 3,
                                                                      "allow_frozen_phi": True}).run_id
    resolve("tinyimagenet-crop", "instaaug", 0, {"train.epochs": 11})


def test_allow_frozen_phi_is_not_part_of_the_identity():
    a = resolve("clutter-crop", "instaaug", 0, {"train.epochs": 3, "allow_frozen_phi": True})
    b = resolve("clutter-crop", "instaaug", 0, {"train.epochs": 3})
    assert a.run_id == b.run_id


def test_dry_run_prints_the_resolved_config_with_benchmark_defaults(capsys, tmp_path):
    assert main(["run", "tinyimagenet-crop", "--method", "instaaug", "--dry-run", "--set", "train.epochs=12",
                 "--out", str(tmp_path / "r")]) == 0
    cfg = json.loads(capsys.readouterr().out)
    assert cfg["hparams"]["pretrain_epochs"] == 10 and cfg["sources"]["pretrain_epochs"] == "benchmark default"
    assert cfg["settings"]["train.epochs"] == 12 and not (tmp_path / "r").exists()
    assert main(["run", "tinyimagenet-crop", "--method", "instaaug", "--set", "train.epochs=3"]) == 2
    assert "pretrain_epochs" in capsys.readouterr().err


def test_list_verbose_shows_benchmark_method_defaults(capsys):
    assert main(["list", "benchmarks", "-v"]) == 0
    assert "method defaults instaaug: parameterization='lrp', pretrain_epochs=10, warmup_epochs=10" in \
        capsys.readouterr().out


def test_frozen_run_records_and_prints_its_diagnosis(tmp_path, tiny, capsys):
    over = {**tiny, "train.epochs": 1, "allow_frozen_phi": True}
    metrics = execute(resolve("clutter-crop", "instaaug", 0, over), tmp_path / "run")
    assert metrics["diagnosis"].split(",")[0] == "phi_frozen"
    test = [json.loads(line) for line in (tmp_path / "run" / "records.jsonl").read_text().splitlines()][-1]
    assert test["split"] == "test" and test["metrics"]["diagnosis"] == metrics["diagnosis"]
    assert main(["run", "clutter-crop", "--method", "instaaug", "--out", str(tmp_path / "run"),
                 *[a for k, v in over.items() for a in ("--set", f"{k}={v}")]]) == 0
    assert "warning: instaaug did not learn (phi_frozen" in capsys.readouterr().err


def test_pretraining_epochs_are_never_the_reported_state():
    m = get_method("instaaug")(MethodContext(4, (3, 32, 32), frozenset({"crop"})), parameterization="lrp",
                               pretrain_epochs=2)
    assert [m.selectable(e) for e in range(4)] == [False, False, True, True]


def test_table_notes_say_how_many_runs_did_not_learn():
    cell = Cell("acc", n=2, status="ok", selected="default", candidates=1, not_learned=2, diagnoses="never_moved")
    result = TableResult("t", "t", "clutter-crop", ["instaaug"], [{}], (), ["acc"], [[cell]])
    assert "2 run(s) did not learn (never_moved)" in _notes(result)[0]


def test_divergence_flags_a_loss_that_explodes_or_is_not_finite():
    from augbench.train.diagnosis import divergence

    train = [{"loss": 1.0, "task_loss": 1.5}, {"loss": 120.0, "task_loss": 143.0}]
    assert "training loss 143" in divergence(train, [], None, start=1.5)
    assert "test loss 8.5e+14" in divergence([], [{"loss": 2.0}], {"loss": 8.5e14}, start=2.3)
    assert divergence([], [{"loss": 2.0}, {"loss": math.nan}], None, start=2.3) == "validation loss not finite"
    assert divergence([], [], {"loss": math.inf}) == "test loss not finite"
    # a loss that fell, and an entropy-shifted training objective, are healthy
    assert divergence([{"loss": -0.4, "task_loss": 2.3}, {"loss": -1.0, "task_loss": 0.2}],
                      [{"loss": 3.0}, {"loss": 0.3}], {"loss": 0.4}, start=2.3) == ""
    assert divergence([{"task_loss": 2.3}, {"task_loss": 22.0}], [], None) == ""  # within 10x of the first record


def test_a_run_whose_loss_explodes_is_flagged_diverged_in_records_and_cli(tmp_path, tiny, capsys):
    """Adam at lr 3 on the classifier: the loss stays finite (no TrainingDiverged) but ends ~100x chance."""
    over = {**tiny, "train.epochs": 3, "train.optimizer": "adam", "train.lr": 3.0}
    metrics = execute(resolve("clutter-crop", "none", 0, over), tmp_path / "run")
    assert metrics["diagnosis"] == "diverged" and "over 10x the first step's" in metrics["diagnosis_detail"]
    test = [json.loads(line) for line in (tmp_path / "run" / "records.jsonl").read_text().splitlines()][-1]
    assert test["split"] == "test" and test["metrics"]["diagnosis"] == "diverged"
    assert main(["run", "clutter-crop", "--method", "none", "--out", str(tmp_path / "run"),
                 *[a for k, v in over.items() for a in ("--set", f"{k}={v}")]]) == 0
    assert "warning: none diverged (diverged): the loss diverged (" in capsys.readouterr().err
    healthy = execute(resolve("clutter-crop", "none", 0, {**tiny, "train.epochs": 2}), tmp_path / "ok")
    assert "diagnosis" not in healthy


def test_table_notes_name_diverged_runs():
    cell = Cell("acc", n=3, status="ok", selected="default", candidates=1, not_learned=1, diagnoses="diverged")
    result = TableResult("t", "t", "clutter-crop", ["none"], [{}], (), ["acc"], [[cell]])
    assert "1 run(s) flagged by the run's diagnosis (diverged)" in _notes(result)[0]
