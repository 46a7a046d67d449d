"""Uniform parameterization: ranges, reparameterised samples, closed-form entropy, gradients to phi."""

from __future__ import annotations

import math

import pytest
import torch

from augbench.methods import MethodContext, StepContext, create_method
from augbench.methods.instaaug.uniform import UniformParameterization, rsample_uniform, uniform_entropy


def spacing_entropy(samples: torch.Tensor) -> torch.Tensor:
    """Vasicek's m-spacing Monte Carlo estimate of each column's differential entropy."""
    n = samples.shape[0]
    m = int(round(math.sqrt(n)))
    x = samples.sort(0).values
    idx = torch.arange(n)
    hi, lo = x[(idx + m).clamp(max=n - 1)], x[(idx - m).clamp(min=0)]
    return torch.log(n / (2 * m) * (hi - lo)).mean(0)


@pytest.mark.parametrize("kind", ["rotation", "color", "crop"])
def test_closed_form_entropy_matches_monte_carlo(kind):
    """sum log(width) against an estimate from the sampler's own draws (so both are checked)."""
    torch.manual_seed(0)
    param = UniformParameterization(kind)
    raw = torch.randn(2, param.n_raw, dtype=torch.float64)
    lo, hi = param.ranges(raw)
    draws = rsample_uniform(lo, hi, 20000).view(20000, 2, -1)  # view-major: (V, B, D)
    assert (draws >= lo - 1e-12).all() and (draws <= hi + 1e-12).all()
    for i in range(2):
        mc = spacing_entropy(draws[:, i]).sum()
        assert mc.item() == pytest.approx(uniform_entropy(lo[i:i + 1], hi[i:i + 1]).item(), abs=0.05)
    exact = torch.distributions.Uniform(lo, hi).entropy().sum(-1)
    torch.testing.assert_close(uniform_entropy(lo, hi), exact)


def test_width_proxy_and_unknown_kind():
    lo, hi = torch.tensor([[-0.2, 0.0]]), torch.tensor([[0.3, 0.1]])
    assert uniform_entropy(lo, hi, "width").item() == pytest.approx(0.6)
    assert uniform_entropy(lo, hi).item() == pytest.approx(math.log(0.5) + math.log(0.1))
    with pytest.raises(ValueError):
        uniform_entropy(lo, hi, "nope")


def test_initial_ranges_follow_the_public_code():
    rot = UniformParameterization("rotation")
    lo, hi = rot.ranges(torch.zeros(1, 2))
    half = math.pi / (1 + math.exp(2))  # pi * sigmoid(-2)
    assert lo.item() == pytest.approx(-half) and hi.item() == pytest.approx(half)
    # asymmetric: each endpoint has its own output
    lo, hi = rot.ranges(torch.tensor([[3.0, -1.0]]))
    assert hi.item() == pytest.approx(math.pi * torch.sigmoid(torch.tensor(1.0)).item())
    assert lo.item() == pytest.approx(-math.pi * torch.sigmoid(torch.tensor(-3.0)).item())
    col = UniformParameterization("color")
    lo, hi = col.ranges(torch.zeros(1, 6))
    s = 1 / (1 + math.exp(4))
    torch.testing.assert_close(hi[0], torch.tensor([0.5 * s, 0.8 * s, 0.8 * s]))
    torch.testing.assert_close(lo[0], -hi[0])


def test_crop_uniform_keeps_crops_inside_the_image():
    """theta = (side, u_y, u_x): a full-image crop at side 1 whatever u; small crops at the corners."""
    param = UniformParameterization("crop")
    x = torch.rand(3, 3, 16, 16)
    out = param.transform(x, torch.tensor([[1.0, 0.3, 0.9], [0.5, 0.0, 0.0], [0.5, 1.0, 1.0]]))
    torch.testing.assert_close(out[0], x[0], atol=1e-5, rtol=0)
    # side 0.5 at u = 0: the top-left 8x8 block, upsampled; at u = 1: the bottom-right block
    torch.testing.assert_close(out[1, :, 1:-1:2, 1:-1:2].mean(), x[1, :, :8, :8].mean(), atol=0.05, rtol=0)
    torch.testing.assert_close(out[2, :, 1:-1:2, 1:-1:2].mean(), x[2, :, 8:, 8:].mean(), atol=0.05, rtol=0)
    lo, hi = param.ranges(torch.randn(50, 6) * 3)
    assert (lo[:, 0] >= 0.1).all() and (hi[:, 0] <= 1).all() and (lo <= hi).all()


def _frozen_classifier():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, 2, 1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                                torch.nn.Flatten(), torch.nn.Linear(4, 4))
    for p in model.parameters():
        p.requires_grad_(False)
    return model


@pytest.mark.parametrize("parameterization,family", [("rotation", "rotation"), ("color", "color"),
                                                     ("crop-uniform", "crop"), ("lrp", "crop")])
@pytest.mark.parametrize("conditioning", ["input", "input-free", "class"])
def test_gradients_reach_phi_through_a_frozen_classifier(parameterization, family, conditioning):
    """Fixed-classifier mode (Sec. 5.3): only phi has trainable parameters, and all of them learn."""
    torch.manual_seed(0)
    ctx = MethodContext(num_classes=4, image_shape=(3, 32, 32), families=frozenset({family}))
    method = create_method("instaaug", ctx, parameterization=parameterization, conditioning=conditioning,
                           lambda0=0.0)  # the task loss alone must reach phi
    model = _frozen_classifier()
    x, y = torch.rand(8, 3, 32, 32), torch.randint(0, 4, (8,))
    views = method.sample(x, StepContext(y=y, training=True), n_views=2)
    per_sample = torch.nn.functional.cross_entropy(model(views.x), y.repeat(2), reduction="none")
    loss, _ = method.objective(per_sample, views)
    loss.backward()
    grads = {n: p.grad for n, p in method.named_parameters()}
    missing = [n for n, g in grads.items() if g is None or not torch.isfinite(g).all()]
    assert not missing, f"no gradient for {missing}"
    # the first layer of phi (or the table) gets a nonzero gradient: the signal reaches the input side
    first = next(g for n, g in grads.items() if "stem" in n or "table" in n or "vector" in n)
    assert first.abs().sum() > 0
    assert method.make_optimizer() is not None
