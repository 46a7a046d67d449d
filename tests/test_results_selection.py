"""Model selection: finished runs, their validation scores, the configuration chosen by validation."""

from __future__ import annotations

import json

import pytest
from test_results_helpers import write_run

from augbench.results.cells import paper_table
from augbench.results.collect import collect
from augbench.results.selection import choose_config, finished_runs, representatives


def _frame(root):
    return collect(root, report=lambda _: None, running_within=0)


def test_sweep_is_selected_by_validation_never_by_test(tmp_path):
    # scale 0.5: best test accuracy, worse validation accuracy -> scale 0.1 must be reported
    for scale, val, test in ((0.1, 0.70, 0.60), (0.5, 0.65, 0.80), (0.9, 0.50, 0.90)):
        for seed in range(2):
            write_run(tmp_path, f"rc{scale}-{seed}", benchmark="tinyimagenet-crop", method="random-crop", seed=seed,
                      hparams={"scale_min": scale}, val_acc=(0.1, val), test={"tta_acc": test})
    res = paper_table(_frame(tmp_path), "1")
    cell = dict(zip(res.row_labels, (line[0] for line in res.cells)))["Random crop"]
    assert cell.selected == "scale_min=0.1" and cell.candidates == 3
    assert cell.mean == pytest.approx(60.0) and cell.n == 2


def test_validation_accuracy_is_the_selected_epochs(tmp_path):
    write_run(tmp_path, "r", val_acc=(0.9, 0.4, 0.6), test={"acc": 0.5, "best_epoch": 2})
    runs = finished_runs(_frame(tmp_path))
    assert runs["val_acc"].tolist() == [0.6]  # epoch 2 (the reported weights), not the max 0.9


def test_validation_score_falls_back_like_the_trainer(tmp_path):
    """Fixed-classifier runs validate with `score` (no `acc`), contrastive ones may only have a loss."""
    for name, metrics in (("s", {"score": 0.8}), ("l", {"loss": 2.0})):
        d = write_run(tmp_path, name, val_acc=(), test={"acc": 0.5, "best_epoch": 0})
        head = {"run_id": name, "benchmark": "bench", "method": "none", "seed": 0}
        lines = [json.dumps({**head, "step": 1, "epoch": 0, "split": "val", "metrics": metrics})]
        (d / "records.jsonl").write_text("\n".join(lines + (d / "records.jsonl").read_text().splitlines()) + "\n")
    runs = finished_runs(_frame(tmp_path)).set_index("run_dir")["val_acc"]
    assert runs.to_dict() == {"l": -2.0, "s": 0.8}


def test_representatives_take_the_chosen_configuration_and_the_lowest_usable_seed(tmp_path):
    for scale, val in ((0.1, 0.7), (0.5, 0.6)):
        for seed in range(3):
            write_run(tmp_path, f"rc{scale}-{seed}", method="random-crop", seed=seed, hparams={"scale_min": scale},
                      val_acc=(val,), test={"acc": 0.5})
    write_run(tmp_path, "none-0", method="none", test={"acc": 0.4})
    done = finished_runs(_frame(tmp_path))
    assert choose_config(done[done["method"] == "random-crop"])[1] == "scale_min=0.1"
    assert sorted(representatives(done)["run_dir"]) == ["none-0", "rc0.1-0"]
    picked = representatives(done, lambda run_dir: run_dir.endswith("-2"))  # only seed 2 "saved" what is needed
    assert picked["run_dir"].tolist() == ["rc0.1-2"]  # none-0 has no usable run: left out


def test_representatives_by_a_metric_take_the_median_seed_and_say_so(tmp_path):
    for seed, cov in enumerate((0.9, 0.1, 0.5, 0.5)):
        write_run(tmp_path, f"r-{seed}", method="random-rotation", seed=seed, test={"acc": 0.5, "coverage": cov})
    write_run(tmp_path, "n-0", method="none", test={"acc": 0.4})
    done = finished_runs(_frame(tmp_path))
    picked = representatives(done, by="coverage").set_index("method")
    # sorted by (coverage, seed): 0.1 s1, 0.5 s2, 0.5 s3, 0.9 s0 -> the lower middle, seed 2
    assert picked.at["random-rotation", "run_dir"] == "r-2"
    assert picked.at["random-rotation", "shown"] == "seed 2, median coverage of 4 seeds"
    assert picked.at["none", "shown"] == "seed 0, the only seed"
    usable = representatives(done, lambda d: d in ("r-0", "r-1"), by="coverage")
    assert usable["shown"].tolist() == ["seed 1, median coverage of 2 seeds"]  # only usable runs are ranked
    lowest = representatives(done[done["method"] == "random-rotation"], by="violation")
    assert lowest["shown"].tolist() == ["seed 0, the lowest of 4 seeds (none reports violation)"]
