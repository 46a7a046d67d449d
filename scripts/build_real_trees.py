"""Build the real-image ImageFolder trees of augbench's folder-benchmark evidence, reproducibly.

Nothing is downloaded: both trees come from data that installs offline.

- ``digits``: scikit-learn's ``load_digits`` (1,797 real scanned handwritten digits, 8x8 grey,
  10 classes), every image, as 8x8 PNGs; the benchmarks resize them (``data.image_size``).
- ``fashion-mnist``: ``--per-class`` images of each class of Debian's ``dataset-fashion-mnist``
  training set (28x28 grey), the first ones of a seeded permutation, as PNGs.

Each is one ``<class>/`` tree, which augbench splits per class by ``data.split_seed``. The same
command writes byte-identical files (PNG without timestamps), so CI and the lead can rebuild a
tree and get the numbers of the committed grids::

    python scripts/build_real_trees.py --out /tmp/trees            # both
    python scripts/build_real_trees.py --out /tmp/trees --only digits
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

FASHION_ROOT = Path("/usr/share/datasets/fashion-mnist")
FASHION_CLASSES = ("t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
                   "ankle-boot")


def write_tree(out: Path, images: np.ndarray, labels: np.ndarray, classes: tuple[str, ...]) -> int:
    """Write uint8 grey `images` (N, H, W) as out/<class>/<index>.png; returns the number written."""
    for c in classes:
        (out / c).mkdir(parents=True, exist_ok=True)
    for i, (img, y) in enumerate(zip(images, labels, strict=True)):
        path = out / classes[int(y)] / f"{i:05d}.png"
        Image.fromarray(img, mode="L").save(path, optimize=False)
    return len(images)


def build_digits(out: Path) -> int:
    """scikit-learn's 1,797 digits (grey levels 0-16) as 8-bit PNGs."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        sys.exit("build_real_trees: the digits tree needs scikit-learn (pip install scikit-learn)")
    d = load_digits()
    images = np.round(d.images * (255.0 / 16.0)).astype(np.uint8)
    return write_tree(out, images, d.target, tuple(str(c) for c in range(10)))


def build_fashion(out: Path, per_class: int, seed: int) -> int:
    """`per_class` images per class from Fashion-MNIST's training set, chosen by a seeded permutation."""
    from augbench.datasets.fashion_mnist import read_idx

    images = read_idx(FASHION_ROOT / "train-images-idx3-ubyte.gz", 3).numpy()
    labels = read_idx(FASHION_ROOT / "train-labels-idx1-ubyte.gz", 1).numpy()
    order = np.random.default_rng(seed).permutation(len(labels))
    keep = np.concatenate([order[labels[order] == c][:per_class] for c in range(10)])
    keep.sort()
    return write_tree(out, images[keep], labels[keep], FASHION_CLASSES)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="folder that receives digits/ and fashion-mnist/")
    ap.add_argument("--only", choices=("digits", "fashion-mnist"), help="build one tree only")
    ap.add_argument("--per-class", type=int, default=300, help="fashion-mnist: images per class (default 300)")
    ap.add_argument("--seed", type=int, default=0, help="fashion-mnist: seed of the choice of images")
    args = ap.parse_args(argv)
    if args.only in (None, "digits"):
        print(f"digits: {build_digits(args.out / 'digits')} images in {args.out / 'digits'}")
    if args.only in (None, "fashion-mnist"):
        n = build_fashion(args.out / "fashion-mnist", args.per_class, args.seed)
        print(f"fashion-mnist: {n} images in {args.out / 'fashion-mnist'}")


if __name__ == "__main__":
    main()
