"""Uniform parameterization: ranges, reparameterised samples, closed-form entropy, gradients to phi."""

from __future__ import annotations

import math

import pytest
import torch

from augbench.methods import MethodContext, StepContext, create_method
from augbench.methods.instaaug.uniform import (
    UNIFORM_KINDS,
    CropRanges,
    RotationRanges,
    rsample_uniform,
    uniform_entropy,
    uniform_parameterization,
)


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
    param = uniform_parameterization(kind)
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
    with pytest.raises(ValueError, match="valid: rotation, color, crop"):
        uniform_parameterization("shear")
    lo, hi = torch.tensor([[-0.2, 0.0]]), torch.tensor([[0.3, 0.1]])
    assert uniform_entropy(lo, hi, "width").item() == pytest.approx(0.6)
    assert uniform_entropy(lo, hi).item() == pytest.approx(math.log(0.5) + math.log(0.1))
    with pytest.raises(ValueError):
        uniform_entropy(lo, hi, "nope")


def test_initial_ranges_follow_the_public_code():
    rot = RotationRanges()
    lo, hi = rot.ranges(torch.zeros(1, 2))
    half = math.pi / (1 + math.exp(2))  # pi * sigmoid(-2)
    assert lo.item() == pytest.approx(-half) and hi.item() == pytest.approx(half)
    # asymmetric: each endpoint has its own output
    lo, hi = rot.ranges(torch.tensor([[3.0, -1.0]]))
    assert hi.item() == pytest.approx(math.pi * torch.sigmoid(torch.tensor(1.0)).item())
    assert lo.item() == pytest.approx(-math.pi * torch.sigmoid(torch.tensor(-3.0)).item())
    col = uniform_parameterization("color")
    lo, hi = col.ranges(torch.zeros(1, 6))
    s = 1 / (1 + math.exp(4))
    torch.testing.assert_close(hi[0], torch.tensor([0.5 * s, 0.8 * s, 0.8 * s]))
    torch.testing.assert_close(lo[0], -hi[0])


def test_crop_uniform_keeps_crops_inside_the_image():
    """theta = (side, u_y, u_x): a full-image crop at side 1 whatever u; small crops at the corners."""
    param = CropRanges()
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


# ---------------------------------------------------------------- saturation and recovery
#: raw outputs far beyond each kind's bounds: every range at its widest (crop: side [0.1, 1] and
#: centre offsets [0, 1], endpoints in either order, so one end of each pair low, one high)
_SATURATED = {"rotation": [12.0, 12.0], "color": [12.0] * 6, "crop": [12.0, -12.0] * 3}
#: the identity transformation's parameters, per kind: the task loss below asks for ranges around it
_IDENTITY = {"rotation": [0.0], "color": [0.0, 0.0, 0.0], "crop": [1.0, 0.5, 0.5]}


def _train_saturated(kind: str, range_map: str, steps: int = 400) -> tuple[torch.Tensor, torch.Tensor]:
    """Widths (D,) of a saturated range before and after SGD on a loss that wants it narrow.

    The loss: the mean squared distance of drawn parameters from the identity (what a classifier
    that is hurt by the transformation says through the reparameterised draws), minus a small
    entropy reward, as in Eq. 2.
    """
    torch.manual_seed(0)
    dist = uniform_parameterization(kind, range_map=range_map)
    raw = torch.nn.Parameter(torch.tensor([_SATURATED[kind]]))
    target = torch.tensor([_IDENTITY[kind]])
    opt = torch.optim.SGD([raw], lr=2.0)
    lo, hi = dist.ranges(raw.detach())
    before = (hi - lo)[0]
    for _ in range(steps):
        lo, hi = dist.ranges(raw)
        theta = rsample_uniform(lo, hi, 64)
        loss = ((theta - target) ** 2).sum(-1).mean() - 0.01 * uniform_entropy(lo, hi).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    lo, hi = dist.ranges(raw.detach())
    return before, (hi - lo)[0]


@pytest.mark.parametrize("kind", list(UNIFORM_KINDS))
def test_a_saturated_range_comes_back_when_the_task_loss_asks(kind):
    """The linear map keeps the task loss's gradient at the bound, so the range narrows; the public
    code's sigmoid has slope ~6e-6 there, and the same loss leaves it at its bound."""
    before, after = _train_saturated(kind, "linear")
    assert (after < 0.5 * before).all(), (before, after)
    before, after = _train_saturated(kind, "sigmoid")
    assert (after > 0.99 * before).all(), (before, after)


def test_the_entropy_reward_stops_paying_at_the_bound():
    """At the bound nothing pushes a range further out: raw outputs beyond it get no gradient from
    the entropy term (which would widen it) while inside they do."""
    dist = RotationRanges(range_map="linear")
    raw = torch.tensor([[12.0, 0.0]], requires_grad=True)  # a beyond its bound, b inside
    lo, hi = dist.ranges(raw)
    (-uniform_entropy(lo, hi).sum()).backward()
    assert raw.grad is not None
    assert raw.grad[0, 0] == 0 and raw.grad[0, 1] < 0
    assert (hi - lo).item() == pytest.approx(math.pi + math.pi / (1 + math.exp(2)))


@pytest.mark.parametrize("kind", list(UNIFORM_KINDS))
def test_linear_and_sigmoid_maps_start_from_the_same_range(kind):
    zero = torch.zeros(1, uniform_parameterization(kind).n_raw)
    torch.testing.assert_close(uniform_parameterization(kind, range_map="linear").ranges(zero),
                               uniform_parameterization(kind).ranges(zero))


def test_band_fraction_states_the_band_relative_to_the_widest_distribution():
    """Per dimension for ranges (one lambda each); of log K for LRP, reachable at any image size."""
    rot = create_method("instaaug", MethodContext(4, (3, 32, 32), frozenset({"rotation"})),
                        parameterization="rotation", band_fraction=[0.1, 0.2])
    band = rot.entropy_band()
    assert band["h_min"] == pytest.approx(math.log(0.2 * math.pi))
    assert band["h_max"] == pytest.approx(math.log(0.4 * math.pi))
    col = create_method("instaaug", MethodContext(4, (3, 32, 32), frozenset({"color"})),
                        parameterization="color", band_fraction=[0.1, 0.2])
    assert col.parts == ("hue", "saturation", "value")
    assert col.lam.h_min.tolist() == pytest.approx([math.log(0.1), math.log(0.16), math.log(0.16)])
    lrp = create_method("instaaug", MethodContext(4, (3, 28, 28), frozenset({"crop"})), parameterization="lrp",
                        band_fraction=[0.52, 0.61])
    top = lrp.entropy_band()["h_top"]
    assert lrp.h_min == pytest.approx(0.52 * top, abs=1e-4) and lrp.h_max < top  # 2.5/3.0 would lie above it
    with pytest.raises(ValueError, match="set one of target_spread, band_fraction or h_min/h_max"):
        create_method("instaaug", MethodContext(4, (3, 32, 32), frozenset({"rotation"})),
                      parameterization="rotation", band_fraction=[0.1, 0.2], h_min=0.5)
    with pytest.raises(ValueError, match="0 < lo <= hi <= 1"):
        create_method("instaaug", MethodContext(4, (3, 32, 32), frozenset({"rotation"})),
                      parameterization="rotation", band_fraction=[0.3, 0.2])
