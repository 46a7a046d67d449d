"""`augbench bench`: the trainer's own step is timed, ratios and targets are right, memory is seen,
and no registered method loops over samples in its training path."""

from __future__ import annotations

import json
import math
import statistics
import time
from collections import Counter
from dataclasses import replace

import pandas as pd
import pytest
import torch

from augbench.cli import main
from augbench.errors import ConfigError
from augbench.methods import Views, get_method, list_methods
from augbench.perf import COLUMNS, TARGETS, PeakMemory, add_ratios, check_targets, count_ops, run_bench, time_calls
from augbench.perf.bench import ratio
from augbench.perf.configs import CONFIGS
from augbench.perf.harness import MethodHarness, synthetic_dataset
from augbench.perf.measure import calls_for, peak_of_allocations
from augbench.train.trainer import Trainer

CPU = torch.device("cpu")
QUIET = dict(device="cpu", min_time=0.0, log=lambda msg: None)


# ---------------------------------------------------------------------- the command
def test_bench_command_writes_every_figure_and_skips_methods_of_other_families(tmp_path, capsys):
    out = tmp_path / "perf.csv"
    rc = main(["bench", "--config", "tiny", "--device", "cpu", "--reps", "2", "--warmup", "1", "--min-time", "0",
               "--tta-batch", "2", "-q", "--methods", "random-crop", "random-rotation", "--out", str(out)])
    assert rc == 0
    df = pd.read_csv(out, keep_default_na=False, na_values=[""])
    assert list(df.columns) == COLUMNS
    rows = df.set_index("method")
    assert list(rows.index) == ["none", "random-crop", "random-rotation"]  # references always measured, first
    assert rows.loc["random-rotation", "status"] == "skipped"
    assert "'crop' family" in rows.loc["random-rotation", "note"]
    for m in ("none", "random-crop"):
        r = rows.loc[m]
        assert r["status"] == "ok"
        for col in ("augment_ms", "step_ms", "tta_ms", "tta_plain_ms", "augment_img_s"):
            assert r[col] > 0, col
        assert r["step_mem_mb"] > 0  # a training step allocates activations and gradients
        assert r["tta_views"] == CONFIGS["tiny"].settings["eval.tta_views"]
    none, crop = rows.loc["none"], rows.loc["random-crop"]
    assert none["step_x_none"] == 1.0 and crop["step_x_crop"] == 1.0 and none["mem_x_none"] == 1.0
    assert crop["mem_source"] == "cpu: torch.profiler allocation events"
    crop_rounds, none_rounds = json.loads(crop["reps_ms"]), json.loads(none["reps_ms"])
    assert len(crop_rounds["step"]) == 2 and crop["step_ms"] == pytest.approx(statistics.median(crop_rounds["step"]))
    per_round = [a / b for a, b in zip(crop_rounds["step"], none_rounds["step"])]  # ratios pair the rounds
    assert crop["step_x_none"] == pytest.approx(statistics.median(per_round))
    assert crop["tta_x_plain"] == pytest.approx(  # TTA over plain forwards of the same classifier, per round
        statistics.median([a / b for a, b in zip(crop_rounds["tta"], crop_rounds["plain"])]))
    assert none["augment_required_ms"] == 0.0  # neither reads the classifier's features
    printed = capsys.readouterr().out
    assert "random-crop" in printed and "skipped: random-rotation" in printed and "targets (" in printed


def test_bench_rejects_bad_input_in_one_line(tmp_path, capsys):
    assert main(["bench", "--config", "tiny", "--device", "cpu", "--methods", "no-such-method",
                 "--out", str(tmp_path / "p.csv")]) == 2
    assert "unknown method 'no-such-method'" in capsys.readouterr().err
    assert main(["bench", "--config", "tiny", "--device", "cpu", "--methods", "none", "--set", "train.nope=1",
                 "--out", str(tmp_path / "p.csv")]) == 2
    assert "unknown setting" in capsys.readouterr().err
    assert main(["bench", "--config", "tiny", "--device", "cpu", "--methods", "none", "--set", "random-crop:scale=1",
                 "--out", str(tmp_path / "p.csv")]) == 2
    assert "unknown setting 'scale'" in capsys.readouterr().err
    assert main(["bench", "--config", "tiny", "--device", "cpu", "--methods", "none", "--set", "h_min=1",
                 "--out", str(tmp_path / "p.csv")]) == 2  # a bare name reaches the measured methods that declare it
    assert "--set h_min: no method of bench declares it; valid: flip" in capsys.readouterr().err
    assert main(["bench", "--config", "tiny", "--device", "cpu", "--measure", "augment,speed",
                 "--out", str(tmp_path / "p.csv")]) == 2
    assert "unknown measure 'speed'" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main(["bench", "--config", "tiny", "--device", "cuda", "--out", str(tmp_path / "p.csv")]) == 2
        assert "torch.cuda.is_available() is False" in capsys.readouterr().err


def test_bench_hyperparameters_reach_the_methods_that_declare_them():
    df = run_bench("tiny", ["none"], hparams={"scale_max": 0.05}, reps=1, warmup=1, measures=("augment",),
                   memory=False, **QUIET).set_index("method")
    assert df.loc["none", "status"] == "ok"  # none declares no scale_max
    assert df.loc["random-crop", "status"] == "skipped" and "scale_min" in df.loc["random-crop", "note"]


# ---------------------------------------------------------------------- the same step as the trainer
def test_bench_times_the_trainers_own_step_on_the_same_batches(monkeypatch):
    calls: list[tuple[str, torch.Tensor]] = []
    original = Trainer._step

    def spy(self, idx):
        calls.append((self.method.name, idx.clone()))
        return original(self, idx)

    monkeypatch.setattr(Trainer, "_step", spy)
    df = run_bench("tiny", ["none"], reps=3, warmup=2, measures=("step",), **QUIET)
    # warm-up (2 each), 3 timed rounds in ABBA order, 2 untimed calls each for peak memory
    order = [m[0] for m, _ in calls]
    assert "".join(order) == "nnrr" + "nr" + "rn" + "nr" + "nnrr"
    per_method = {m: [i for n, i in calls if n == m] for m in ("none", "random-crop")}
    assert all(torch.equal(a, b) for a, b in zip(*per_method.values()))  # same batches, same order
    assert len({tuple(i.tolist()) for i in per_method["none"]}) > 1  # ... cycled, not one batch over and over
    assert df["augment_ms"].isna().all() and (df["step_ms"] > 0).all()  # only what was asked for


def test_rewind_returns_to_the_start_state_so_every_block_times_the_same_steps(tmp_path):
    h = _harness("random-crop", "clutter-crop", tmp_path)
    start = {k: v.clone() for k, v in h.trainer.model.state_dict().items()}
    idx = torch.arange(8)
    h.step(idx)
    after_one = {k: v.clone() for k, v in h.trainer.model.state_dict().items()}
    h.step(idx)
    assert any(not torch.equal(after_one[k], v) for k, v in h.trainer.model.state_dict().items())
    h.rewind()
    assert all(torch.equal(start[k], v) for k, v in h.trainer.model.state_dict().items())
    assert h.steps_since_rewind == 0
    h.step(idx)  # the same crops (RNG rewound too) and the same optimizer state: the same weights
    assert all(torch.equal(after_one[k], v) for k, v in h.trainer.model.state_dict().items())


def test_a_step_with_a_non_finite_loss_fails_its_row_and_says_so(monkeypatch):
    original = Trainer._step

    def diverged(self, idx):
        stats = original(self, idx)
        return {**stats, "loss": math.nan} if self.method.name == "random-crop" else stats

    monkeypatch.setattr(Trainer, "_step", diverged)
    df = run_bench("tiny", ["none"], reps=1, warmup=1, measures=("step",), memory=False, **QUIET).set_index("method")
    assert df.loc["none", "status"] == "ok"
    assert df.loc["random-crop", "status"] == "failed"
    assert "random-crop's training step gave loss nan at step 1 from the start state" in df.loc["random-crop", "note"]


def _count_calls(monkeypatch: pytest.MonkeyPatch, method_cls: type, attr: str) -> tuple[Counter, Counter]:
    """Counters, by method name, of trainer steps and of calls of `method_cls.attr`."""
    steps, calls = Counter(), Counter()
    original_step, original = Trainer._step, getattr(method_cls, attr)

    def spy_step(self, idx):
        steps[self.method.name] += 1
        return original_step(self, idx)

    def spy(self, *args, **kwargs):
        calls[self.name] += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "_step", spy_step)
    monkeypatch.setattr(method_cls, attr, spy)
    return steps, calls


def test_exploration_is_amortised_and_the_feature_pass_is_shown_apart(monkeypatch):
    ada = get_method("adaaug")
    steps, explores = _count_calls(monkeypatch, ada, "explore")
    df = run_bench("tiny", ["adaaug"], reps=2, warmup=1, measures=("augment", "step"), **QUIET).set_index("method")
    period = ada.hparams["explore_every"].default
    # 1 warm-up + 2 timed + 2 memory blocks; a block of `period` steps holds one exploration
    assert steps["adaaug"] == 5 * period and steps["none"] == 5
    assert explores["adaaug"] == 5
    r = df.loc["adaaug"]
    assert 0 < r["augment_required_ms"] <= r["augment_ms"]  # AdaAug reads the classifier's features
    mine, none = json.loads(r["reps_ms"]), json.loads(df.loc["none", "reps_ms"])
    own = [100 * (a - q) / n for a, q, n in zip(mine["augment"], mine["required"], none["step"])]
    assert r["augment_own_pct"] == pytest.approx(statistics.median(own))  # per round, minus the feature pass


def test_tta_shows_the_feature_passes_a_policy_requires_apart():
    df = run_bench("tiny", ["adaaug"], reps=2, warmup=1, measures=("tta",), memory=False, **QUIET).set_index("method")
    r = df.loc["adaaug"]
    assert 0 < r["tta_required_ms"] < r["tta_ms"]  # its policy reads the classifier's features of every view
    mine = json.loads(r["reps_ms"])
    own = [(t - q) / p for t, q, p in zip(mine["tta"], mine["tta_required"], mine["plain"])]
    assert r["tta_own_x_plain"] == pytest.approx(statistics.median(own)) and r["tta_own_x_plain"] < r["tta_x_plain"]
    assert df.loc["none", "tta_required_ms"] == 0.0


def test_a_timed_block_holds_exactly_one_teachaugment_update(monkeypatch, tmp_path):
    teach = get_method("teachaugment")
    steps, updates = _count_calls(monkeypatch, teach, "adversarial_step")
    run_bench("tiny", ["teachaugment"], reps=2, warmup=1, measures=("step",), **QUIET)
    period = teach.hparams["update_every"].default
    # 1 warm-up + 2 timed + 2 memory blocks of `period` steps, each from the start state
    assert period > 1 and steps["teachaugment"] == 5 * period and updates["teachaugment"] == 5
    # the augmentation alone is timed over the same period: one update per `period` calls
    h = _harness("teachaugment", "clutter-crop", tmp_path)
    assert h.block == period
    x, y = torch.rand(8, 3, 32, 32), torch.randint(4, (8,))
    for offset in range(period):
        h.augment(x, y, offset)
    assert updates["teachaugment"] == 6


# ---------------------------------------------------------------------- ratios and targets
def _figures(**changes) -> pd.DataFrame:
    df = pd.DataFrame({
        "config": ["paper"] * 4, "method": ["none", "random-crop", "instaaug", "adaaug"],
        "status": ["ok", "ok", "ok", "ok"],
        "augment_ms": [0.1, 2.0, 6.0, 30.0], "augment_iqr_ms": [0.0] * 4, "augment_required_ms": [0.0, 0.0, 0.0, 25.0],
        "step_ms": [100.0, 110.0, 132.0, 150.0], "step_iqr_ms": [0.0] * 4, "tta_ms": [50.0, 55.0, 60.0, 80.0],
        "tta_iqr_ms": [0.0] * 4, "tta_plain_ms": [50.0] * 4, "tta_plain_iqr_ms": [0.0] * 4,
        "tta_required_ms": [0.0, 0.0, 0.0, 20.0],
        "step_mem_mb": [1000.0, 1000.0, 1100.0, 1500.0],
    })
    for col, values in changes.items():
        df[col] = values
    return add_ratios(df)


def test_ratios_and_targets_from_known_figures():
    r = _figures().set_index("method")
    assert r.loc["instaaug", "step_x_crop"] == pytest.approx(1.2)
    assert r.loc["instaaug", "step_x_none"] == pytest.approx(1.32)
    assert r.loc["adaaug", "augment_own_pct"] == pytest.approx(5.0)  # (30 - 25) / 100 ms
    assert r.loc["adaaug", "augment_required_pct"] == pytest.approx(25.0)
    assert r.loc["instaaug", "mem_x_crop"] == pytest.approx(1.1)
    assert r.loc["random-crop", "tta_x_plain"] == pytest.approx(1.1)
    assert r.loc["adaaug", "tta_own_x_plain"] == pytest.approx(1.2)  # (80 - 20) / 50: its feature passes apart
    t = check_targets(r.reset_index())
    insta = t[(t["method"] == "instaaug") & (t["target"].str.startswith("InstaAug"))].iloc[0]
    assert insta["value"] == pytest.approx(1.2) and math.isnan(insta["noise"])  # no rounds: noise unknown
    assert insta["verdict"] == "missed" and insta["binding"]
    aug = t[t["target"].str.startswith("augmentation")].set_index("method")
    assert set(aug["verdict"]) == {"met"}
    tta = t[t["target"].str.startswith("test-time")].set_index("method")["verdict"].to_dict()
    assert tta == {"none": "met", "random-crop": "missed", "instaaug": "missed", "adaaug": "missed"}
    embedded = check_targets(r.reset_index().assign(config="embedded"))
    assert not embedded[embedded["method"] == "instaaug"]["binding"].iloc[0]  # defined on the paper config


def test_ratios_pair_rounds_and_a_miss_within_the_noise_is_called_noise():
    rounds = ['{"step": [100, 100, 100, 100]}', '{"step": [100, 200, 100, 100]}',
              '{"step": [100, 230, 125, 150]}', '{"step": [100, 100, 100, 100]}']
    r = _figures(reps_ms=rounds)
    insta = r.set_index("method").loc["instaaug"]
    # per round 1.0, 1.15, 1.25, 1.5 against random-crop: median 1.2, quartiles 1.1125 and 1.3125
    assert insta["step_x_crop"] == pytest.approx(1.2) and insta["step_x_crop_noise"] == pytest.approx(0.1)
    assert insta["step_x_none"] == pytest.approx(1.375)  # 1.0, 2.3, 1.25, 1.5: paired, not 132 / 100
    t = check_targets(r, [replace(TARGETS[0], limit=1.15)])
    verdict = t[(t["method"] == "instaaug") & (t["target"].str.startswith("InstaAug"))]["verdict"].iloc[0]
    assert verdict == "noise"  # 1.2 - 0.1 <= 1.15
    assert check_targets(r)["verdict"].iloc[0] == "missed"  # the target itself: 1.05
    assert ratio([2.0, 4.0], [1.0, 2.0], 3.0, 1.5) == (2.0, 0.0)
    value, noise = ratio([2.0, 4.0, 6.0], [1.0, 2.0], 4.0, 1.5)  # not the same rounds: medians
    assert value == pytest.approx(4.0 / 1.5) and math.isnan(noise)


def test_ratios_are_nan_without_a_reference():
    r = _figures(method=["x", "y", "z", "w"]).iloc[0]
    assert math.isnan(r["step_x_none"]) and math.isnan(r["step_x_crop"]) and math.isnan(r["augment_own_pct"])
    assert r["tta_x_plain"] == 1.0
    assert (check_targets(_figures(method=["x", "y", "z", "w"]))["verdict"].iloc[0]) == "n/a"  # no instaaug


# ---------------------------------------------------------------------- measurement primitives
def test_calls_per_block_follow_autorange():
    assert calls_for(0.01, 0.05) == 5
    assert calls_for(1.0, 0.05) == 1
    assert calls_for(1e-9, 0.05, max_calls=20) == 20
    assert calls_for(0.0, 0.05) == 1
    assert time_calls(lambda: time.sleep(0.01), 2, CPU) >= 0.009


def test_peak_memory_on_cpu_is_exact_for_a_tensor_freed_inside_the_block():
    mem = PeakMemory(CPU)
    with mem:
        x = torch.ones(12 * 2**20 // 4)  # 12 MiB
        y = x * 2  # 24 MiB live
        del x, y
        z = torch.ones(2**20 // 4)  # 1 MiB after the peak
    assert mem.source.startswith("cpu: torch.profiler")
    assert mem.peak_bytes == pytest.approx(24 * 2**20, abs=4096)
    assert z.numel() == 2**18
    assert peak_of_allocations([(2, -10), (0, 5), (1, 7), (3, 20)]) == 22  # time order, from 0
    assert peak_of_allocations([(0, 5), (1, 7), (2, -10), (3, 20)], since=2) == 10  # above 12 at t=2


def test_peak_memory_after_restart_counts_a_step_that_frees_older_blocks():
    """A training step frees the previous step's gradients: blocks older than the profiler."""
    grad = torch.ones(8 * 2**20 // 4)  # 8 MiB allocated before recording starts

    def step():
        nonlocal grad
        activations = torch.ones(16 * 2**20 // 4)  # 16 MiB
        grad = None  # frees the old 8 MiB ...
        grad = activations * 2  # ... and allocates a new 16 MiB: 32 MiB live at most, 16 more than at start

    mem = PeakMemory(CPU)
    with mem:
        step()
        mem.restart()
        step()
    assert mem.peak_bytes == pytest.approx(16 * 2**20, abs=4096)  # old block's size known from call 1


# ---------------------------------------------------------------------- no per-sample Python loops
FAMILY_BENCHMARK = {"crop": "clutter-crop", "rotation": "glyphs-rotation", "color": "texture-color",
                    "policy": "clutter-crop"}


def _cases() -> list[tuple[str, str]]:
    cases = []
    for name in list_methods():
        benches = sorted({FAMILY_BENCHMARK[f] for f in get_method(name).families if f in FAMILY_BENCHMARK})
        cases += [(name, b) for b in benches]
    return cases


def _harness(method: str, benchmark: str, tmp_path) -> MethodHarness:
    cfg = CONFIGS["tiny"]
    ds = synthetic_dataset(40, 4, (3, cfg.image_size, cfg.image_size), cfg.num_classes)
    overrides = {**cfg.settings, "run.device": "cpu", "run.progress": False}
    return MethodHarness(benchmark, method, overrides, ds, tmp_path / method)


def _sample_ops(h: MethodHarness, batch: int) -> int:
    size = CONFIGS["tiny"].image_size
    torch.manual_seed(0)  # the same draws every time: the count is reproducible
    x = torch.rand(batch, 3, size, size)
    y = torch.randint(CONFIGS["tiny"].num_classes, (batch,))
    h.augment(x, y)  # lazy initialisation (LazyLinear, caches) stays out of the count
    torch.manual_seed(0)
    return count_ops(lambda: h.augment(x, y))


def _grows_with_batch(h: MethodHarness, small: int = 64, large: int = 256) -> tuple[bool, int, int]:
    """(count grows, ops at `small`, ops at `large`). A loop adds >= 192 ops from 64 to 256 images.

    Not 4 against 64: methods group images by op (policies), and 4 images reach only a few
    groups, so a batched method legitimately runs more kernels at 64; from 64 images every
    group is present (almost surely), so the count must stay flat from there.
    """
    n_small, n_large = _sample_ops(h, small), _sample_ops(h, large)
    return n_large > 1.25 * n_small + 16, n_small, n_large


@pytest.mark.parametrize("method,benchmark", _cases())
def test_no_per_sample_loop_in_the_training_path(method, benchmark, tmp_path):
    try:
        h = _harness(method, benchmark, tmp_path)
    except ValueError as exc:  # e.g. a colour method on a benchmark it cannot run (AugbenchError)
        pytest.skip(str(exc))
    grows, small, large = _grows_with_batch(h)
    assert not grows, f"{method} on {benchmark}: {small} ATen ops for 64 images, {large} for 256"


def test_the_loop_detector_catches_a_per_sample_loop(tmp_path, monkeypatch):
    h = _harness("random-rotation", "glyphs-rotation", tmp_path)
    method = h.trainer.method
    batched = type(method).sample

    def looped(self, x, ctx, n_views=1):  # the same transform, one image at a time
        return Views(torch.cat([batched(self, xi[None], ctx, n_views).x for xi in x]), n_views)

    assert not _grows_with_batch(h, 16, 64)[0]
    monkeypatch.setattr(type(method), "sample", looped)
    assert _grows_with_batch(h, 16, 64)[0]


# ---------------------------------------------------------------------- the public code's step, clocks, figure
def _last_linear(model: torch.nn.Module) -> torch.nn.Module:
    return [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]


def test_the_public_step_is_two_classifier_passes_the_second_in_eval_mode_through_the_classifier(tmp_path):
    from augbench.perf.public import PublicInstaAugHarness

    cfg = CONFIGS["tiny"]
    ds = synthetic_dataset(40, 4, (3, cfg.image_size, cfg.image_size), cfg.num_classes)
    overrides = {**cfg.settings, "run.device": "cpu", "run.progress": False}
    counts = {}
    for cls in (MethodHarness, PublicInstaAugHarness):
        h = cls("clutter-crop", "instaaug", overrides, ds, tmp_path / cls.__name__)
        t = h.trainer
        modes: list[bool] = []
        backward: list[int] = []
        t.model.register_forward_hook(lambda m, a, o, seen=modes: seen.append(m.training))
        _last_linear(t.model).register_full_backward_hook(lambda m, gi, go, seen=backward: seen.append(1))
        phi = [p.detach().clone() for p in t.method.parameters()]
        clf = [p.detach().clone() for p in t.model.parameters()]
        h.step(torch.arange(8))
        assert any(not torch.equal(a, b) for a, b in zip(phi, t.method.parameters()))  # phi stepped
        assert any(not torch.equal(a, b) for a, b in zip(clf, t.model.parameters()))  # the classifier stepped
        assert t.model.training and t.global_step == 1
        counts[cls.system] = (modes, len(backward))
    assert counts["augbench"] == ([True], 1)  # one pass feeds both optimizers
    assert counts["public"] == ([True, False], 2)  # train-mode pass, then eval-mode pass backpropagated through


def test_the_public_step_is_for_lrp_instaaug_only(tmp_path):
    from augbench.perf.public import PublicInstaAugHarness

    cfg = CONFIGS["tiny"]
    ds = synthetic_dataset(40, 4, (3, cfg.image_size, cfg.image_size), cfg.num_classes)
    overrides = {**cfg.settings, "run.device": "cpu", "run.progress": False}
    with pytest.raises(ConfigError, match="LRP"):
        PublicInstaAugHarness("clutter-crop", "random-crop", overrides, ds, tmp_path / "r")


def test_compare_public_rows_ratio_clock_and_figure(tmp_path, capsys):
    out, fig = tmp_path / "perf.csv", tmp_path / "step.png"
    rc = main(["bench", "--config", "tiny", "--device", "cpu", "--methods", "instaaug", "--compare-public",
               "--clock", "process", "--measure", "step,tta", "--tta-batch", "2", "--reps", "2", "--warmup", "1",
               "--min-time", "0", "--no-memory", "-q", "--figure", str(fig), "--out", str(out)])
    assert rc == 0
    df = pd.read_csv(out, keep_default_na=False, na_values=[""])
    assert list(df.columns) == COLUMNS and set(df["clock"]) == {"process"}
    assert list(zip(df["method"], df["system"])) == [("none", "augbench"), ("random-crop", "augbench"),
                                                     ("instaaug", "augbench"), ("instaaug", "public")]
    rows = {(m, s): r for (m, s), r in zip(zip(df["method"], df["system"]), df.to_dict("records"))}
    mine, public = rows[("instaaug", "augbench")], rows[("instaaug", "public")]
    assert public["status"] == "ok" and public["step_ms"] > 0 and math.isnan(public["tta_ms"])  # step only
    per_round = [a / b for a, b in zip(json.loads(mine["reps_ms"])["step"], json.loads(public["reps_ms"])["step"])]
    assert mine["step_x_public"] == pytest.approx(statistics.median(per_round))
    assert math.isnan(public["step_x_public"]) and public["step_x_crop"] > 0
    assert rows[("none", "augbench")]["tta_views_evaluated"] == 1  # identical test views: one forward
    assert mine["tta_views_evaluated"] == CONFIGS["tiny"].settings["eval.tta_views"]
    printed = capsys.readouterr().out
    assert "instaaug [public code]" in printed and "x public" in printed and "process clock" in printed
    assert "augbench's InstaAug step / the public code's InstaAug step" in printed
    t = check_targets(df)
    assert set(t[t["target"].str.startswith("InstaAug")]["method"]) == {"instaaug"}  # the public row is no target
    assert fig.stat().st_size > 1000


def test_clocks():
    from augbench.perf.measure import clock_for

    assert clock_for("process", CPU) is time.process_time and clock_for("wall", CPU) is time.perf_counter
    with pytest.raises(ConfigError, match="CPU time only"):
        clock_for("process", torch.device("cuda"))
    with pytest.raises(ConfigError, match="unknown clock"):
        clock_for("cycles", CPU)
    busy = time_calls(lambda: sum(range(20000)), 3, CPU, time.process_time)
    idle = time_calls(lambda: time.sleep(0.02), 1, CPU, time.process_time)
    assert busy > 0 and idle < 0.015  # CPU time: sleeping costs (almost) nothing


def test_step_figure_needs_a_step():
    from augbench.perf.figure import step_figure

    with pytest.raises(ValueError, match="no training step"):
        step_figure(pd.DataFrame({"status": ["ok"], "step_ms": [math.nan], "method": ["none"]}))
