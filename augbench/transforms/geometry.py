"""Batched, differentiable geometric transforms with per-sample parameters.

All work in normalised coordinates of `affine_grid` (x to the right, y down, both in [-1, 1],
`align_corners=False`), so one `grid_sample` call transforms a whole batch on its device.

The sampling grid is built as the sum of a per-column and a per-row term (`affine_grid`): an
affine map is separable that way, so the grid costs two small products and two broadcast adds
instead of `F.affine_grid`'s (B, H*W, 3) x (3, 2) matrix product (ten times the time on a CPU
at 224 px, where it cost as much as the resampling itself). A crop or resize is then one
`grid_sample` that reads only the box's pixels: cropping and resizing in one pass, never a
resample of the full image followed by a cut.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def pixel_centres(n: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """Normalised coordinates of the centres of n pixels along one axis, (2 i + 1) / n - 1,
    computed as `F.affine_grid` computes them (linspace(-1, 1) * (n - 1) / n)."""
    return torch.linspace(-1.0, 1.0, n, device=device, dtype=dtype).mul_(n - 1).div_(n)


def affine_grid(theta: Tensor, size: tuple[int, int]) -> Tensor:
    """`F.affine_grid(theta, (B, C, *size), align_corners=False)`, (B, H, W, 2), built separably.

    On a CPU the values are bit-identical to `F.affine_grid`'s (same coordinates, same order
    of float operations); differentiable in theta.
    """
    h, w = size
    xs, ys = (pixel_centres(n, theta.device, theta.dtype) for n in (w, h))
    return separable_grid(theta, xs, ys)


def separable_grid(theta: Tensor, xs: Tensor, ys: Tensor) -> Tensor:
    """theta (B, 2, 3) applied to every point (xs[j], ys[i], 1): (B, len(ys), len(xs), 2).

    An affine map is a column term plus a row term, broadcast: two small products and two
    full-size adds, in the order of a (x, y, 1) . theta matrix product on a CPU, ((x t0 + y t1)
    + t2), so the coordinates round as `F.affine_grid`'s and torchvision's do. The adds run on
    (B, 2, H, W), whose innermost dimension is a row of pixels (an innermost dimension of 2
    made them six times slower), and the result is that tensor's (B, H, W, 2) view, which
    `grid_sample` reads as it is.
    """
    cols = xs.view(1, 1, 1, -1) * theta[:, :, 0, None, None]  # (B, 2, 1, W)
    rows = ys.view(1, 1, -1, 1) * theta[:, :, 1, None, None]  # (B, 2, H, 1)
    return (cols + rows).add_(theta[:, :, 2, None, None]).permute(0, 2, 3, 1)


def warp(x: Tensor, theta: Tensor, size: tuple[int, int] | None = None, padding_mode: str = "zeros",
         mode: str = "bilinear") -> Tensor:
    """Resample `x` (B, C, H, W) through per-sample affine maps `theta` (B, 2, 3).

    `theta` maps output coordinates to input coordinates (affine_grid's convention).
    """
    h, w = x.shape[-2:]
    grid = affine_grid(theta.to(x.dtype), size if size is not None else (h, w))
    return F.grid_sample(x, grid, mode=mode, padding_mode=padding_mode, align_corners=False)


def rotation_matrix(angle: Tensor, aspect: float = 1.0) -> Tensor:
    """(B, 2, 3) output->input maps rotating the image by `angle` radians counter-clockwise.

    `aspect` = W / H corrects for non-square images in normalised coordinates.
    """
    cos, sin = torch.cos(angle), torch.sin(angle)
    zero = torch.zeros_like(angle)
    # Output pixel p comes from input R(-angle) p: a counter-clockwise rotation of the content
    # (y points down in image coordinates, so the signs of sin are swapped).
    row0 = torch.stack([cos, -sin / aspect, zero], dim=-1)
    row1 = torch.stack([sin * aspect, cos, zero], dim=-1)
    return torch.stack([row0, row1], dim=-2)


def rotate(x: Tensor, angle: Tensor, padding_mode: str = "zeros") -> Tensor:
    """Rotate each image by its own angle (radians, counter-clockwise), differentiably."""
    h, w = x.shape[-2:]
    return warp(x, rotation_matrix(angle, aspect=w / h), padding_mode=padding_mode)


def crop_matrix(center_y: Tensor, center_x: Tensor, height: Tensor, width: Tensor) -> Tensor:
    """(B, 2, 3) maps that crop a box and stretch it to the output size.

    Box centres are fractions of the image (0 = top/left edge, 1 = bottom/right edge) and sizes
    fractions of its height/width, so `center_y` is the image ROW and `center_x` the COLUMN
    (the public InstaAug code mirrors its crops across the anti-diagonal: it takes the row
    coordinate as the x shift and negates it).
    """
    zero = torch.zeros_like(center_x)
    row0 = torch.stack([width, zero, 2 * center_x - 1], dim=-1)
    row1 = torch.stack([zero, height, 2 * center_y - 1], dim=-1)
    return torch.stack([row0, row1], dim=-2)


def crop(x: Tensor, center_y: Tensor, center_x: Tensor, height: Tensor, width: Tensor,
         size: tuple[int, int] | None = None, padding_mode: str = "zeros") -> Tensor:
    """Crop a per-sample box (fractions of the image) and resample it to `size` (default input size).

    Differentiable in the box parameters; parts of a box outside the image read `padding_mode`.
    """
    theta = crop_matrix(center_y, center_x, height, width)
    return warp(x, theta, size=size, padding_mode=padding_mode)


def boxes_to_pixels(center_y: Tensor, center_x: Tensor, height: Tensor, width: Tensor,
                    image_hw: tuple[int, int]) -> Tensor:
    """Boxes as pixel corners (x0, y0, x1, y1), (B, 4): the format of ground-truth object boxes."""
    h, w = image_hw
    x0 = (center_x - width / 2) * w
    x1 = (center_x + width / 2) * w
    y0 = (center_y - height / 2) * h
    y1 = (center_y + height / 2) * h
    return torch.stack([x0, y0, x1, y1], dim=-1)


def hflip(x: Tensor, mask: Tensor) -> Tensor:
    """Flip the images where `mask` (B,) is true; others unchanged. No Python loop."""
    return torch.where(mask.view(-1, 1, 1, 1), x.flip(-1), x)
