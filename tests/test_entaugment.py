"""EntAugment: magnitudes remembered per image from the step's own prediction, EntLoss, warm-up, resume."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from augbench.methods import MethodContext, StepContext, Views, create_method
from augbench.methods.entaugment import LEVELS, normalized_entropy
from augbench.models import build_model
from augbench.runs import resolve

K = 4


def make(train_size: int = 20, **hp) -> torch.nn.Module:
    ctx = MethodContext(K, (3, 16, 16), frozenset({"crop"}), train_size=train_size)
    return create_method("entaugment", ctx, **{"warmup_epochs": 0, **hp})


def test_normalized_entropy_is_zero_for_certainty_and_one_for_uniform():
    logits = torch.tensor([[50.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    h = normalized_entropy(logits)
    assert h[0] == pytest.approx(0.0, abs=1e-6) and h[1] == pytest.approx(1.0, abs=1e-6)


def test_the_steps_prediction_sets_each_images_next_magnitude():
    method = make()
    method.train()
    index = torch.tensor([3, 7, 11])
    x = torch.rand(3, 3, 16, 16)
    model = build_model("small_cnn", K, width=0.25)
    views = method.sample(x, StepContext(y=torch.zeros(3, dtype=torch.long), features=model.features, index=index))
    assert torch.equal(views.info["magnitude"], torch.zeros(3))  # never seen: 0, the weakest level
    outputs = torch.tensor([[20.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], [2.0, 1.0, 0.0, 0.0]])
    views.outputs = outputs
    method.objective(torch.ones(3), views)
    expected = 1.0 - normalized_entropy(outputs)
    assert torch.allclose(method.memory[index], expected)
    assert method.memory[[0, 1, 2]].eq(0).all()  # other images untouched
    again = method.sample(x, StepContext(features=model.features, index=index))
    assert torch.allclose(again.info["magnitude"], expected)
    assert expected[0] > 0.99 and expected[1] < 0.01  # sure: strongest; uniform: weakest


def test_levels_follow_the_magnitude():
    """A remembered magnitude of 1 applies every op at level 30: Posterize keeps 0 bits (black)."""
    method = make(base_pad=0)
    method.train()
    method.memory.fill_(1.0)
    torch.manual_seed(0)
    x = torch.rand(400, 3, 16, 16) * 0.5 + 0.25
    out = method.sample(x, StepContext(features=None, index=torch.arange(400) % 20)).x
    black = (out.flatten(1).amax(1) == 0).float().mean().item()
    assert black == pytest.approx(1 / 14, abs=0.04)  # Posterize is 1 of 14 ops, at 0 bits
    assert LEVELS == 30


def test_warm_up_is_trivialaugment_and_still_records():
    method = make(warmup_epochs=2)
    method.train()
    model = build_model("small_cnn", K, width=0.25)
    views = method.sample(torch.rand(2, 3, 16, 16), StepContext(epoch=1, features=model.features,
                                                                  index=torch.tensor([0, 1])))
    assert "magnitude" not in views.info  # levels drawn uniformly, not from the memory
    views.outputs = torch.zeros(2, K)
    method.objective(torch.ones(2), views)
    assert torch.allclose(method.memory[:2], torch.zeros(2), atol=1e-6)  # uniform prediction: 1 - 1
    method.memory[:2] = 0.5
    views = method.sample(torch.rand(2, 3, 16, 16), StepContext(epoch=2, features=model.features,
                                                                  index=torch.tensor([0, 1])))
    assert torch.equal(views.info["magnitude"], torch.full((2,), 0.5))


def test_entloss_adds_the_normalised_entropy_with_its_gradient():
    method = make(entloss=True)
    outputs = torch.randn(5, K, requires_grad=True)
    per_sample = F.cross_entropy(outputs, torch.arange(5) % K, reduction="none")
    loss, _ = method.objective(per_sample, Views(torch.rand(5, 3, 16, 16), outputs=outputs))
    assert loss.item() == pytest.approx((per_sample + normalized_entropy(outputs)).mean().item(), rel=1e-6)
    (grad,) = torch.autograd.grad(loss, outputs, retain_graph=True)
    plain, _ = make().objective(per_sample, Views(torch.rand(5, 3, 16, 16), outputs=outputs))
    (grad_plain,) = torch.autograd.grad(plain, outputs)
    assert not torch.allclose(grad, grad_plain)  # the entropy term pulls on the logits


def test_test_time_magnitude_is_the_current_predictions():
    method = make()
    method.eval()
    model = build_model("small_cnn", K, width=0.25)
    x = torch.rand(6, 3, 16, 16)
    got = method.inspect(x, StepContext(training=False, features=model.features))["magnitude"]
    model.eval()
    with torch.no_grad():
        assert torch.allclose(got, 1 - normalized_entropy(model(x)))
    assert math.isclose(float(got.min()), float(got.min()))  # finite


def clutter_tiny(tiny: dict) -> dict:
    return {**tiny, "model.width": 0.25, "run.device": "cpu", "method.warmup_epochs": 1}


def test_resume_from_an_epoch_checkpoint_is_exact(tiny, resumed_run):
    """The per-image magnitudes survive a checkpoint: an interrupted run ends with the same numbers."""
    cfg = resolve("clutter-crop", "entaugment", 0, {**clutter_tiny(tiny), "train.epochs": 3})
    reference = resumed_run(cfg, stop_epoch=2)
    assert 0.0 <= reference["magnitude"] <= 1.0 and "magnitude_fragile" in reference
