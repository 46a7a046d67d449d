"""HSV conversions and hsv_jitter: reference values, torchvision agreement, gradients."""

import colorsys

import pytest
import torch
from torchvision.transforms.v2 import functional as TF

from augbench.errors import DataError
from augbench.transforms.color import hsv_jitter, hsv_to_rgb, rgb_to_hsv


def _images(batch: int = 3, size: int = 6, seed: int = 0, dtype=torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, size, size, generator=g, dtype=dtype)


def _zeros(batch: int = 3) -> torch.Tensor:
    return torch.zeros(batch)


def test_rgb_to_hsv_matches_colorsys():
    x = _images(batch=2, size=4)
    hsv = rgb_to_hsv(x)
    pixels = x.permute(0, 2, 3, 1).reshape(-1, 3).tolist()
    expected = torch.tensor([colorsys.rgb_to_hsv(*p) for p in pixels])
    assert torch.allclose(hsv.permute(0, 2, 3, 1).reshape(-1, 3), expected, atol=1e-6)


def test_grey_and_black_pixels_have_zero_hue_and_saturation():
    x = torch.tensor([0.0, 0.3, 1.0]).view(3, 1, 1, 1).expand(3, 3, 2, 2)
    hsv = rgb_to_hsv(x)
    assert torch.equal(hsv[:, :2], torch.zeros_like(hsv[:, :2]))
    assert torch.allclose(hsv[:, 2, 0, 0], torch.tensor([0.0, 0.3, 1.0]))


def test_round_trip():
    x = _images(batch=4, size=8)
    assert torch.allclose(hsv_to_rgb(rgb_to_hsv(x)), x, atol=1e-6)


def test_jitter_with_zeros_is_identity():
    x = _images()
    assert torch.allclose(hsv_jitter(x, _zeros(), _zeros(), _zeros()), x, atol=1e-6)


def test_hue_third_turn_maps_primaries():
    red = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1).expand(2, 3, 2, 2)
    out = hsv_jitter(red, torch.tensor([1 / 3, 2 / 3]), torch.zeros(2), torch.zeros(2))
    assert torch.allclose(out[0, :, 0, 0], torch.tensor([0.0, 1.0, 0.0]), atol=1e-6)  # green
    assert torch.allclose(out[1, :, 0, 0], torch.tensor([0.0, 0.0, 1.0]), atol=1e-6)  # blue


@pytest.mark.parametrize("factor", [-0.5, -0.23, 0.1, 0.37, 0.5])
def test_hue_shift_matches_torchvision_adjust_hue(factor):
    x = _images(batch=2, size=8, seed=1)
    expected = TF.adjust_hue(x, factor)
    out = hsv_jitter(x, torch.full((2,), factor), torch.zeros(2), torch.zeros(2))
    assert torch.allclose(out, expected, atol=1e-5)


def test_per_sample_hue_shifts():
    x = _images(batch=3, size=5, seed=2)
    shifts = [-0.4, 0.0, 0.25]
    out = hsv_jitter(x, torch.tensor(shifts), torch.zeros(3), torch.zeros(3))
    for i, s in enumerate(shifts):
        assert torch.allclose(out[i], TF.adjust_hue(x[i], s), atol=1e-5)


def test_value_and_saturation_scaling_known_values():
    x = _images(batch=2, size=5, seed=3)
    # Halving V halves every channel; ds = -1 removes all colour (r = g = b = max).
    halved = hsv_jitter(x, torch.zeros(2), torch.zeros(2), torch.full((2,), -0.5))
    assert torch.allclose(halved, x * 0.5, atol=1e-6)
    grey = hsv_jitter(x, torch.zeros(2), torch.full((2,), -1.0), torch.zeros(2))
    assert torch.allclose(grey, x.amax(dim=1, keepdim=True).expand_as(x), atol=1e-6)
    # Scaling is clamped: doubling V gives a brightest channel of min(1, 2 max).
    bright = hsv_jitter(x, torch.zeros(2), torch.zeros(2), torch.full((2,), 1.0))
    assert torch.allclose(bright.amax(dim=1), (2 * x.amax(dim=1)).clamp(max=1.0), atol=1e-6)


def test_gradients_reach_each_jitter_parameter():
    x = _images(batch=4, size=6, seed=4)
    dh = torch.tensor([0.1, -0.2, 0.3, 0.05], requires_grad=True)
    ds = torch.tensor([-0.3, 0.1, -0.1, 0.0], requires_grad=True)
    dv = torch.tensor([-0.2, -0.1, 0.05, -0.4], requires_grad=True)
    weights = torch.rand(x.shape, generator=torch.Generator().manual_seed(5))
    (hsv_jitter(x, dh, ds, dv) * weights).sum().backward()
    for grad in (dh.grad, ds.grad, dv.grad):
        assert torch.isfinite(grad).all()
        assert (grad.abs() > 1e-4).all()


def test_gradcheck_jitter_parameters():
    x = _images(batch=2, size=3, seed=6, dtype=torch.float64) * 0.8 + 0.1
    params = (
        torch.tensor([0.13, -0.31], dtype=torch.float64, requires_grad=True),
        torch.tensor([-0.2, 0.1], dtype=torch.float64, requires_grad=True),
        torch.tensor([-0.15, 0.05], dtype=torch.float64, requires_grad=True),
    )
    assert torch.autograd.gradcheck(lambda dh, ds, dv: hsv_jitter(x, dh, ds, dv), params, eps=1e-7, atol=1e-5)


def test_gradients_finite_on_grey_and_black_pixels():
    x = torch.tensor([0.0, 0.5, 1.0]).view(3, 1, 1, 1).repeat(1, 3, 2, 2).requires_grad_()
    dh = torch.zeros(3, requires_grad=True)
    ds = torch.zeros(3, requires_grad=True)
    dv = torch.full((3,), -0.1, requires_grad=True)
    hsv_jitter(x, dh, ds, dv).sum().backward()
    for grad in (x.grad, dh.grad, ds.grad, dv.grad):
        assert torch.isfinite(grad).all()
    assert dv.grad[1] != 0  # value still learns on grey pixels
    x2 = torch.zeros(1, 3, 2, 2, requires_grad=True)
    rgb_to_hsv(x2).sum().backward()
    assert torch.isfinite(x2.grad).all()


def test_rejects_non_rgb():
    with pytest.raises(DataError, match="3"):
        rgb_to_hsv(torch.rand(2, 1, 4, 4))
