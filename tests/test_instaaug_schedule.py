"""Entropy weighting and schedules: dynamic lambda, the target rule, pretraining, phi's lr warm-up."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from public_lambda_rule import public_lambdas

from augbench.errors import ConfigError
from augbench.methods import MethodContext, StepContext, Views, create_method
from augbench.methods.instaaug.entropy_schedule import DynamicLambda, EntropyTarget
from augbench.runs import resolve

ROT = MethodContext(num_classes=4, image_shape=(3, 16, 16), families=frozenset({"rotation"}), steps_per_epoch=10)


def _method(**hp):
    torch.manual_seed(0)
    return create_method("instaaug", ROT, **{"h_min": 1.0, "h_max": 2.0, "lambda0": 0.5, **hp})


def test_lambda_rises_below_hmin_after_patience_epochs_and_falls_above_hmax():
    m = _method()  # factor 1.2, patience 2 (paper)
    lams = [m.end_epoch(e, {"entropy": h})["lambda"] for e, h in enumerate([0.5, 0.5, 0.5, 1.5, 0.5, 2.5, 2.5, 2.5])]
    expected = [0.5, 0.6, 0.72, 0.72, 0.72, 0.72, 0.6, 0.5]
    assert lams == pytest.approx(expected)


def test_lambda_state_is_in_the_checkpoint():
    m = _method()
    for e in range(3):
        m.end_epoch(e, {"entropy": 0.0})
    fresh = _method()
    fresh.load_state_dict(m.state_dict())
    assert fresh.lam.value == pytest.approx(0.72)
    # the counters came along too: one more epoch below Hmin moves lambda at once
    assert fresh.end_epoch(3, {"entropy": 0.0})["lambda"] == pytest.approx(0.864)


def test_lambda_falls_back_to_the_training_entropy_without_a_validation_split():
    m = _method(lambda_patience=1)
    views = Views(torch.zeros(4, 3, 16, 16), 1, entropy=torch.full((4,), 0.1, requires_grad=True))
    m.objective(torch.rand(4), views)
    assert m.end_epoch(0, {})["lambda"] == pytest.approx(0.6)
    assert m.end_epoch(1, {})["lambda"] == pytest.approx(0.6)  # accumulators reset each epoch: nothing to act on


def test_fixed_and_pretraining_keep_lambda():
    assert _method(lambda_rule="fixed").end_epoch(0, {"entropy": -5.0})["lambda"] == 0.5
    m = _method(pretrain_epochs=2, lambda_patience=1)
    assert [m.end_epoch(e, {"entropy": -5.0})["lambda"] for e in range(3)] == pytest.approx([0.5, 0.5, 0.6])


def test_bad_schedule_settings_are_config_errors():
    with pytest.raises(ConfigError):
        DynamicLambda(0.1, h_min=2.0, h_max=1.0)
    with pytest.raises(ConfigError):
        _method(h_min=3.0, h_max=1.0)


def test_objective_is_task_loss_minus_lambda_entropy():
    m = _method()
    h = torch.tensor([0.2, 0.4], requires_grad=True)
    loss, logs = m.objective(torch.tensor([1.0, 3.0]), Views(torch.zeros(2, 3, 16, 16), 1, entropy=h))
    assert loss.item() == pytest.approx(2.0 - 0.5 * 0.3)
    assert logs["lambda"].item() == pytest.approx(0.5) and logs["entropy"].item() == pytest.approx(0.3)
    loss.backward()
    torch.testing.assert_close(h.grad, torch.tensor([-0.25, -0.25]))


def test_target_rule_ramps_linearly_and_penalises_the_squared_gap():
    rule = EntropyTarget(start=0.5, end=2.5, epochs=10, weight=0.3)
    assert [rule.target(t) for t in (0, 5, 10, 20)] == pytest.approx([0.5, 1.5, 2.5, 2.5])
    assert rule.penalty(torch.tensor(2.0), 5).item() == pytest.approx(0.3 * 0.25)
    m = _method(lambda_rule="target", target_start=0.0, target_end=2.0, target_epochs=4)
    x = torch.rand(4, 3, 16, 16)
    views = m.sample(x, StepContext(training=True, epoch=2, step=20), 1)  # t = 2 epochs -> target 1.0
    loss, logs = m.objective(torch.zeros(4), views)
    assert logs["entropy_target"].item() == pytest.approx(1.0)
    assert loss.item() == pytest.approx(0.3 * (views.entropy.mean().item() - 1.0) ** 2, rel=1e-5)


def test_target_start_defaults_to_the_initial_entropy():
    m = _method(lambda_rule="target")
    views = m.sample(torch.rand(4, 3, 16, 16), StepContext(training=True, step=0), 1)
    assert m.target.start == pytest.approx(views.entropy.mean().item(), abs=0.05)
    assert m.target.end == pytest.approx(1.5)


def test_pretraining_gives_identity_views_and_plain_loss():
    m = _method(pretrain_epochs=2)
    x = torch.rand(4, 3, 16, 16)
    views = m.sample(x, StepContext(training=True, epoch=1), 2)
    torch.testing.assert_close(views.x, torch.cat([x, x]))
    loss, logs = m.objective(torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]), views)
    assert loss.item() == 4.5 and logs == {}
    assert m.sample(x, StepContext(training=True, epoch=2), 1).entropy is not None
    assert m.sample(x, StepContext(training=False), 1).entropy is not None  # evaluation is never "pretraining"


def test_phi_lr_warms_up_linearly_after_pretraining_and_begin_epoch_is_idempotent():
    m = _method(pretrain_epochs=2, warmup_epochs=4, lr=0.01, optimizer="adam")
    opt = m.make_optimizer()
    seen = []
    for epoch in range(8):
        m.begin_epoch(epoch)
        m.begin_epoch(epoch)  # again, as after a resume
        seen.append(opt.param_groups[0]["lr"])
    assert seen == pytest.approx([0.0, 0.0, 0.0025, 0.005, 0.0075, 0.01, 0.01, 0.01])
    assert isinstance(opt, torch.optim.Adam)
    sgd = _method().make_optimizer()
    assert isinstance(sgd, torch.optim.SGD)
    assert sgd.param_groups[0]["lr"] == 1e-5 and sgd.param_groups[0]["momentum"] == 0.9
    assert sgd.param_groups[0]["weight_decay"] == 1e-4


def test_freeze_keeps_phi_still_while_its_initial_distribution_crops():
    """The public contrastive code's no_train_period: phi's lr 0 for the first epochs, views still drawn."""
    m = _method(pretrain_epochs=1, freeze_epochs=2, warmup_epochs=2)
    assert [m.lr_factor(e) for e in range(6)] == pytest.approx([0.0, 0.0, 0.0, 0.5, 1.0, 1.0])
    x = torch.rand(4, 3, 16, 16)
    assert m.sample(x, StepContext(training=True, epoch=0), 1).entropy is None  # pretraining: identity views
    assert m.sample(x, StepContext(training=True, epoch=1), 1).entropy is not None  # frozen: drawn from phi
    with pytest.raises(ConfigError, match="freeze_epochs"):
        resolve("glyphs-rotation", "instaaug", 0, {"freeze_epochs": 20})


# ------------------------------------------------------------------ targets in the family's units
COLOR = MethodContext(num_classes=4, image_shape=(3, 16, 16), families=frozenset({"color"}), steps_per_epoch=10)
CROP32 = MethodContext(num_classes=4, image_shape=(3, 32, 32), families=frozenset({"crop"}), steps_per_epoch=10)


def test_target_spread_is_converted_to_nats_per_family():
    rot = _method(h_min=None, h_max=None, target_spread=[40.0])  # degrees
    assert (rot.h_min, rot.h_max) == pytest.approx((math.log(math.radians(32.0)), math.log(math.radians(50.0))))
    lrp = create_method("instaaug", CROP32, target_spread=[4.0], target_tolerance=2.0)  # 4 crops in play
    assert (lrp.h_min, lrp.h_max) == pytest.approx((math.log(2.0), math.log(8.0)))
    assert lrp.parts == () and lrp.lam.lam.shape == ()  # one part: the paper's scalar lambda
    col = create_method("instaaug", COLOR, target_spread=[0.2, 0.5, 0.5])
    assert col.parts == ("hue", "saturation", "value") and col.lam.lam.shape == (3,)
    assert col.lam.h_min.tolist() == pytest.approx([math.log(0.16), math.log(0.4), math.log(0.4)])
    assert col.h_min == pytest.approx(sum(col.lam.h_min.tolist()))  # totals for the diagnosis


@pytest.mark.parametrize("hp, words", [
    ({"target_spread": [0.2, 0.5]}, "needs 1 or 3 values"),
    ({"target_spread": [0.2], "h_min": -3.0}, "set one of target_spread, band_fraction or h_min/h_max"),
    ({"target_spread": [-0.1]}, "must be positive"),
])
def test_bad_target_spreads_name_the_problem(hp, words):
    with pytest.raises(ConfigError, match=words):
        create_method("instaaug", COLOR, **hp)
    with pytest.raises(ConfigError, match=r"one number in \[1, 17\]"):
        create_method("instaaug", CROP32, target_spread=[40.0])


def test_each_colour_dimension_gets_its_own_lambda():
    m = create_method("instaaug", COLOR, target_spread=[0.2, 0.5, 0.5], lambda0=1.0, lambda_factor=2.0,
                      lambda_patience=1)
    logs = m.validation_check(0, {"entropy_hue": -9.0, "entropy_saturation": math.log(0.5), "entropy_value": 5.0})
    assert [logs["lambda_hue"], logs["lambda_saturation"], logs["lambda_value"]] == pytest.approx([2.0, 1.0, 0.5])
    # the objective weighs each dimension's entropy by its own lambda
    x = torch.rand(2, 3, 16, 16)
    views = m.sample(x, StepContext(y=torch.zeros(2, dtype=torch.long), training=True), 1)
    parts = views.info["entropy_parts"]
    loss, _ = m.objective(torch.zeros(2), views)
    weighted = (parts.detach().mean(0) * torch.tensor([2.0, 1.0, 0.5])).sum()
    assert float(loss.detach()) == pytest.approx(-float(weighted), rel=1e-5)


def test_per_part_lambda_state_survives_a_checkpoint():
    m = create_method("instaaug", COLOR, target_spread=[0.2], lambda_patience=1)
    m.validation_check(0, {"entropy_hue": -9.0, "entropy_saturation": -9.0, "entropy_value": 0.0})
    fresh = create_method("instaaug", COLOR, target_spread=[0.2], lambda_patience=1)
    fresh.load_state_dict(m.state_dict())
    assert torch.equal(fresh.lam.lam, m.lam.lam) and not torch.equal(fresh.lam.lam, torch.full((3,), 0.2))


def test_the_trainer_runs_val_checks_per_epoch_and_lambda_reacts_at_each(tmp_path):
    from augbench.runs import resolve
    from augbench.settings import create_benchmark
    from augbench.train.trainer import Trainer

    tiny = {"data.n_train": 80, "data.n_test": 8, "data.image_size": 16, "train.batch_size": 8, "train.epochs": 2,
            "model.width": 0.25, "run.device": "cpu", "run.progress": False, "train.val_checks": 3,
            "lambda_patience": 1, "lambda_hold": None,  # no hold: lambda rises at every check
            "pretrain_fraction": None,  # phi (and lambda) from the first step
            "h_min": 50.0, "h_max": 60.0}  # far above the entropy
    cfg = resolve("glyphs-rotation", "instaaug", 0, tiny)
    trainer = Trainer(create_benchmark("glyphs-rotation", cfg.settings), "instaaug", cfg.hparams, 0, tmp_path,
                      {"run_id": "t"})
    assert trainer.steps_per_epoch == 9 and trainer._check_steps == {3, 6}
    seen: list[tuple[int, int]] = []
    lambdas: list[float] = []
    check = trainer.method.validation_check

    def recording(epoch, stats):
        seen.append((epoch, trainer.step_in_epoch))
        logs = check(epoch, stats)
        lambdas.append(logs["lambda"])
        return logs

    trainer.method.validation_check = recording
    trainer.fit()
    assert seen == [(0, 3), (0, 6), (0, 9), (1, 3), (1, 6), (1, 9)]  # two mid-epoch checks, then end_epoch's
    # every check moved lambda (the final report may restore an earlier epoch's state: the best one)
    assert lambdas == pytest.approx([0.3 * 1.2 ** k for k in range(1, 7)])


# ------------------------------------------------------------------ the public rule, on recorded sequences
TRAJECTORIES = Path(__file__).parent / "data" / "entropy_trajectories.json"


def _synthetic_trajectories() -> list[list[float]]:
    """Sequences that exercise every branch: ramps at, below and above the hold, plateaus long
    enough to reach the cap, crossings of the band, noise at the bounds."""
    gen = torch.Generator().manual_seed(0)
    out = [[1.0 + 0.01 * e for e in range(150)],  # rising 0.01 per epoch toward [3.0, 3.5]: always held
           [1.0 + 0.005 * e for e in range(150)],  # exactly the hold: the public `>` decides
           [5.0 - 0.004 * e for e in range(150)],  # falling slower than the hold: moves every epoch
           [1.0] * 80 + [5.0] * 120,  # long plateaus: the cap of 50 steps both ways
           [3.0, 2.99, 3.5, 3.51, 3.5, 2.0, 2.0, 4.0, 4.0, 3.2] * 8]  # on and across the bounds
    for _ in range(60):
        start = float(torch.empty(()).uniform_(0.5, 6.0, generator=gen))
        drift = float(torch.empty(()).uniform_(-0.02, 0.02, generator=gen))
        noise = float(torch.empty(()).uniform_(0.0, 0.02, generator=gen))
        steps = drift + noise * torch.randn(150, generator=gen, dtype=torch.float64)
        out.append((start + steps.cumsum(0)).tolist())
    return out


def _recorded_trajectories() -> list[list[float]]:
    """Validation entropies of real InstaAug runs (scripts/record_entropy_trajectories.py)."""
    return [t["entropy"] for t in json.loads(TRAJECTORIES.read_text())["trajectories"]]


def _bands(seq: list[float]) -> list[tuple[float, float]]:
    """Bands around, below and above a sequence, so its checks fall on every side of them."""
    q = torch.tensor(seq, dtype=torch.float64).quantile(torch.tensor([0.1, 0.3, 0.5, 0.7, 0.9], dtype=torch.float64))
    lo, q3, mid, q7, hi = q.tolist()
    return [(3.0, 3.5), (lo, q3), (q3, q7), (q7, hi), (mid, mid), (min(seq) - 1, min(seq) - 0.5),
            (max(seq) + 0.5, max(seq) + 1)]


def test_default_lambda_follows_the_public_scheduler_on_recorded_and_synthetic_entropies():
    """With InstaAug's defaults (factor 1.2, patience 2, hold 0.005, cap 50, lambda0 0.2) lambda
    after every check is the public code's, on every sequence and band."""
    recorded = _recorded_trajectories()
    sequences = recorded + _synthetic_trajectories()
    assert len(recorded) >= 8 and sum(len(s) for s in sequences) > 9_000
    moved = 0
    for seq in sequences:
        for h_min, h_max in _bands(seq):
            m = create_method("instaaug", ROT, h_min=h_min, h_max=h_max)
            ours = [m.end_epoch(e, {"entropy": h})["lambda"] for e, h in enumerate(seq)]
            public = public_lambdas(seq, 0.2, h_min, h_max)
            steps = _steps(public)
            assert _steps(ours) == steps, (h_min, h_max, seq)  # the same decision at every check
            assert ours == pytest.approx(public, rel=1e-5)  # augbench keeps lambda in float32
            moved += sum(s != 0 for s in steps)
    assert moved > 1000  # the comparison covers many changes, not just flat lambdas


def _steps(lams: list[float], lam0: float = 0.2) -> list[int]:
    """Each check's decision from a lambda trajectory: +1 (x1.2), -1 (/1.2) or 0."""
    return [round(math.log(b / a) / math.log(1.2)) for a, b in zip([lam0, *lams], lams)]


def test_the_public_rule_keeps_lambda_where_the_plain_rule_runs_away():
    rising = [1.0 + 0.01 * e for e in range(150)]  # toward [3.0, 3.5], 0.01 per epoch
    m = create_method("instaaug", ROT, h_min=3.0, h_max=3.5)
    assert [m.end_epoch(e, {"entropy": h})["lambda"] for e, h in enumerate(rising)][-1] == pytest.approx(0.2)
    plain = create_method("instaaug", ROT, h_min=3.0, h_max=3.5, lambda_hold=None, lambda_max_steps=None)
    last = [plain.end_epoch(e, {"entropy": h})["lambda"] for e, h in enumerate(rising)][-1]
    assert last == pytest.approx(0.2 * 1.2 ** 149, rel=1e-5) and last > 1e11
