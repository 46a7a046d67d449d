"""The fast kernels against the reference paths they replaced, on every pixel.

Geometry: the separable grid must equal `F.affine_grid` bit for bit on a CPU (same
coordinates, same order of float operations), so crops, rotations and warps are the
reference `F.affine_grid` + `F.grid_sample` exactly (tolerance 0); gradients go through
other ops (a broadcast sum instead of a matrix product) and agree to float rounding
(rtol 1e-5). Colour and quantising ops: the formulas before the rewrite (a grouped 3x3
convolution, int64 levels and scatter_add histograms) are kept here as references; integer
ops must match exactly, blends to 1e-6 (the rewrite reorders a few float operations).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from augbench.transforms import geometry, ops


def _reference_warp(x, theta, size=None, mode="bilinear"):
    b, c, h, w = x.shape
    grid = F.affine_grid(theta, [b, c, *(size or (h, w))], align_corners=False)
    return F.grid_sample(x, grid, mode=mode, padding_mode="zeros", align_corners=False)


@pytest.mark.parametrize("size", [(24, 40), (7, 5), (1, 3), (64, 64)])
def test_separable_grid_is_affine_grid_bit_for_bit(size):
    theta = torch.randn(6, 2, 3, generator=torch.Generator().manual_seed(sum(size)))
    expected = F.affine_grid(theta, [6, 1, *size], align_corners=False)
    assert torch.equal(geometry.affine_grid(theta, size), expected)


def test_crop_rotate_warp_equal_the_reference_resample():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(8, 3, 30, 44, generator=g)
    cy, cx, hh, ww = torch.rand(4, 8, generator=g) * 0.8 + 0.1
    theta = geometry.crop_matrix(cy, cx, hh, ww)
    assert torch.equal(geometry.crop(x, cy, cx, hh, ww), _reference_warp(x, theta))
    assert torch.equal(geometry.crop(x, cy, cx, hh, ww, size=(16, 20)), _reference_warp(x, theta, (16, 20)))
    angle = torch.rand(8, generator=g) * 6 - 3
    assert torch.equal(geometry.rotate(x, angle), _reference_warp(x, geometry.rotation_matrix(angle, 44 / 30)))
    theta = torch.randn(8, 2, 3, generator=g)
    for mode in ("bilinear", "nearest", "bicubic"):
        assert torch.equal(geometry.warp(x, theta, mode=mode), _reference_warp(x, theta, mode=mode))


def test_crop_gradients_match_the_reference():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(4, 3, 20, 24, generator=g, dtype=torch.float64).requires_grad_()
    box = (torch.rand(4, 4, generator=g, dtype=torch.float64) * 0.6 + 0.2).requires_grad_()
    weight = torch.rand(4, 3, 20, 24, generator=g, dtype=torch.float64)

    def grads(fn):
        (fn() * weight).sum().backward()
        out = (x.grad.clone(), box.grad.clone())
        x.grad = box.grad = None
        return out

    fast = grads(lambda: geometry.crop(x, *box.unbind(0)))
    slow = grads(lambda: _reference_warp(x, geometry.crop_matrix(*box.unbind(0))))
    for a, b in zip(fast, slow):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-9)


# ----------------------------------------------------------------- the old colour kernels
def _old_grey(x):
    r, g, b = x.unbind(dim=1)
    return (r * 0.2989 + g * 0.587 + b * 0.114).unsqueeze(1)


def _old_blend(x, other, factor):
    f = factor.view(-1, 1, 1, 1)
    return (x * f + other * (1.0 - f)).clamp(0.0, 1.0)


def _old_sharpness(x, m):
    c = x.shape[1]
    kernel = torch.full((3, 3), 1.0 / 13.0)
    kernel[1, 1] = 5.0 / 13.0
    blurred = F.conv2d(x, kernel.expand(c, 1, 3, 3), groups=c)
    inner = x[..., 1:-1, 1:-1]
    inner = inner + (blurred - inner) * (1.0 - (1.0 + m).view(-1, 1, 1, 1))
    mask = torch.ones(1, 1, *x.shape[-2:])
    mask[..., 1:-1, 1:-1] = 0
    return (F.pad(inner, (1, 1, 1, 1)) + x * mask).clamp(0.0, 1.0)


def _old_autocontrast(x):
    low, high = x.amin(dim=(-2, -1), keepdim=True), x.amax(dim=(-2, -1), keepdim=True)
    flat = high == low
    low = torch.where(flat, torch.zeros_like(low), low)
    return ((x - low) / torch.where(flat, torch.ones_like(high), high - low)).clamp(0.0, 1.0)


def _old_levels(x):
    return torch.round(x.clamp(0.0, 1.0) * 255.0).to(torch.int64)


def _old_posterize(x, m):
    shift = (8 - torch.trunc(m).clamp(0, 8).to(torch.int64)).view(-1, 1, 1, 1)
    mask = (255 >> shift) << shift
    return (_old_levels(x) & mask).float() / 255


def _old_equalize(x):
    levels = _old_levels(x)
    flat = levels.flatten(start_dim=2)
    hist = torch.zeros(*flat.shape[:2], 256, dtype=torch.int64).scatter_add_(-1, flat, torch.ones_like(flat))
    cdf = hist.cumsum(dim=-1)
    step = (flat.shape[-1] - hist.gather(-1, cdf.argmax(dim=-1, keepdim=True))).div(255, rounding_mode="floor")
    lut = (cdf[..., :-1] + step // 2).div(step.clamp(min=1), rounding_mode="floor").clamp(0, 255)
    lut = torch.cat((torch.zeros_like(lut[..., :1]), lut), dim=-1)
    return torch.where(step > 0, lut.gather(-1, flat), flat).view_as(levels).float() / 255


OLD = {
    "Brightness": lambda x, m: (x * (1 + m).view(-1, 1, 1, 1)).clamp(0, 1),
    "Color": lambda x, m: _old_blend(x, _old_grey(x), 1 + m),
    "Contrast": lambda x, m: _old_blend(x, _old_grey(x).mean(dim=(1, 2, 3), keepdim=True), 1 + m),
    "Sharpness": _old_sharpness,
    "Posterize": _old_posterize,
    "AutoContrast": lambda x, m: _old_autocontrast(x),
    "Equalize": lambda x, m: _old_equalize(x),
}
EXACT = {"Posterize", "Equalize"}


@pytest.mark.parametrize("name", list(OLD))
def test_colour_kernels_equal_the_old_formulas(name):
    g = torch.Generator().manual_seed(2)
    x = torch.randint(0, 256, (6, 3, 48, 40), generator=g).float() / 255
    x[1] = 0.3 + x[1] / 4  # low contrast
    x[2, 1] = 0.5  # a constant channel
    m = torch.tensor([0.9, -0.9, 0.0, 0.45, -0.2, 0.99]) if name != "Posterize" else torch.tensor([0, 1, 4, 6, 7, 8.0])
    out = ops.OPS[name](x, m)
    expected = OLD[name](x, m)
    if name in EXACT:
        assert torch.equal(out, expected)
    else:
        torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)


def test_ops_never_write_into_their_input():
    x = torch.rand(5, 3, 12, 12)
    before = x.clone()
    for name, spec in ops.OPS.items():
        spec(x, torch.full((5,), 0.4), torch.Generator().manual_seed(0))
        assert torch.equal(x, before), name


def test_apply_ops_in_place_only_into_an_owned_batch():
    x = torch.rand(6, 3, 10, 10)
    idx, mag = torch.tensor([1, 2, 0, 1, 2, -1]), torch.full((6,), 0.3)
    names = ["Identity", "Brightness", "Invert"]
    copy = ops.apply_ops(x, idx, mag, names)
    owned = x.clone()
    inplace = ops.apply_ops(owned, idx, mag, names, inplace=True)
    assert inplace is owned and torch.equal(inplace, copy)
    leaf = x.clone().requires_grad_()
    assert ops.apply_ops(leaf, idx, mag, names, inplace=True) is not leaf  # autograd needs the input
