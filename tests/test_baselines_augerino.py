"""`augerino`: generators, sampling, the width objective and the colour variant."""

from __future__ import annotations

import math

import pytest
import torch
import torchvision.transforms.v2.functional as TF
from torchvision.transforms import InterpolationMode

from augbench.errors import ConfigError
from augbench.methods import MethodContext, StepContext, create_method
from augbench.methods.augerino import affine_generators, affine_transform, parse_generators
from augbench.transforms.color import hsv_jitter, rgb_to_hsv
from augbench.transforms.geometry import crop, rotate, rotation_matrix, warp


def ctx(family: str = "rotation", shape=(3, 32, 32)) -> MethodContext:
    return MethodContext(num_classes=2, image_shape=shape, families=frozenset({family}))


@pytest.mark.parametrize("hw", [(32, 32), (24, 40)])
def test_rotation_generator_equals_geometry_rotate_and_torchvision(hw):
    torch.manual_seed(0)
    x = torch.rand(3, 3, *hw)
    angle = torch.tensor([0.3, -1.1, 2.5])
    theta = affine_transform(angle[:, None], affine_generators(("rotation",), hw))
    assert torch.allclose(theta, rotation_matrix(angle, aspect=hw[1] / hw[0]), atol=1e-6)
    ours = warp(x, theta)
    assert torch.allclose(ours, rotate(x, angle), atol=1e-4)
    ref = torch.stack([TF.rotate(x[i], math.degrees(a), interpolation=InterpolationMode.BILINEAR)
                       for i, a in enumerate(angle.tolist())])
    assert torch.allclose(ours, ref, atol=1e-4)


def test_generators_match_augerino_for_square_images():
    """Augerino's uniform_aug.py matrices (trans_scale 0.1) in its order tx, ty, rot, scale, stretch, shear."""
    g = affine_generators(parse_generators("all"), (32, 32))
    expected = torch.zeros(6, 3, 3)
    expected[0, 0, 2] = expected[1, 1, 2] = 0.1
    expected[2, 0, 1], expected[2, 1, 0] = -1, 1
    expected[3, 0, 0] = expected[3, 1, 1] = 1
    expected[4, 0, 0], expected[4, 1, 1] = 1, -1
    expected[5, 0, 1] = expected[5, 1, 0] = 1
    assert torch.equal(g, expected)


def test_generator_sets_and_bad_names():
    assert parse_generators("crop") == ("tx", "ty", "scale")
    assert parse_generators("shear, rotation") == ("rotation", "shear")  # canonical order
    with pytest.raises(ConfigError, match="generators"):
        parse_generators("rotation,zoom")
    with pytest.raises(ConfigError):
        create_method("augerino", ctx(), generators="")


def test_auto_space_and_generators_follow_the_family():
    assert create_method("augerino", ctx("rotation")).generator_names == ("rotation",)
    assert create_method("augerino", ctx("crop")).generator_names == ("tx", "ty", "scale")
    assert create_method("augerino", ctx("color")).space == "hsv"
    assert create_method("augerino", ctx("crop"), generators="all").generator_names == parse_generators("all")


def test_samples_are_uniform_within_the_widths_and_per_sample():
    torch.manual_seed(0)
    m = create_method("augerino", ctx(), generators="all", init_width=0.4)
    x = torch.rand(1, 3, 16, 16).expand(4000, 3, 16, 16)
    eps = m.sample(x, StepContext()).info["eps"]
    assert eps.shape == (4000, 6)
    assert eps.abs().max() <= 0.2 + 1e-6 and eps.abs().max() > 0.19  # U[-w/2, w/2], w = 0.4
    assert abs(eps.var(0).mean().item() - 0.4 ** 2 / 12) < 2e-3


def test_rotation_range_is_the_global_width():
    m = create_method("augerino", ctx(), init_width=1.0)
    rng = m.inspect(torch.rand(5, 3, 8, 8), StepContext(training=False))["rotation_range"]
    assert rng.shape == (5, 2)
    assert torch.allclose(rng, torch.tensor([[-0.5, 0.5]]).expand(5, 2), atol=1e-6)


def _train(m, x: torch.Tensor, loss_fn, steps: int) -> list[float]:
    opt = m.make_optimizer()
    widths = [m.widths().detach().clone()]
    for _ in range(steps):
        v = m.sample(x, StepContext())
        loss, _ = m.objective(loss_fn(v.x), v)
        opt.zero_grad()
        loss.backward()
        opt.step()
        widths.append(m.widths().detach().clone())
    return widths


def _disk(n: int, size: int = 24) -> torch.Tensor:
    r = torch.linspace(-1, 1, size)
    inside = ((r[:, None] ** 2 + r[None, :] ** 2) < 0.6).float()
    return inside * torch.rand(n, 1, 1, 1) * 0.5 + 0.25 * inside


def test_widths_grow_with_a_large_lambda_when_the_task_is_invariant():
    """Mean intensity of a centred disk is rotation invariant: the regulariser wins, widths grow."""
    torch.manual_seed(0)
    x = _disk(32).expand(32, 3, 24, 24)
    m = create_method("augerino", ctx(), lam=0.5, lr=0.05)
    w = _train(m, x, lambda out: (out.mean((1, 2, 3)) - x.mean((1, 2, 3))) ** 2 * 100, steps=40)
    assert w[-1].item() > 2 * w[0].item()


def test_widths_shrink_without_lambda_when_rotation_hurts():
    """Top-minus-bottom brightness is destroyed by rotation: with lambda = 0 the width shrinks."""
    torch.manual_seed(0)
    x = torch.zeros(32, 3, 24, 24)
    x[:, :, 4:10, 4:20] = 1.0
    target = x[:, :, :12].mean((1, 2, 3)) - x[:, :, 12:].mean((1, 2, 3))
    m = create_method("augerino", ctx(), lam=0.0, lr=0.05, init_width=1.5)

    def loss_fn(out):
        contrast = out[:, :, :12].mean((1, 2, 3)) - out[:, :, 12:].mean((1, 2, 3))
        return (contrast - target) ** 2 * 100

    w = _train(m, x, loss_fn, steps=40)
    assert w[-1].item() < 0.7 * w[0].item()


def test_objective_is_loss_minus_lambda_norm_and_safe_shutdown():
    m = create_method("augerino", ctx(), generators="rotation,scale", lam=0.1, init_width=2.0)
    v = m.sample(torch.rand(4, 3, 8, 8), StepContext())
    loss, logs = m.objective(torch.full((4,), 3.0), v)
    assert loss.item() == pytest.approx(3.0 - 0.1 * math.sqrt(8.0), rel=1e-5)
    assert set(logs) == {"width_rotation", "width_scale"}
    big = create_method("augerino", ctx(), lam=0.1, init_width=12.0)  # beyond max_width = 10
    loss, _ = big.objective(torch.full((4,), 3.0), big.sample(torch.rand(4, 3, 8, 8), StepContext()))
    assert loss.item() == pytest.approx(3.0)


def test_crop_generators_report_boxes_that_reproduce_the_warp():
    torch.manual_seed(0)
    m = create_method("augerino", ctx("crop"), init_width=0.5)
    x = torch.rand(6, 3, 16, 16)
    boxes = m.inspect(x, StepContext(training=False))["crop_boxes"]
    assert boxes.shape[:1] == (6,) and boxes.shape[-1] == 4
    torch.manual_seed(1)
    v = m.sample(x, StepContext())
    theta = affine_transform(v.info["eps"], affine_generators(m.generator_names, (16, 16)))
    cy, cx, h, w = ((theta[:, 1, 2] + 1) / 2, (theta[:, 0, 2] + 1) / 2, theta[:, 1, 1], theta[:, 0, 0])
    assert torch.allclose(crop(x, cy, cx, h, w), v.x, atol=1e-5)


def test_log_softmax_test_time_averaging():
    outs = torch.randn(3, 2, 5)
    combined = create_method("augerino", ctx()).combine_views(outs)
    torch.testing.assert_close(combined, outs.log_softmax(-1).mean(0))


# ------------------------------------------------------------------------------ colour


def test_hsv_variant_draws_inside_learned_ranges_and_is_differentiable():
    torch.manual_seed(0)
    m = create_method("augerino", ctx("color"), color_init=0.2)
    lims = m.color_limits().detach()
    assert torch.allclose(lims, torch.tensor([[-0.1, 0.1], [-0.2, 0.2], [-0.2, 0.2]]), atol=1e-6)
    x = torch.rand(64, 3, 8, 8)
    v = m.sample(x, StepContext())
    eps = v.info["eps"]
    assert (eps >= lims[:, 0] - 1e-6).all() and (eps <= lims[:, 1] + 1e-6).all()
    assert torch.allclose(v.x, hsv_jitter(x, *eps.unbind(-1)), atol=1e-6)
    # pathwise gradient reaches every bound through the image
    v.x.mean().backward()
    assert m.raw.grad is not None and (m.raw.grad != 0).all()
    rng = m.inspect(x, StepContext(training=False))
    assert set(rng) >= {"hue_range", "saturation_range", "value_range"}
    assert torch.allclose(rng["value_range"][0], lims[2])


def test_hsv_variant_learns_to_keep_hue_when_hue_matters():
    torch.manual_seed(0)
    x = torch.rand(32, 3, 8, 8) * 0.5 + 0.25
    hue = rgb_to_hsv(x)[:, 0]
    m = create_method("augerino", ctx("color"), lam=0.0, lr=0.05, color_init=0.5)

    def loss_fn(out):
        d = torch.remainder(rgb_to_hsv(out)[:, 0] - hue + 0.5, 1.0) - 0.5
        return (d ** 2).mean((1, 2)) * 100

    w = _train(m, x, loss_fn, steps=30)
    assert w[-1][0] < 0.6 * w[0][0]  # the hue width shrinks


def test_hsv_rejects_affine_generators():
    with pytest.raises(ConfigError, match="affine"):
        create_method("augerino", ctx("color"), generators="rotation")


def test_hsv_needs_rgb():
    with pytest.raises(ConfigError, match="RGB"):
        create_method("augerino", ctx("color", shape=(1, 8, 8)))


def test_crossed_colour_endpoints_are_reported_sorted():
    m = create_method("augerino", ctx("color"))
    with torch.no_grad():
        m.raw[0] = torch.tensor([1.0, -1.0])  # hue endpoints swapped: deltas uniform on [-c, c] still
    rng = m.inspect(torch.rand(3, 3, 8, 8), StepContext(training=False))["hue_range"]
    c = 0.5 * math.tanh(0.5)
    assert torch.allclose(rng[0], torch.tensor([-c, c]), atol=1e-6)
    assert m.widths()[0].item() == pytest.approx(2 * c)
