"""Texture: procedural textures under simulated lighting (a colour-jitter testbed).

Some classes differ ONLY by hue (lemon vs lime: the same dot pattern, yellow vs green;
sky vs violet: the same checkerboard), so a hue jitter wider than their gap changes the
label; the other classes differ only by pattern and get a random hue per instance, so
hue is irrelevant to them. This is the local invariance of the paper's Figure 1a, with
ground truth: ``info["hue_defined_classes"]``, ``meta["hue"]`` and
:func:`hue_range_narrowness` score a method's learned hue ranges.

As in RawFooT (Section 5.4), training images are lit by one illuminant and test images
by many: colour temperatures (von Kries gains of a black body), intensity scalings,
coloured lights, and two-light mixtures that ramp from one light on the left to the
other on the right. Each test texture is rendered under every test illuminant
(``meta["instance"]`` pairs them). ``info["groups"]`` splits the test illuminants into
the half nearest the training light ("id") and the rest ("ood") by the distance of
their log channel gains, the analogue of the paper's Table D.1 easy/hard split.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from augbench.datasets._synth import grid, hsv_to_rgb, to_uint8
from augbench.datasets.base import Dataset, Split, cached
from augbench.errors import ConfigError
from augbench.seeds import data_generator

_VERSION = 1  # bump whenever generated pixels change: it is part of the cache key

#: Classes in label order: (name, pattern, hue in turns or None for a random hue).
CLASSES: list[tuple[str, str, float | None]] = [
    ("lemon", "dots", 0.15),
    ("lime", "dots", 0.28),
    ("sky", "checker", 0.56),
    ("violet", "checker", 0.74),
    ("stripes", "stripes", None),
    ("rings", "rings", None),
]
HUE_DEFINED_CLASSES = [i for i, (_, _, h) in enumerate(CLASSES) if h is not None]
HUE_JITTER = 0.02  # +- spread of a hue-defined class's hue, in turns (gaps are >= 0.13)


def kelvin_to_gains(kelvin: float) -> tuple[float, float, float]:
    """RGB of a black body at ``kelvin`` (Tanner Helland's fit to the CIE data), scaled so
    the largest channel is 1; 6500 K is close to (1, 1, 1)."""
    t = kelvin / 100.0
    r = 255.0 if t <= 66 else 329.698727446 * (t - 60) ** -0.1332047592
    g = 99.4708025861 * math.log(t) - 161.1195681661 if t <= 66 else 288.1221695283 * (t - 60) ** -0.0755148492
    b = 255.0 if t >= 66 else (0.0 if t <= 19 else 138.5177312231 * math.log(t - 10) - 305.0447927307)
    rgb = [min(max(c, 1.0), 255.0) for c in (r, g, b)]
    m = max(rgb)
    return (rgb[0] / m, rgb[1] / m, rgb[2] / m)


def _table() -> dict[str, tuple[tuple[float, float, float], tuple[float, float, float], float]]:
    """name -> (gains on the left edge, gains on the right edge, intensity)."""
    kelvins = (2700, 3000, 3500, 4000, 4500, 5000, 5500, 6000, 6500, 7500, 8500, 9500)
    d = {f"D{k // 100}": kelvin_to_gains(k) for k in kelvins}
    t: dict = {name: (g, g, 1.0) for name, g in d.items()}
    for name, i in (("D45", 0.5), ("D45", 0.75), ("D45", 1.3), ("D65", 0.6), ("D65", 0.8)):
        t[f"{name}(I={i})"] = (d[name], d[name], i)
    coloured = {
        "red": (1.0, 0.25, 0.25),
        "green": (0.3, 1.0, 0.3),
        "blue": (0.35, 0.45, 1.0),
        "amber": (1.0, 0.6, 0.1),
        "cyan": (0.2, 0.9, 1.0),
        "magenta": (1.0, 0.3, 0.9),
    }
    t.update({name: (g, g, 1.0) for name, g in coloured.items()})
    lights = {**d, **coloured}
    for a, b in (("D65", "D27"), ("D65", "D95"), ("D95", "D27"), ("D45", "red"), ("D45", "blue"), ("red", "green")):
        t[f"{a}+{b}"] = (lights[a], lights[b], 1.0)
    return t


#: Every simulated illuminant, in a fixed order (29 of them).
ILLUMINANTS = _table()


def _distance(a: str, b: str) -> float:
    """Mean over the left and right edges of the L2 distance of log(gains * intensity)."""
    ga, gb = ILLUMINANTS[a], ILLUMINANTS[b]
    total = 0.0
    for side in (0, 1):
        la = torch.log(torch.tensor(ga[side]).clamp(min=1e-2) * ga[2])
        lb = torch.log(torch.tensor(gb[side]).clamp(min=1e-2) * gb[2])
        total += float((la - lb).norm())
    return total / 2


def _gain_map(name: str, size: int) -> Tensor:
    """(3, S, S) per-pixel gains: a left-to-right ramp between the two lights, times intensity."""
    left, right, intensity = ILLUMINANTS[name]
    ramp = (torch.arange(size, dtype=torch.float32) + 0.5) / size
    gl, gr = torch.tensor(left).view(3, 1, 1), torch.tensor(right).view(3, 1, 1)
    return intensity * (gl + (gr - gl) * ramp.view(1, 1, size)).expand(3, size, size)


def _rotated(x: Tensor, y: Tensor, theta: Tensor, ox: Tensor, oy: Tensor) -> tuple[Tensor, Tensor]:
    c, s = torch.cos(theta).view(-1, 1, 1), torch.sin(theta).view(-1, 1, 1)
    return c * x + s * y + ox.view(-1, 1, 1), -s * x + c * y + oy.view(-1, 1, 1)


def _pattern(kind: str, n: int, size: int, g: torch.Generator) -> Tensor:
    """(n, S, S) shading in [0, 1] of pattern ``kind``, random period, angle and phase."""
    x, y = grid(size)
    period = (4.5 + 4.0 * torch.rand(n, generator=g)).view(-1, 1, 1)
    theta = math.pi * torch.rand(n, generator=g)
    ox, oy = size * torch.rand(n, generator=g), size * torch.rand(n, generator=g)
    u, v = _rotated(x, y, theta, ox, oy)
    if kind == "dots":
        fu, fv = torch.remainder(u / period, 1.0) - 0.5, torch.remainder(v / period, 1.0) - 0.5
        return (fu * fu + fv * fv <= 0.3**2).float()
    if kind == "checker":
        return ((torch.floor(u / period) + torch.floor(v / period)).remainder(2) == 0).float()
    if kind == "stripes":
        return 0.5 + 0.5 * torch.sin(2 * math.pi * u / period)
    if kind == "rings":
        cx, cy = (size * torch.rand(n, generator=g)).view(-1, 1, 1), (size * torch.rand(n, generator=g)).view(-1, 1, 1)
        return 0.5 + 0.5 * torch.sin(2 * math.pi * torch.sqrt((x - cx) ** 2 + (y - cy) ** 2) / period)
    raise AssertionError(kind)


def _textures(n_per_class: int, size: int, g: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """Unlit textures (N, 3, S, S) in [0, 1], labels (N,) and true hues (N,), class-major."""
    imgs, labels, hues = [], [], []
    for k, (_, kind, hue) in enumerate(CLASSES):
        n = n_per_class
        h = torch.rand(n, generator=g) if hue is None else hue + HUE_JITTER * (2 * torch.rand(n, generator=g) - 1)
        s = 0.55 + 0.35 * torch.rand(n, generator=g)
        v = 0.55 + 0.3 * torch.rand(n, generator=g)
        shade = 0.45 + 0.55 * _pattern(kind, n, size, g)  # pattern modulates value only: hue is uniform
        img = hsv_to_rgb(h.view(-1, 1, 1), s.view(-1, 1, 1), v.view(-1, 1, 1) * shade)
        img = img + 0.03 * (torch.rand(img.shape, generator=g) - 0.5)
        imgs.append(img)
        labels.append(torch.full((n,), k, dtype=torch.int64))
        hues.append(torch.remainder(h, 1.0))
    return torch.cat(imgs), torch.cat(labels), torch.cat(hues)


def _check_names(illuminants: Sequence[str] | None, train_illuminant: str) -> list[str]:
    valid = ", ".join(ILLUMINANTS)
    if train_illuminant not in ILLUMINANTS:
        raise ConfigError(f"unknown train_illuminant {train_illuminant!r} (choose from: {valid})")
    names = list(ILLUMINANTS) if illuminants is None else list(illuminants)
    bad = [n for n in names if n not in ILLUMINANTS]
    if bad or not names or len(set(names)) != len(names):
        raise ConfigError(f"illuminants must be distinct names from: {valid} (got {names})")
    return names


def make_texture(
    n_train_per_class: int,
    n_test_per_class: int,
    image_size: int = 32,
    seed: int = 0,
    illuminants: Sequence[str] | None = None,
    train_illuminant: str = "D45",
    cache: bool = True,
) -> Dataset:
    """The texture dataset: ``n_train_per_class`` images per class under ``train_illuminant``;
    ``n_test_per_class`` textures per class, each under every test illuminant (default all
    of :data:`ILLUMINANTS`), so the test set has classes x n_test_per_class x illuminants images."""
    for name, val in (("n_train_per_class", n_train_per_class), ("n_test_per_class", n_test_per_class)):
        if not isinstance(val, int) or val < 1:
            raise ConfigError(f"{name} must be a positive integer, got {val!r}")
    if not isinstance(image_size, int) or image_size < 8:
        raise ConfigError(f"image_size must be an integer >= 8, got {image_size!r}")
    names = _check_names(illuminants, train_illuminant)

    def build() -> Dataset:
        base_tr, ytr, htr = _textures(n_train_per_class, image_size,
                                      data_generator(seed, "texture", _VERSION, "train", image_size))
        perm = torch.randperm(ytr.shape[0], generator=data_generator(seed, "texture", _VERSION, "train-order"))
        base_tr, ytr, htr = base_tr[perm], ytr[perm], htr[perm]  # no class-sorted training set
        xtr = to_uint8(base_tr * _gain_map(train_illuminant, image_size))
        base_te, yte, hte = _textures(n_test_per_class, image_size,
                                      data_generator(seed, "texture", _VERSION, "test", image_size))
        nb = base_te.shape[0]
        xte = torch.empty((len(names) * nb, 3, image_size, image_size), dtype=torch.uint8)
        for i, name in enumerate(names):  # a loop over illuminants, each a batched multiply
            xte[i * nb : (i + 1) * nb] = to_uint8(base_te * _gain_map(name, image_size))
        repeat = len(names)
        dist = [_distance(name, train_illuminant) for name in names]
        order = sorted(range(len(names)), key=lambda i: (dist[i], i))
        n_id = (len(names) + 1) // 2
        return Dataset(
            name="texture",
            train=Split(xtr, ytr, {"hue": htr}),
            test=Split(
                xte,
                yte.repeat(repeat),
                {
                    "illuminant": torch.arange(repeat).repeat_interleave(nb),
                    "instance": torch.arange(nb).repeat(repeat),
                    "hue": hte.repeat(repeat),
                },
            ),
            classes=[c[0] for c in CLASSES],
            info={
                "seed": seed,
                "version": _VERSION,
                "illuminants": names,
                "train_illuminant": train_illuminant,
                "illuminant_distance": dist,
                "groups": {"id": sorted(order[:n_id]), "ood": sorted(order[n_id:])},
                "hue_defined_classes": list(HUE_DEFINED_CLASSES),
                "hue_jitter": HUE_JITTER,
                "invariance": "hue is label-defining for hue_defined_classes and irrelevant for the others",
            },
        )

    if not cache:
        return build()
    key = {
        "n_train": n_train_per_class,
        "n_test": n_test_per_class,
        "image_size": image_size,
        "seed": seed,
        "illuminants": names,
        "train_illuminant": train_illuminant,
        "version": _VERSION,
    }
    return cached("texture", key, build)


def hue_range_narrowness(ranges: Tensor, y: Tensor, hue_defined: Sequence[int] | Tensor) -> dict[str, float]:
    """Mean learned hue-range width on hue-defined vs hue-free classes.

    ``ranges`` (N, 2) are per-sample hue intervals (lo, hi) in turns (1 = the full hue
    circle; widths above one turn count as one). A method that captured the local
    invariance learns narrow ranges where hue is the label and wide ones where it is not,
    so ``ratio`` = hue_defined / hue_free well below 1 is the goal (nan if a group is empty).
    """
    if ranges.dim() != 2 or ranges.shape[1] != 2 or y.shape != ranges.shape[:1]:
        raise ValueError(f"expected ranges (N, 2) and labels (N,), got {tuple(ranges.shape)} and {tuple(y.shape)}")
    width = (ranges[:, 1] - ranges[:, 0]).float()
    if bool((width < 0).any()):
        raise ValueError("hue ranges must have hi >= lo")
    width = width.clamp(max=1.0)
    defined = torch.isin(y, torch.as_tensor(hue_defined, dtype=y.dtype, device=y.device))
    nan = float("nan")
    d = float(width[defined].mean()) if bool(defined.any()) else nan
    f = float(width[~defined].mean()) if bool((~defined).any()) else nan
    return {"hue_defined": d, "hue_free": f, "ratio": d / f if f > 0 else nan}


def hue_safe_shifts(hue: Tensor, y: Tensor) -> Tensor:
    """(N, 2): the interval of hue shifts (turns) that keep each instance's label, lo < 0 < hi.

    A hue-defined class shares its pattern with one other class; a shifted hue keeps the label
    while it stays nearer its own class's hue than the partner's, an arc of half a turn from
    the midpoint towards the partner around the far side: (d/2 - 1/2, d/2) for a partner d
    turns above (signed, |d| <= 1/2, from the instance's own hue ``hue``). Pattern classes keep
    their label under any shift: (-1/2, 1/2), the whole circle. The ground truth that
    ``interval_metrics`` scores learned hue ranges against, as glyphs' intervals do for rotation.
    """
    base = torch.tensor([float("nan") if h is None else h for _, _, h in CLASSES])
    partner = torch.tensor([next((j for j, (_, kind_j, h_j) in enumerate(CLASSES)
                                  if j != i and kind_j == kind and h_j is not None), i) if h is not None else i
                            for i, (_, kind, h) in enumerate(CLASSES)])
    d = torch.remainder(base[partner[y]] - hue + 0.5, 1.0) - 0.5  # signed circular offset to the partner
    lo = torch.where(d > 0, d / 2 - 0.5, d / 2)
    hi = torch.where(d > 0, d / 2, d / 2 + 0.5)
    free = torch.isnan(base[y])
    return torch.stack([torch.where(free, -0.5, lo), torch.where(free, 0.5, hi)], -1)
