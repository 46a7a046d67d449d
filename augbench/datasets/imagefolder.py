"""Class-per-folder image trees (ImageNet-style or a user's own data) decoded into memory.

Two layouts, told apart by whether ``root/train`` exists:

- split: ``root/train/<class>/<image>`` and ``root/val/<class>/<image>`` (or
  ``root/test/<class>/<image>``); classes are the sorted folder names under ``train``.
- single tree (torchvision's ImageFolder): ``root/<class>/<image>``; each class's images are
  split by a seeded permutation, ``test_fraction`` of them (rounded, at least one when the
  class has two or more) held out for testing, so the split is the same on every machine.

Labels follow the sorted class folder names; files are listed sorted by name within each
class. Every split carries ``meta["file_index"]``: the image's position in that listing (of
its split folder, or of the whole single tree), so a result can be traced back to its file
whatever order a benchmark later puts the rows in. Each image is resized so its shorter side
is ``image_size`` (antialiased) and centre-cropped to ``image_size`` x ``image_size``, the
usual evaluation preprocessing, so random-crop style augmentations act on the stored square.

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
from augbench.datasets.base import Dataset, Split, cached, check_classes
from augbench.datasets.stream import FileImages, FileSplit, PathTable, should_stream
from augbench.errors import ConfigError, DataError

_NAME = "imagefolder"
_LAYOUT = ("train/<class>/<image> and val/<class>/<image> (or test/<class>/<image>), "
           "or one tree <class>/<image> split by a seed")
_VERSION = 2


def _class_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _index(folder: Path, label_of: dict[str, int]) -> tuple[list[Path], list[int]]:
    paths: list[Path] = []
    labels: list[int] = []
    for d in _class_dirs(folder):
        if d.name not in label_of:
            raise DataError(f"{_NAME}: class folder {d} has no counterpart in train/ (expected {_LAYOUT})")
        files = list_images(d)
        if not files:  # it would be a class no image teaches (or no image tests): a copy that went wrong
            raise DataError(f"{_NAME}: class folder {d} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}); "
                            f"add its images or remove it")
        paths += files
        labels += [label_of[d.name]] * len(files)
    if not paths:
        raise DataError(f"{_NAME}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in class folders of {folder} "
                        f"(expected {_LAYOUT})")
    return paths, labels


class ResizeCrop:
    """Shorter side to ``size`` (antialiased), then the centre square: picklable, as the DataLoader
    workers of a streamed split need."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __call__(self, img: Tensor) -> Tensor:
        return TF.center_crop(TF.resize(img, self.size, antialias=True), [self.size, self.size])


def seeded_split(labels: Tensor, test_fraction: float, seed: int) -> Tensor:
    """Boolean mask of the test rows: per class, round(test_fraction * n) of a seeded permutation.

    A class with at least two images keeps at least one on each side; a single image trains.
    """
    g = torch.Generator().manual_seed(seed)
    noise = torch.rand(len(labels), generator=g)
    # rank of each row within its class by the noise: one sort by (label, noise), no Python loop
    order = torch.argsort(labels.to(torch.float64) * 2 + noise.to(torch.float64))
    counts = torch.bincount(labels)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.empty_like(labels)
    rank[order] = torch.arange(len(labels)) - starts[labels[order]]
    n_test = torch.round(counts.to(torch.float64) * test_fraction).to(torch.int64)
    n_test = torch.where(counts >= 2, n_test.clamp(1, None).minimum(counts - 1), torch.zeros_like(counts))
    return rank < n_test[labels]


def _split_layout(root: Path) -> tuple[list[str], list[Path], list[int], list[Path], list[int], str]:
    train_dir = root / "train"
    test_dir = next((root / n for n in ("val", "test") if (root / n).is_dir()), None)
    if test_dir is None:
        raise DataError(f"{_NAME}: no val/ or test/ folder in {root} (expected {_LAYOUT})")
    classes = [d.name for d in _class_dirs(train_dir)]
    if not classes:
        raise DataError(f"{_NAME}: no class folders in {train_dir} (expected {_LAYOUT})")
    label_of = {c: i for i, c in enumerate(classes)}
    train_paths, train_labels = _index(train_dir, label_of)
    check_classes(_NAME, classes, train_dir)
    test_paths, test_labels = _index(test_dir, label_of)
    return classes, train_paths, train_labels, test_paths, test_labels, test_dir.name


def load_imagefolder(root: str | Path, image_size: int, cache: bool = True, test_fraction: float = 0.2,
                     split_seed: int = 0, stream: str = "off", memory_budget_gb: float = 16.0,
                     workers: int = 0) -> Dataset:
    """A class-folder tree under ``root`` as square ``image_size`` images, in either layout.

    ``test_fraction`` and ``split_seed`` apply to the single-tree layout only. With ``stream`` "on",
    or "auto" and decoded images larger than ``memory_budget_gb``, the splits are `FileSplit`s:
    the same rows, labels, meta and pixels, decoded batch by batch by ``workers`` processes.
    """
    if not isinstance(image_size, int) or image_size < 1:
        raise ConfigError(f"image_size must be a positive integer, got {image_size!r}")
    if not 0.0 < test_fraction < 1.0:
        raise ConfigError(f"test_fraction must lie strictly between 0 and 1, got {test_fraction!r}")
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise DataError(f"{_NAME}: no folder {root} (expected {_LAYOUT})")
    size = (image_size, image_size)
    if (root / "train").is_dir():
        classes, train_paths, train_labels, test_paths, test_labels, test_split = _split_layout(root)
        train_index = torch.arange(len(train_paths))
        test_index = torch.arange(len(test_paths))
        layout: dict = {"layout": "split"}
    else:
        classes = [d.name for d in _class_dirs(root)]
        if not classes:
            raise DataError(f"{_NAME}: no train/ folder and no class folders in {root} (expected {_LAYOUT})")
        paths, labels = _index(root, {c: i for i, c in enumerate(classes)})
        check_classes(_NAME, classes, root)
        is_test = seeded_split(torch.tensor(labels, dtype=torch.int64), test_fraction, split_seed)
        if not is_test.any():
            raise DataError(f"{_NAME}: too few images in {root} to hold any out for testing "
                            f"(each class needs two or more)")
        test_index, train_index = is_test.nonzero().flatten(), (~is_test).nonzero().flatten()
        train_paths, train_labels = [paths[i] for i in train_index], [labels[i] for i in train_index]
        test_paths, test_labels = [paths[i] for i in test_index], [labels[i] for i in test_index]
        test_split = f"seeded split ({test_fraction:g} of each class, seed {split_seed})"
        layout = {"layout": "single tree", "test_fraction": test_fraction, "split_seed": split_seed}

    streamed = should_stream(stream, (len(train_paths) + len(test_paths)) * 3 * image_size**2, memory_budget_gb)

    def split(paths: list[Path], labels: list[int], index: Tensor) -> Split:
        tf, y, meta = ResizeCrop(image_size), torch.tensor(labels, dtype=torch.int64), {"file_index": index.clone()}
        if streamed:
            return FileSplit(FileImages(PathTable.of(paths), (3, image_size, image_size), tf, _NAME, workers), y, meta)
        return Split(decode_stack(paths, _NAME, size, tf), y, meta)

    def build() -> Dataset:
        return Dataset(
            name=root.name or _NAME,
            train=split(train_paths, train_labels, train_index),
            test=split(test_paths, test_labels, test_index),
            classes=classes,
            info={
                "label_order": "sorted class folder names",
                "source": str(root),
                "test_split": test_split,
                **layout,
                "file_index": "position in the sorted listing (class folders, then file names) of the split "
                              "folder, or of the whole tree for a seeded split",
                "preprocess": f"resize shorter side to {image_size} (antialias), centre crop {image_size}x{image_size}",
            },
        )

    if not cache or streamed:
        return build()
    key = {"root": str(root), "image_size": image_size, "version": _VERSION, **layout,
           "files": fingerprint(train_paths + test_paths)}
    return cached(_NAME, key, build)
