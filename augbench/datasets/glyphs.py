"""`glyphs`: the paper's Mario-Iggy rotation experiment (Section 5.1) with glyphs of our own.

Two procedurally drawn characters, each upright or upside down (4 classes), every instance
rotated by an angle a ~ U(-pi/4, pi/4) about its orientation. A further rotation theta keeps
the label exactly when |a + theta| < pi/2, so every instance has a known label-preserving
interval (-pi/2 - a, pi/2 - a): the ground truth a learned local invariance is scored against.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from augbench.datasets.base import Dataset, Split, cached

# Strokes (x0, y0, x1, y1) in a glyph frame with y pointing up; neither glyph is symmetric under a
# half turn, so upright and upside-down instances differ.
STROKES: dict[str, list[tuple[float, float, float, float]]] = {
    "F": [(-0.35, -0.7, -0.35, 0.7), (-0.35, 0.7, 0.45, 0.7), (-0.35, 0.1, 0.25, 0.1)],
    "h": [(-0.4, -0.7, -0.4, 0.7), (-0.4, 0.05, 0.35, 0.05), (0.35, 0.05, 0.35, -0.7), (0.35, -0.7, 0.6, -0.7)],
}
CLASSES = ["F upright", "F upside-down", "h upright", "h upside-down"]
MAX_ANGLE = math.pi / 4


def _segment_distance(p: Tensor, seg: Tensor) -> Tensor:
    """Distance from points p (N, P, 2) to segments seg (S, 4): (N, P, S)."""
    a, b = seg[:, :2], seg[:, 2:]
    ab = b - a  # (S, 2)
    ap = p.unsqueeze(-2) - a  # (N, P, S, 2)
    t = ((ap * ab).sum(-1) / (ab * ab).sum(-1).clamp_min(1e-9)).clamp(0, 1)
    closest = a + t.unsqueeze(-1) * ab
    return (p.unsqueeze(-2) - closest).norm(dim=-1)


def render(char: Tensor, angle: Tensor, image_size: int, generator: torch.Generator) -> Tensor:
    """Render glyphs (N,) rotated counter-clockwise by `angle` (N,) radians: uint8 (N, 3, S, S)."""
    n = char.shape[0]
    lin = (torch.arange(image_size, dtype=torch.float32) + 0.5) / image_size * 2 - 1
    yy, xx = torch.meshgrid(-lin, lin, indexing="ij")  # screen coordinates, y up
    pts = torch.stack([xx, yy], -1).reshape(1, -1, 2)  # (1, P, 2)
    scale = 0.8 + 0.15 * torch.rand(n, generator=generator)
    shift = (torch.rand(n, 2, generator=generator) - 0.5) * 0.1
    cos, sin = torch.cos(angle), torch.sin(angle)
    # glyph-frame point = R(-angle) (p - shift) / scale
    q = pts - shift.unsqueeze(1)
    gx = (cos.unsqueeze(1) * q[..., 0] + sin.unsqueeze(1) * q[..., 1]) / scale.unsqueeze(1)
    gy = (-sin.unsqueeze(1) * q[..., 0] + cos.unsqueeze(1) * q[..., 1]) / scale.unsqueeze(1)
    g = torch.stack([gx, gy], -1)
    thickness = 0.09 + 0.04 * torch.rand(n, 1, generator=generator)
    ink = torch.zeros(n, pts.shape[1])
    for k, name in enumerate(STROKES):  # two glyph kinds: a loop over kinds, not samples
        sel = (char == k).nonzero().flatten()
        if len(sel):
            d = _segment_distance(g[sel], torch.tensor(STROKES[name])).amin(-1)
            ink[sel] = torch.sigmoid((thickness[sel] - d * scale[sel].unsqueeze(1)) / 0.02)
    colour = 0.6 + 0.4 * torch.rand(n, 3, 1, generator=generator)
    background = 0.15 * torch.rand(n, 3, 1, generator=generator)
    noise = 0.05 * torch.randn(n, 3, pts.shape[1], generator=generator)
    img = background + ink.unsqueeze(1) * (colour - background) + noise
    img = img.clamp(0, 1).reshape(n, 3, image_size, image_size)
    return (img * 255).round().to(torch.uint8)


def _make_split(n: int, image_size: int, generator: torch.Generator) -> Split:
    y = torch.randint(0, 4, (n,), generator=generator)
    char, upside_down = y // 2, y % 2
    a = (torch.rand(n, generator=generator) * 2 - 1) * MAX_ANGLE
    x = render(char, a + math.pi * upside_down, image_size, generator)
    interval = torch.stack([-math.pi / 2 - a, math.pi / 2 - a], -1)
    return Split(x, y, {"angle": a, "interval": interval})


def make_glyphs(n_train: int = 2000, n_test: int = 1000, image_size: int = 32, seed: int = 0) -> Dataset:
    """The glyph rotation dataset, generated deterministically from `seed` (and cached)."""
    key = {"n_train": n_train, "n_test": n_test, "image_size": image_size, "seed": seed, "version": 1}

    def build() -> Dataset:
        gen = torch.Generator().manual_seed(seed)
        train = _make_split(n_train, image_size, gen)
        test = _make_split(n_test, image_size, gen)
        return Dataset("glyphs", train, test, list(CLASSES),
                       {"max_angle": MAX_ANGLE, "interval": "label kept for rotations theta with |a + theta| < pi/2"})

    return cached("glyphs", key, build)


def interval_metrics(learned: Tensor, true: Tensor) -> dict[str, Tensor]:
    """Per-instance coverage and violation of learned ranges against true intervals, both (N, 2).

    coverage = |learned ∩ true| / |true|; violation = |learned \\ true| / |learned| (0 for an
    empty learned range).
    """
    lo = torch.maximum(learned[:, 0], true[:, 0])
    hi = torch.minimum(learned[:, 1], true[:, 1])
    inter = (hi - lo).clamp_min(0)
    width = (learned[:, 1] - learned[:, 0]).clamp_min(0)
    coverage = inter / (true[:, 1] - true[:, 0]).clamp_min(1e-12)
    violation = torch.where(width > 0, (width - inter) / width.clamp_min(1e-12), torch.zeros_like(width))
    return {"coverage": coverage, "violation": violation}
