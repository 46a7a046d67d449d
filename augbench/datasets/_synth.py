"""Small batched drawing helpers for the procedural datasets."""

from __future__ import annotations

import torch
from torch import Tensor


def hsv_to_rgb(h: Tensor, s: Tensor, v: Tensor, dim: int = -3) -> Tensor:
    """HSV (hue in turns, any real; s, v in [0, 1]) to RGB in [0, 1], stacked on new ``dim``.

    The standard hexcone formula, written with ``k = (n + 6h) mod 6`` so it is branch-free
    and batched: channel n in (5, 3, 1) -> R, G, B.
    """
    out = []
    for n in (5.0, 3.0, 1.0):
        k = torch.remainder(n + 6.0 * h, 6.0)
        out.append(v - v * s * torch.clamp(torch.minimum(k, 4.0 - k), 0.0, 1.0))
    return torch.stack(out, dim=dim)


def grid(size: int, n: int = 1) -> tuple[Tensor, Tensor]:
    """Pixel-centre coordinates (x, y), each (1, size, size), broadcastable against (n, 1, 1)."""
    c = torch.arange(size, dtype=torch.float32) + 0.5
    return c.view(1, 1, size).expand(1, size, size), c.view(1, size, 1).expand(1, size, size)


def to_uint8(img: Tensor) -> Tensor:
    """Float image in [0, 1] (values outside are clipped) to uint8, rounding to nearest."""
    return (img.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)


def balanced_labels(n: int, num_classes: int, g: torch.Generator) -> Tensor:
    """``n`` labels whose class counts differ by at most one, in random order."""
    return (torch.arange(n) % num_classes)[torch.randperm(n, generator=g)]
