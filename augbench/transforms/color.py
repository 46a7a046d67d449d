"""Differentiable HSV colour space and the HSV jitter that learned colour ranges act through.

InstaAug's uniform colour parameterization and Augerino's colour variant learn a range per
HSV channel and draw (dh, ds, dv) inside it with the reparameterisation trick, so the
gradient of the loss must reach dh, ds, dv *through the image* (pathwise gradients). Hence
everything here is plain tensor algebra: no in-place ops on autograd inputs, no integer
casts on the hue path, and safe denominators so grey and black pixels give finite (zero)
gradients instead of NaN.

Conventions: images are float (B, 3, H, W) in [0, 1]; hue is in [0, 1) (a fraction of a
full turn, as in torchvision, not kornia's radians); saturation and value in [0, 1].
"""

from __future__ import annotations

import torch
from torch import Tensor

from augbench.errors import DataError

__all__ = ["rgb_to_hsv", "hsv_to_rgb", "hsv_jitter"]


def _check_rgb(x: Tensor, what: str) -> None:
    if x.dim() != 4 or x.shape[1] != 3:
        raise DataError(f"{what} needs images of shape (B, 3, H, W), got {tuple(x.shape)}")


def rgb_to_hsv(x: Tensor) -> Tensor:
    """RGB (B, 3, H, W) in [0, 1] -> HSV with hue in [0, 1); same values as torchvision's.

    Where max == min (grey) hue and saturation are 0; where max == 0 (black) saturation is 0.
    The divisions use a denominator of 1 on those pixels *before* dividing, so no NaN or
    inf is ever formed and backward stays finite (masking a NaN afterwards would not help:
    0 * NaN is still NaN in the backward pass).
    """
    _check_rgb(x, "rgb_to_hsv")
    r, g, b = x.unbind(dim=1)
    maxc = x.amax(dim=1)
    minc = x.amin(dim=1)
    delta = maxc - minc
    grey = delta <= 0
    safe_delta = torch.where(grey, torch.ones_like(delta), delta)
    safe_max = torch.where(maxc <= 0, torch.ones_like(maxc), maxc)

    sat = torch.where(maxc <= 0, torch.zeros_like(delta), delta / safe_max)
    # Hue sector by the channel holding the maximum (ties go to r, then g, as torchvision).
    h_r = (g - b) / safe_delta
    h_g = (b - r) / safe_delta + 2.0
    h_b = (r - g) / safe_delta + 4.0
    hue6 = torch.where(r == maxc, h_r, torch.where(g == maxc, h_g, h_b))
    hue = torch.remainder(hue6 / 6.0, 1.0)
    hue = torch.where(grey, torch.zeros_like(hue), hue)
    return torch.stack((hue, sat, maxc), dim=1)


def hsv_to_rgb(x: Tensor) -> Tensor:
    """HSV (B, 3, H, W), hue in [0, 1) (any real is taken mod 1) -> RGB in [0, 1].

    Uses the closed form c_n = v - v s clamp(min(k, 4 - k), 0, 1), k = (n + 6h) mod 6 with
    n = 5, 3, 1 for r, g, b: piecewise linear in h, s, v, so it has a gradient almost
    everywhere and needs no gather over sectors.
    """
    _check_rgb(x, "hsv_to_rgb")
    hue, sat, val = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    n = torch.tensor([5.0, 3.0, 1.0], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    k = torch.remainder(n + 6.0 * hue, 6.0)
    ramp = torch.minimum(k, 4.0 - k).clamp(0.0, 1.0)
    return val - val * sat * ramp


def hsv_jitter(x: Tensor, dh: Tensor, ds: Tensor, dv: Tensor) -> Tensor:
    """Per-sample colour change: hue + dh (mod 1), saturation * (1 + ds), value * (1 + dv).

    dh, ds, dv are (B,) tensors (dh in fractions of a full turn: dh = 0.5 is torchvision's
    ``adjust_hue(x, 0.5)``). Saturation and value are clamped to [0, 1] after scaling, as in
    InstaAug's colour parameterization. Differentiable w.r.t. x, dh, ds and dv.
    """
    _check_rgb(x, "hsv_jitter")
    hsv = rgb_to_hsv(x)
    view = (-1, 1, 1)
    hue = torch.remainder(hsv[:, 0] + dh.to(x.dtype).view(view), 1.0)
    sat = (hsv[:, 1] * (1.0 + ds.to(x.dtype).view(view))).clamp(0.0, 1.0)
    val = (hsv[:, 2] * (1.0 + dv.to(x.dtype).view(view))).clamp(0.0, 1.0)
    return hsv_to_rgb(torch.stack((hue, sat, val), dim=1))
