"""RawFooT texture patches under controlled lighting (InstaAug paper, Section 5.4).

RawFooT (Bianco et al., 2017) photographs 68 food textures under 46 lighting
conditions: files ``%04d-%02d.png % (class, lighting)``, class 1..68, lighting 1..46,
800x800 RGB. Following the paper, training patches are cut at random positions from the
upper half of each image under the training lightings, and test patches from the lower
half, so no test pixel was seen in training. The test set mixes all lightings (or the
given ones), with ``meta["lighting"]`` per patch, so accuracy can be reported per
lighting and per group of Table D.1 (``info["groups"]``).

Lightings stay integer indices: which index is D45 is a benchmark setting. The classes
present in ``root`` are used (tests and users may hold a subset); labels follow sorted
class ids. Memory: (classes x lightings x patches) x 3 x side^2 bytes per split, e.g.
68 x 46 x 200 patches of 200x200 is 75 GB, so benchmarks choose fewer, smaller patches
(``patches_per_image``, ``test_patches_per_image``, ``out_size``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor
from torchvision.transforms.v2 import functional as TF

from augbench.datasets._io import decode_stack, fingerprint
from augbench.datasets.base import Dataset, Split, cached, check_classes
from augbench.errors import ConfigError, DataError
from augbench.seeds import data_generator

_NAME = "rawfoot"
_FILE_RE = re.compile(r"^(\d{4})-(\d{2})\.png$")
_LAYOUT = "PNG files %04d-%02d.png % (class 1..68, lighting 1..46)"
NUM_LIGHTINGS = 46
#: Table D.1 of the paper: lighting ids near D45 ("easy", in-distribution) and far ("hard").
GROUPS: dict[str, list[int]] = {
    "easy": [1, 2, 3, 4, 10, *range(14, 32)],
    "hard": [5, 6, 7, 8, 9, 11, 12, 13, *range(32, 47)],
}
_VERSION = 1


def _scan(root: Path) -> dict[tuple[int, int], Path]:
    if not root.is_dir():
        raise DataError(f"{_NAME}: {root} is not a directory (expected {_LAYOUT})")
    files = {}
    for p in root.iterdir():
        m = _FILE_RE.match(p.name)
        if m:
            files[(int(m.group(1)), int(m.group(2)))] = p
    if not files:
        raise DataError(f"{_NAME}: no files named like 0001-01.png in {root} (expected {_LAYOUT})")
    return files


def _check_lightings(name: str, values: Sequence[int]) -> list[int]:
    values = list(values)
    if not values:
        raise ConfigError(f"{name} must name at least one lighting (integers 1..{NUM_LIGHTINGS})")
    bad = [v for v in values if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= NUM_LIGHTINGS]
    if bad or len(set(values)) != len(values):
        raise ConfigError(f"{name} must be distinct integers 1..{NUM_LIGHTINGS}, got {values}")
    return values


def _positions(n: int, lo: int, hi: int, width: int, seed: int, *tags: object) -> tuple[Tensor, Tensor]:
    """``n`` patch corners (top in [lo, hi], left in [0, width]) from their own stream."""
    g = data_generator(seed, _NAME, *tags)
    top = torch.randint(lo, hi + 1, (n,), generator=g)
    left = torch.randint(0, width + 1, (n,), generator=g)
    return top, left


def cut_patches(img: Tensor, top: Tensor, left: Tensor, size: int) -> Tensor:
    """Square patches (P, C, size, size) of ``img`` (C, H, W) at corners (top, left), by one
    advanced-indexing gather."""
    ar = torch.arange(size, device=img.device)
    rows = (top.to(img.device)[:, None] + ar)[:, :, None]  # (P, size, 1)
    cols = (left.to(img.device)[:, None] + ar)[:, None, :]  # (P, 1, size)
    return img[:, rows, cols].permute(1, 0, 2, 3)


def load_rawfoot(
    root: str | Path,
    train_lightings: Sequence[int],
    patches_per_image: int = 200,
    patch_size: int = 200,
    seed: int = 0,
    test_lightings: Sequence[int] | None = None,
    *,
    test_patches_per_image: int | None = None,
    out_size: int | None = None,
    cache: bool = True,
) -> Dataset:
    """Train patches from the upper halves under ``train_lightings``; test patches from the
    lower halves under ``test_lightings`` (default: every lighting in ``root``).

    Patch positions come from ``seed`` and (class, lighting, split) only, so changing the
    set of test lightings never changes the training data. ``out_size`` resizes every
    patch (antialiased) after cutting; ``test_patches_per_image`` defaults to
    ``patches_per_image``. The paper's values are 200 patches of 200x200 per image.
    """
    root = Path(root).expanduser().resolve()
    files = _scan(root)
    class_ids = sorted({c for c, _ in files})
    check_classes(_NAME, [f"{c:04d}" for c in class_ids], root)
    train_l = _check_lightings("train_lightings", train_lightings)
    test_l = (
        sorted({l for _, l in files}) if test_lightings is None else _check_lightings("test_lightings", test_lightings)
    )
    n_train = patches_per_image
    n_test = patches_per_image if test_patches_per_image is None else test_patches_per_image
    for name, v in (("patches_per_image", n_train), ("test_patches_per_image", n_test), ("patch_size", patch_size)):
        if not isinstance(v, int) or v < 1:
            raise ConfigError(f"{name} must be a positive integer, got {v!r}")
    if out_size is not None and (not isinstance(out_size, int) or out_size < 1):
        raise ConfigError(f"out_size must be a positive integer or None, got {out_size!r}")
    needed = sorted(set(train_l) | set(test_l))
    missing = [f"{c:04d}-{l:02d}.png" for c in class_ids for l in needed if (c, l) not in files]
    if missing:
        raise DataError(
            f"{_NAME}: {len(missing)} image(s) missing in {root}, e.g. {missing[0]} "
            f"(every class present needs lightings {needed}; expected {_LAYOUT})"
        )
    paths = [files[(c, l)] for c in class_ids for l in needed]

    def build() -> Dataset:
        side = out_size or patch_size
        xtr = torch.empty((len(class_ids) * len(train_l) * n_train, 3, side, side), dtype=torch.uint8)
        xte = torch.empty((len(class_ids) * len(test_l) * n_test, 3, side, side), dtype=torch.uint8)
        ytr, ltr, yte, lte = [], [], [], []
        itr = ite = 0
        for ci, c in enumerate(class_ids):
            for l in needed:
                path = files[(c, l)]
                img = decode_stack([path], _NAME)[0]
                h, w = img.shape[1:]
                half = h // 2
                if patch_size > half or patch_size > w:
                    raise ConfigError(
                        f"patch_size {patch_size} does not fit in half of {path.name} ({w}x{h}); "
                        f"use at most {min(half, w)}"
                    )
                for split, lights, n, lo, hi in (
                    ("train", train_l, n_train, 0, half - patch_size),
                    ("test", test_l, n_test, half, h - patch_size),
                ):
                    if l not in lights:
                        continue
                    top, left = _positions(n, lo, hi, w - patch_size, seed, c, l, split, n, patch_size, (h, w))
                    patches = cut_patches(img, top, left, patch_size)
                    if out_size is not None and out_size != patch_size:
                        patches = TF.resize(patches, [out_size, out_size], antialias=True)
                    if split == "train":
                        xtr[itr : itr + n] = patches
                        itr += n
                        ytr += [ci] * n
                        ltr += [l] * n
                    else:
                        xte[ite : ite + n] = patches
                        ite += n
                        yte += [ci] * n
                        lte += [l] * n
        as_long = lambda v: torch.tensor(v, dtype=torch.int64)  # noqa: E731
        return Dataset(
            name=_NAME,
            train=Split(xtr, as_long(ytr), {"lighting": as_long(ltr)}),
            test=Split(xte, as_long(yte), {"lighting": as_long(lte)}),
            classes=[f"{c:04d}" for c in class_ids],
            info={
                "source": str(root),
                "label_order": "sorted class ids of the files present",
                "class_ids": class_ids,
                "train_lightings": train_l,
                "test_lightings": test_l,
                "groups": {k: list(v) for k, v in GROUPS.items()},
                "patch_size": patch_size,
                "seed": seed,
            },
        )

    if not cache:
        return build()
    key = {
        "root": str(root),
        "version": _VERSION,
        "files": fingerprint(paths),
        "train_lightings": train_l,
        "test_lightings": test_l,
        "n_train": n_train,
        "n_test": n_test,
        "patch_size": patch_size,
        "out_size": out_size,
        "seed": seed,
        "classes": class_ids,
    }
    return cached(_NAME, key, build)
