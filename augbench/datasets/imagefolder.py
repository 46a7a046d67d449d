"""Class-per-folder image trees (ImageNet-style or a user's own data) decoded into memory.

Expected layout: ``root/train/<class>/<image>`` and ``root/val/<class>/<image>`` (or
``root/test/<class>/<image>``). Classes are the sorted folder names under ``train``;
labels follow that order. Each image is resized so its shorter side is ``image_size``
(antialiased) and centre-cropped to ``image_size`` x ``image_size``, the usual
evaluation preprocessing, so random-crop style augmentations act on the stored square.

Everything is held in memory as uint8: N * 3 * image_size**2 bytes (full ImageNet at
64 px is about 16 GB; at 224 px about 190 GB, which does not fit). Use this loader
only for data that fits in (host and device) memory.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor
from torchvision.transforms.v2 import functional as TF

from augbench.datasets._io import IMAGE_SUFFIXES, decode_stack, fingerprint, list_images
from augbench.datasets.base import Dataset, Split, cached
from augbench.errors import ConfigError, DataError

_NAME = "imagefolder"
_LAYOUT = "train/<class>/<image> and val/<class>/<image> (or test/<class>/<image>)"
_VERSION = 1


def _class_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _index(folder: Path, label_of: dict[str, int]) -> tuple[list[Path], list[int]]:
    paths: list[Path] = []
    labels: list[int] = []
    for d in _class_dirs(folder):
        if d.name not in label_of:
            raise DataError(f"{_NAME}: class folder {d} has no counterpart in train/ (expected {_LAYOUT})")
        files = list_images(d)
        paths += files
        labels += [label_of[d.name]] * len(files)
    if not paths:
        raise DataError(
            f"{_NAME}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in class folders of {folder} (expected {_LAYOUT})"
        )
    return paths, labels


def _resize_crop(size: int):
    def f(img: Tensor) -> Tensor:
        return TF.center_crop(TF.resize(img, size, antialias=True), [size, size])

    return f


def load_imagefolder(root: str | Path, image_size: int, cache: bool = True) -> Dataset:
    """Train and val (or test) class folders under ``root``, as square ``image_size`` images."""
    if not isinstance(image_size, int) or image_size < 1:
        raise ConfigError(f"image_size must be a positive integer, got {image_size!r}")
    root = Path(root).expanduser().resolve()
    train_dir = root / "train"
    if not train_dir.is_dir():
        raise DataError(f"{_NAME}: no train/ folder in {root} (expected {_LAYOUT})")
    test_dir = next((root / n for n in ("val", "test") if (root / n).is_dir()), None)
    if test_dir is None:
        raise DataError(f"{_NAME}: no val/ or test/ folder in {root} (expected {_LAYOUT})")
    classes = [d.name for d in _class_dirs(train_dir)]
    if not classes:
        raise DataError(f"{_NAME}: no class folders in {train_dir} (expected {_LAYOUT})")
    label_of = {c: i for i, c in enumerate(classes)}
    train_paths, train_labels = _index(train_dir, label_of)
    test_paths, test_labels = _index(test_dir, label_of)
    size = (image_size, image_size)

    def build() -> Dataset:
        tf = _resize_crop(image_size)
        return Dataset(
            name=root.name or _NAME,
            train=Split(decode_stack(train_paths, _NAME, size, tf), torch.tensor(train_labels, dtype=torch.int64)),
            test=Split(decode_stack(test_paths, _NAME, size, tf), torch.tensor(test_labels, dtype=torch.int64)),
            classes=classes,
            info={
                "label_order": "sorted class folder names of train/",
                "source": str(root),
                "test_split": test_dir.name,
                "preprocess": f"resize shorter side to {image_size} (antialias), centre crop {image_size}x{image_size}",
            },
        )

    if not cache:
        return build()
    key = {"root": str(root), "image_size": image_size, "version": _VERSION, "files": fingerprint(train_paths + test_paths)}
    return cached(_NAME, key, build)
