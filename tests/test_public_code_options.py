"""Choices of the public code where the paper is silent, and options for them.

The public lambda scheduler's hold and cap (on by default; None turns them off), Nesterov SGD for
the classifier and phi, phi's He truncated-normal initialisation, training on several crops per
image (the ImageNet config), and the class-specific fallback crops' bicubic resampling.
"""

from __future__ import annotations

import math

import pytest
import torch

from augbench.methods import MethodContext, StepContext, create_method
from augbench.methods.instaaug.entropy_schedule import DynamicLambda
from augbench.runs import resolve
from augbench.settings import create_benchmark
from augbench.train.trainer import Trainer


def lambdas(rule: DynamicLambda, entropies: list[float]) -> list[float]:
    return [round(rule.update(h)["lambda"], 6) for h in entropies]


def test_without_hold_and_cap_lambda_moves_whenever_the_entropy_stays_outside_the_band():
    rule = DynamicLambda(1.0, factor=2.0, patience=2, h_min=3.0, h_max=3.5, hold=None, max_steps=None)
    assert lambdas(rule, [1.0, 2.0, 2.5, 4.0, 3.9]) == [1.0, 2.0, 4.0, 4.0, 2.0]
    assert set(rule.state_dict()) == {"lam", "below", "above"}  # the options add no state when off


def test_hold_skips_a_change_while_the_entropy_already_moves_toward_the_band():
    rule = DynamicLambda(1.0, factor=2.0, patience=2, h_min=3.0, h_max=3.5, hold=0.005, max_steps=None)
    # below: rising by 1.0 (hold), flat (move), rising by 0.004 (move); above: falling by 0.1 (hold), rising (move)
    assert lambdas(rule, [1.0, 2.0, 2.0, 2.004, 4.0, 3.9, 3.8, 3.9]) == [1.0, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0, 2.0]
    assert "last" in rule.state_dict()


def test_max_steps_caps_lambda_around_lambda0():
    rule = DynamicLambda(1.0, factor=2.0, patience=1, h_min=3.0, h_max=3.5, hold=None, max_steps=2)
    assert lambdas(rule, [0.0] * 4) == [2.0, 4.0, 4.0, 4.0]
    assert lambdas(rule, [5.0] * 6) == [2.0, 1.0, 0.5, 0.25, 0.25, 0.25]
    assert int(rule.steps) == -2


def test_lambda_options_reach_instaaug_and_default_to_the_public_scheduler():
    ctx = MethodContext(num_classes=3, image_shape=(3, 32, 32), families=frozenset({"crop"}))
    public = create_method("instaaug", ctx)
    assert public.lam.hold == 0.005 and public.lam.max_steps == 50
    plain = create_method("instaaug", ctx, lambda_hold=None, lambda_max_steps=None)
    assert plain.lam.hold is None and plain.lam.max_steps is None


@pytest.mark.parametrize("nesterov", [False, True])
def test_train_nesterov_reaches_the_classifier_sgd(tmp_path, tiny, nesterov):
    settings = {**tiny, "train.nesterov": nesterov} if nesterov else tiny
    cfg = resolve("clutter-crop", "none", 0, settings)
    assert cfg.settings["train.nesterov"] is nesterov  # default False: the paper says SGD with momentum
    trainer = Trainer(create_benchmark(cfg.benchmark, cfg.settings), "none", cfg.hparams, 0, tmp_path / "run", {})
    group = trainer.model_opt.param_groups[0]
    assert group["nesterov"] is nesterov and group["momentum"] == 0.9


def test_class_specific_fallback_crops_can_be_bicubic():
    ctx = MethodContext(num_classes=3, image_shape=(3, 32, 32), families=frozenset({"crop"}))
    x = torch.rand(4, 3, 32, 32)
    views = {}
    for interp in ("bilinear", "bicubic"):
        method = create_method("instaaug", ctx, conditioning="class", fallback_interpolation=interp,
                               fallback_scale_min=0.2)
        torch.manual_seed(0)
        views[interp] = method.test_views(x, 3, StepContext(training=False))
    assert create_method("instaaug", ctx, conditioning="class").hp["fallback_interpolation"] == "bilinear"
    a, b = views["bilinear"], views["bicubic"]
    assert a.shape == b.shape == (12, 3, 32, 32)
    assert b.min() >= 0 and b.max() <= 1
    assert not torch.allclose(a, b) and (a - b).abs().mean() < 0.1  # same boxes, other resampling


CROP64 = MethodContext(num_classes=3, image_shape=(3, 64, 64), families=frozenset({"crop"}))


def test_phi_shares_the_public_codes_nesterov_sgd_and_none_without_momentum():
    group = create_method("instaaug", CROP64).make_optimizer().param_groups[0]
    assert isinstance(group["params"][0], torch.nn.Parameter)
    assert (group["nesterov"], group["momentum"], group["weight_decay"], group["lr"]) == (True, 0.9, 1e-4, 1e-5)
    plain = create_method("instaaug", CROP64, momentum=0.0).make_optimizer().param_groups[0]
    assert plain["nesterov"] is False  # torch refuses Nesterov without momentum (the contrastive phi)
    assert create_method("instaaug", CROP64, nesterov=False).make_optimizer().param_groups[0]["nesterov"] is False


def test_phi_convolutions_start_from_he_truncated_normal_and_heads_a_tenth_of_it():
    torch.manual_seed(0)
    net = create_method("instaaug", CROP64).phi
    convs = [m for m in net.trunk.modules() if isinstance(m, torch.nn.Conv2d)]
    weights = torch.cat([m.weight.flatten() / math.sqrt(2.0 / m.weight[0].numel()) for m in convs])
    assert weights.abs().max() <= 2 / 0.8796 + 1e-6  # truncated at 2 sigma of the rescaled normal
    assert weights.std().item() == pytest.approx(1.0, abs=0.05)  # the He std after truncation
    for head in net.heads:
        he = math.sqrt(2.0 / head.weight[0].numel()) / 10
        assert head.weight.abs().max() <= 2 / 0.8796 * he + 1e-7


def test_train_views_average_log_probabilities_and_credit_each_crop_with_the_shared_loss():
    m = create_method("instaaug", CROP64, train_views=3, pretrain_epochs=1)
    assert m.train_copies() == 1  # pretraining: identity views, no copies
    m.begin_epoch(1)
    assert m.train_copies() == 3
    outs = torch.randn(3, 4, 5)
    torch.testing.assert_close(m.combine_train_copies(outs), outs.log_softmax(-1).mean(0))
    x = torch.rand(4, 3, 64, 64)
    views = m.sample(x, StepContext(training=True, epoch=1), 3)
    assert views.log_prob.shape == (12,)
    loss = torch.tensor([1.0, 2.0, 3.0, 4.0])
    total, _ = m.objective(loss, views)
    lam = m.lam.value
    expected = loss.mean() - lam * views.entropy.mean() + (loss.repeat(3) * views.log_prob).mean()
    torch.testing.assert_close(total, expected)  # moving-average baseline: none before the first step
    assert float(m.baseline_ema) == pytest.approx(2.5)  # then the shared losses' mean


def test_the_classifier_warms_up_linearly_over_the_first_steps_and_keeps_its_schedule(tmp_path):
    """train.warmup_steps (Tiny-ImageNet 1000, contrastive 500: the public code's): step s of the first N
    takes (s + 1) / N of the learning rate; the optimizer's own lr, which schedules see, stays unscaled."""
    from test_datasets_tinyimagenet import make_tree

    assert resolve("tinyimagenet-crop", "none").settings["train.warmup_steps"] == 1000
    assert resolve("tinyimagenet-contrastive", "none").settings["train.warmup_steps"] == 500
    root = make_tree(tmp_path / "tiny")
    cfg = resolve("tinyimagenet-crop", "none", 0, {"data.root": str(root), "model.name": "small_cnn", "train.lr": 0.1,
                                                   "train.batch_size": 2, "train.warmup_steps": 3,
                                                   "run.progress": False})
    trainer = Trainer(create_benchmark(cfg.benchmark, cfg.settings), "none", cfg.hparams, 0, tmp_path / "run", {})
    used: list[float] = []
    step = trainer.model_opt.step

    def recording_step(*args, **kwargs):
        used.append(trainer.model_opt.param_groups[0]["lr"])
        return step(*args, **kwargs)

    trainer.model_opt.step = recording_step
    lrs = []
    for _ in range(4):
        lrs.append(trainer.classifier_lr())
        trainer._step(torch.arange(2))
        trainer.global_step += 1
    assert used == pytest.approx([0.1 / 3, 0.2 / 3, 0.1, 0.1]) and lrs == pytest.approx(used)
    assert trainer.model_opt.param_groups[0]["lr"] == pytest.approx(0.1)
