"""Entropy weighting and schedules: dynamic lambda, the target rule, pretraining, phi's lr warm-up."""

from __future__ import annotations

import pytest
import torch

from augbench.errors import ConfigError
from augbench.methods import MethodContext, StepContext, Views, create_method
from augbench.methods.instaaug.entropy_schedule import DynamicLambda, EntropyTarget

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
