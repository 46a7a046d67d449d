"""Sample-aware RandAugment: its score, the alternating exploration and refinement steps, inspect."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from augbench.benchmarks import magnitude_metrics
from augbench.methods import MethodContext, StepContext, create_method
from augbench.methods.sra import class_scores
from augbench.models import build_model

K = 4


def make(**hp) -> torch.nn.Module:
    return create_method("sra", MethodContext(K, (3, 16, 16), frozenset({"crop"})), **hp)


def test_score_is_the_codes_cosine_to_the_label_to_the_power_two_over_ln_k():
    logits = torch.randn(5, K)
    y = torch.arange(5) % K
    p = F.softmax(logits, -1)
    code = F.cosine_similarity(p, F.one_hot(y, K).float()) ** (2 / math.log(K))
    assert torch.allclose(class_scores(logits).gather(1, y[:, None]).squeeze(1), code, atol=1e-6)
    certain = class_scores(torch.tensor([[30.0, 0.0, 0.0, 0.0]]))
    assert certain[0, 0] == pytest.approx(1.0, abs=1e-6) and certain[0, 1] < 1e-6


def test_even_steps_explore_and_odd_steps_refine_with_the_label_score():
    method = make(base_pad=0)
    method.train()
    model = build_model("small_cnn", K, width=0.25)
    x, y = torch.rand(6, 3, 16, 16), torch.arange(6) % K
    torch.manual_seed(0)
    explore = method.sample(x, StepContext(y=y, features=model.features, step=4))
    refine = method.sample(x, StepContext(y=y, features=model.features, step=5))
    model.eval()
    with torch.no_grad():
        expected = class_scores(model(x)).gather(1, y[:, None]).squeeze(1)
    assert torch.allclose(refine.info["magnitude"], expected)
    assert not torch.allclose(explore.info["magnitude"], expected)
    assert method.step_period == 2
    _, logs = method.objective(torch.ones(6), refine)
    assert logs["magnitude"] == pytest.approx(expected.mean().item())


def test_zero_application_probability_leaves_the_base_view():
    method = make(base_pad=0, p_min=0.0, p_max=0.0)
    x = torch.rand(4, 3, 16, 16)
    assert torch.equal(method.sample(x, StepContext(training=False)).x, x)


def test_inspect_gives_each_labels_magnitude_and_metrics_pick_the_true_one():
    method = make()
    model = build_model("small_cnn", K, width=0.25)
    x, y = torch.rand(6, 3, 16, 16), torch.tensor([0, 1, 2, 3, 0, 1])
    per_class = method.inspect(x, StepContext(training=False, features=model.features))["magnitude_per_class"]
    assert per_class.shape == (6, K)
    fragile = torch.tensor([True, True, False, False, False, False])
    out = magnitude_metrics(y, {"magnitude_per_class": per_class}, fragile)
    true = per_class.gather(1, y[:, None]).squeeze(1)
    assert out["magnitude"] == pytest.approx(true.mean().item())
    assert out["magnitude_fragile"] == pytest.approx(true[:2].mean().item())
    assert out["magnitude_robust"] == pytest.approx(true[2:].mean().item())
    assert magnitude_metrics(y, {}, fragile) == {}
