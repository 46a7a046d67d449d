"""Clutter: one whole object among fragments of other classes' objects (a cropping testbed).

Each image shows one complete object of its class (a procedural shape drawn in the
class's colour family) at a random position and scale, over a smooth background strewn
with *fragments* of other classes' shapes (each cut by a random half-plane). A crop that
keeps the object keeps the label; a crop that misses it shows only other classes' parts,
so the label changes. This is the local invariance of the paper's Figure 1b, with ground
truth: ``meta["box"]`` is the object's pixel box and :func:`crop_keeps_object` scores a
method's crops against it.

Boxes are (x0, y0, x1, y1) in pixels with x1, y1 exclusive (the object covers columns
x0 <= x < x1), computed from the drawn mask, not from the sampled size.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from augbench.datasets._synth import balanced_labels, grid, hsv_to_rgb, to_uint8
from augbench.datasets.base import Dataset, Split, cached
from augbench.errors import ConfigError
from augbench.seeds import data_generator

_VERSION = 1  # bump whenever generated pixels change: it is part of the cache key
NUM_FRAGMENTS = 4  # fragments of other classes per image
OBJECT_HALF_SIZE = (0.18, 0.32)  # object half-size, fraction of the image side
FRAGMENT_HALF_SIZE = (0.12, 0.25)


def _disc(u: Tensor, v: Tensor) -> Tensor:
    return u * u + v * v <= 1.0


def _ring(u: Tensor, v: Tensor) -> Tensor:
    r2 = u * u + v * v
    return (r2 <= 1.0) & (r2 >= 0.55**2)


def _plus(u: Tensor, v: Tensor) -> Tensor:
    inside = torch.maximum(u.abs(), v.abs()) <= 1.0
    return inside & ((u.abs() <= 0.3) | (v.abs() <= 0.3))


def _triangle(u: Tensor, v: Tensor) -> Tensor:
    return (v <= 1.0) & (u.abs() <= (v + 1.0) / 2.0)  # apex up (v grows downwards)


def _frame(u: Tensor, v: Tensor) -> Tensor:
    m = torch.maximum(u.abs(), v.abs())
    return (m <= 1.0) & (m >= 0.55)


def _diamond(u: Tensor, v: Tensor) -> Tensor:
    return u.abs() + v.abs() <= 1.0


def _saltire(u: Tensor, v: Tensor) -> Tensor:
    inside = torch.maximum(u.abs(), v.abs()) <= 1.0
    return inside & (((u - v).abs() <= 0.42) | ((u + v).abs() <= 0.42))


def _bars(u: Tensor, v: Tensor) -> Tensor:
    inside = torch.maximum(u.abs(), v.abs()) <= 1.0
    return inside & (torch.floor((v + 1.0) * 2.5).remainder(2) == 0)


#: Class shapes, in label order, on normalised coordinates (u, v) in [-1, 1]^2.
SHAPES: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "disc": _disc,
    "ring": _ring,
    "plus": _plus,
    "triangle": _triangle,
    "frame": _frame,
    "diamond": _diamond,
    "saltire": _saltire,
    "bars": _bars,
}


def _shape_masks(cls: Tensor, cx: Tensor, cy: Tensor, r: Tensor, size: int, num_classes: int) -> Tensor:
    """Boolean masks (N, S, S) of shape ``cls[i]`` centred at (cx, cy) with half-size r.

    One batched evaluation per class (a loop over at most 8 classes, not over samples).
    """
    x, y = grid(size)
    masks = torch.zeros((cls.shape[0], size, size), dtype=torch.bool)
    fns = list(SHAPES.values())
    for k in range(num_classes):
        idx = (cls == k).nonzero().squeeze(1)
        if idx.numel() == 0:
            continue
        rk = r[idx].view(-1, 1, 1)
        u = (x - cx[idx].view(-1, 1, 1)) / rk
        v = (y - cy[idx].view(-1, 1, 1)) / rk
        masks[idx] = fns[k](u, v)
    return masks


def _class_colours(cls: Tensor, num_classes: int, g: torch.Generator) -> Tensor:
    """(N, 3) RGB in each class's colour family: hue k/K +- 0.3/K, vivid."""
    n = cls.shape[0]
    hue = (cls.float() + (torch.rand(n, generator=g) - 0.5) * 0.6) / num_classes
    sat = 0.65 + 0.35 * torch.rand(n, generator=g)
    val = 0.65 + 0.35 * torch.rand(n, generator=g)
    return hsv_to_rgb(hue, sat, val, dim=-1)


def _paint(img: Tensor, mask: Tensor, colour: Tensor) -> Tensor:
    return torch.where(mask[:, None], colour[:, :, None, None], img)


def _boxes(mask: Tensor) -> Tensor:
    """Tight (x0, y0, x1, y1) pixel boxes of non-empty masks (N, S, S), x1/y1 exclusive."""
    size = mask.shape[-1]
    cols = mask.any(dim=1).to(torch.uint8)  # (N, S): which columns hold the object
    rows = mask.any(dim=2).to(torch.uint8)
    x0 = cols.argmax(dim=1)
    x1 = size - cols.flip(1).argmax(dim=1)
    y0 = rows.argmax(dim=1)
    y1 = size - rows.flip(1).argmax(dim=1)
    return torch.stack([x0, y0, x1, y1], dim=1).float()


def _generate(n: int, size: int, num_classes: int, g: torch.Generator, scale: float = 1.0) -> Split:
    y = balanced_labels(n, num_classes, g)
    # Background: smooth low-saturation colour noise plus fine grain.
    img = torch.nn.functional.interpolate(
        0.15 + 0.3 * torch.rand((n, 3, 4, 4), generator=g), size=(size, size), mode="bilinear", align_corners=False
    )
    img = img + 0.04 * (torch.rand((n, 3, size, size), generator=g) - 0.5)
    x, yy = grid(size)
    for _ in range(NUM_FRAGMENTS):
        cls = (y + torch.randint(1, num_classes, (n,), generator=g)) % num_classes  # never the label
        lo, hi = FRAGMENT_HALF_SIZE
        r = scale * size * (lo + (hi - lo) * torch.rand(n, generator=g))
        cx, cy = size * torch.rand(n, generator=g), size * torch.rand(n, generator=g)
        mask = _shape_masks(cls, cx, cy, r, size, num_classes)
        # Keep one side of a random line near the centre: a fragment, never a whole shape.
        theta = 2 * torch.pi * torch.rand(n, generator=g)
        offset = r * (0.3 * torch.rand(n, generator=g) - 0.1)
        side = torch.cos(theta).view(-1, 1, 1) * (x - cx.view(-1, 1, 1)) + torch.sin(theta).view(-1, 1, 1) * (
            yy - cy.view(-1, 1, 1)
        )
        mask &= side >= offset.view(-1, 1, 1)
        img = _paint(img, mask, _class_colours(cls, num_classes, g))
    lo, hi = OBJECT_HALF_SIZE
    r = scale * size * (lo + (hi - lo) * torch.rand(n, generator=g))
    cx = r + (size - 2 * r) * torch.rand(n, generator=g)  # the whole object stays inside
    cy = r + (size - 2 * r) * torch.rand(n, generator=g)
    mask = _shape_masks(y, cx, cy, r, size, num_classes)
    img = _paint(img, mask, _class_colours(y, num_classes, g))
    return Split(to_uint8(img), y, {"box": _boxes(mask)})


def make_clutter(
    n_train: int,
    n_test: int,
    image_size: int = 32,
    num_classes: int = 4,
    seed: int = 0,
    cache: bool = True,
    object_scale: float = 1.0,
) -> Dataset:
    """The clutter dataset: balanced classes, ``meta["box"]`` per image.

    ``object_scale`` multiplies the sizes of the object and the fragments (1: half-sizes
    OBJECT_HALF_SIZE and FRAGMENT_HALF_SIZE of the image side): smaller objects make more
    crops miss them, so that where a crop lies matters and not only how large it is.

    Train and test come from separate streams of ``seed``, so ``n_test`` never changes
    the training images (and vice versa).
    """
    for name, v, lo in (("n_train", n_train, 1), ("n_test", n_test, 1), ("image_size", image_size, 16)):
        if not isinstance(v, int) or v < lo:
            raise ConfigError(f"{name} must be an integer >= {lo}, got {v!r}")
    if not 0.1 <= object_scale <= 1.5:
        raise ConfigError(f"object_scale must be in [0.1, 1.5], got {object_scale!r}")
    if not isinstance(num_classes, int) or not 2 <= num_classes <= len(SHAPES):
        raise ConfigError(f"num_classes must be an integer in 2..{len(SHAPES)} (one per shape: {', '.join(SHAPES)})")

    def build() -> Dataset:
        def split(part: str, n: int) -> Split:
            return _generate(n, image_size, num_classes,
                             data_generator(seed, "clutter", _VERSION, part, image_size, num_classes), object_scale)

        return Dataset(
            name="clutter",
            train=split("train", n_train),
            test=split("test", n_test),
            classes=list(SHAPES)[:num_classes],
            info={
                "seed": seed,
                "version": _VERSION,
                "object_scale": object_scale,
                "invariance": "crops that keep the object (meta['box']) keep the label",
                "box_format": "x0, y0, x1, y1 in pixels, x1/y1 exclusive",
            },
        )

    if not cache:
        return build()
    key: dict[str, float] = {"n_train": n_train, "n_test": n_test, "image_size": image_size,
                             "num_classes": num_classes, "seed": seed, "version": _VERSION}
    if object_scale != 1.0:  # the default's key (and cached files) as before
        key["object_scale"] = object_scale
    return cached("clutter", key, build)


def object_fraction(boxes_crop: Tensor, boxes_obj: Tensor) -> Tensor:
    """Fraction of each object box's area inside the matching crop box, (N,) in [0, 1].

    Both (N, 4) as (x0, y0, x1, y1) in the same units; an empty object box scores 0.
    """
    ix = (torch.minimum(boxes_crop[:, 2], boxes_obj[:, 2])
          - torch.maximum(boxes_crop[:, 0], boxes_obj[:, 0])).clamp(min=0)
    iy = (torch.minimum(boxes_crop[:, 3], boxes_obj[:, 3])
          - torch.maximum(boxes_crop[:, 1], boxes_obj[:, 1])).clamp(min=0)
    area = (boxes_obj[:, 2] - boxes_obj[:, 0]).clamp(min=0) * (boxes_obj[:, 3] - boxes_obj[:, 1]).clamp(min=0)
    return torch.where(area > 0, ix * iy / area.clamp(min=torch.finfo(area.dtype).tiny), torch.zeros_like(area))


def crop_keeps_object(boxes_crop: Tensor, boxes_obj: Tensor, min_frac: float = 0.5) -> Tensor:
    """Per sample (bool, (N,)): does the crop keep at least ``min_frac`` of the object's area?

    The ground-truth check of a learned crop on clutter: its mean over a test set is the
    fraction of label-preserving crops.
    """
    if boxes_crop.shape != boxes_obj.shape or boxes_obj.dim() != 2 or boxes_obj.shape[1] != 4:
        raise ValueError(f"expected two (N, 4) box tensors, got {tuple(boxes_crop.shape)} and {tuple(boxes_obj.shape)}")
    return object_fraction(boxes_crop.float(), boxes_obj.float().to(boxes_crop.device)) >= min_frac
