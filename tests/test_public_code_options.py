"""Options for the public code's behaviour where the paper is silent (off by default, the paper's reading on).

The public lambda scheduler's hold and cap, Nesterov SGD for the classifier, and the class-specific
fallback crops' bicubic resampling.
"""

from __future__ import annotations

import pytest
import torch

from augbench.methods import MethodContext, StepContext, create_method
from augbench.methods.instaaug.entropy_schedule import DynamicLambda
from augbench.runs import resolve
from augbench.settings import create_benchmark
from augbench.train.trainer import Trainer


def lambdas(rule: DynamicLambda, entropies: list[float]) -> list[float]:
    return [round(rule.update(h)["lambda"], 6) for h in entropies]


def test_default_lambda_moves_whenever_the_entropy_stays_outside_the_band():
    rule = DynamicLambda(1.0, factor=2.0, patience=2, h_min=3.0, h_max=3.5)
    assert lambdas(rule, [1.0, 2.0, 2.5, 4.0, 3.9]) == [1.0, 2.0, 4.0, 4.0, 2.0]
    assert set(rule.state_dict()) == {"lam", "below", "above"}  # the options add no state when off


def test_hold_skips_a_change_while_the_entropy_already_moves_toward_the_band():
    rule = DynamicLambda(1.0, factor=2.0, patience=2, h_min=3.0, h_max=3.5, hold=0.005)
    # below: rising by 1.0 (hold), flat (move), rising by 0.004 (move); above: falling by 0.1 (hold), rising (move)
    assert lambdas(rule, [1.0, 2.0, 2.0, 2.004, 4.0, 3.9, 3.8, 3.9]) == [1.0, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0, 2.0]
    assert "last" in rule.state_dict()


def test_max_steps_caps_lambda_around_lambda0():
    rule = DynamicLambda(1.0, factor=2.0, patience=1, h_min=3.0, h_max=3.5, max_steps=2)
    assert lambdas(rule, [0.0] * 4) == [2.0, 4.0, 4.0, 4.0]
    assert lambdas(rule, [5.0] * 6) == [2.0, 1.0, 0.5, 0.25, 0.25, 0.25]
    assert int(rule.steps) == -2


def test_lambda_options_reach_instaaug_and_default_to_the_paper():
    ctx = MethodContext(num_classes=3, image_shape=(3, 32, 32), families=frozenset({"crop"}))
    plain = create_method("instaaug", ctx)
    assert plain.lam.hold is None and plain.lam.max_steps is None
    public = create_method("instaaug", ctx, lambda_hold=0.005, lambda_max_steps=50)
    assert public.lam.hold == 0.005 and public.lam.max_steps == 50


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
