"""Fashion-MNIST from its gzipped IDX files (60k train + 10k test, 28x28 grey, 10 classes).

The Debian package ``dataset-fashion-mnist`` installs the official files under
``/usr/share/datasets/fashion-mnist/``: ``train-images-idx3-ubyte.gz``,
``train-labels-idx1-ubyte.gz``, ``t10k-images-idx3-ubyte.gz``,
``t10k-labels-idx1-ubyte.gz``. Grey images are repeated to 3 channels so that every
augbench model and augmentation sees RGB. Parsing takes well under a second: not cached.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import torch
from torch import Tensor

from augbench.datasets.base import Dataset, Split
from augbench.errors import DataError

DEFAULT_ROOT = Path("/usr/share/datasets/fashion-mnist")
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
_UBYTE = 0x08  # IDX type code of unsigned bytes


def read_idx(path: Path, ndim: int) -> Tensor:
    """A gzipped IDX file of unsigned bytes as a uint8 tensor with ``ndim`` dimensions.

    IDX header: two zero bytes, a type code (0x08 = ubyte), the number of dimensions,
    then one big-endian int32 size per dimension, then the data in C order.
    """
    if not path.is_file():
        raise DataError(
            f"fashion-mnist: no file {path} "
            f"(expected the gzipped IDX files {', '.join(f for p in _FILES.values() for f in p)};"
            f" 'apt-get install dataset-fashion-mnist' puts them in {DEFAULT_ROOT})"
        )
    try:
        raw = gzip.decompress(path.read_bytes())
    except (OSError, EOFError) as e:
        raise DataError(f"fashion-mnist: {path} is not a readable gzip file ({e})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != _UBYTE or raw[3] != ndim:
        raise DataError(f"fashion-mnist: {path} is not a {ndim}-d unsigned-byte IDX file (bad header)")
    shape = struct.unpack(f">{ndim}i", raw[4 : 4 + 4 * ndim])
    offset = 4 + 4 * ndim
    count = 1
    for s in shape:
        count *= s
    if len(raw) - offset != count:
        raise DataError(f"fashion-mnist: {path} holds {len(raw) - offset} bytes of data, its header says {shape}")
    return torch.frombuffer(bytearray(raw[offset:]), dtype=torch.uint8).reshape(shape)


def _split(root: Path, part: str) -> Split:
    images = read_idx(root / _FILES[part][0], 3)
    labels = read_idx(root / _FILES[part][1], 1).to(torch.int64)
    if images.shape[0] != labels.shape[0]:
        raise DataError(f"fashion-mnist: {part} has {images.shape[0]} images but {labels.shape[0]} labels in {root}")
    if labels.numel() and int(labels.max()) >= len(CLASSES):
        raise DataError(f"fashion-mnist: {part} labels outside 0..{len(CLASSES) - 1} in {root}")
    return Split(images[:, None].repeat(1, 3, 1, 1), labels)


def load_fashion_mnist(root: str | Path | None = None) -> Dataset:
    """Fashion-MNIST with the official split, as uint8 (N, 3, 28, 28)."""
    root = DEFAULT_ROOT if root is None else Path(root).expanduser().resolve()
    return Dataset(
        name="fashion-mnist",
        train=_split(root, "train"),
        test=_split(root, "test"),
        classes=list(CLASSES),
        info={"source": str(root), "label_order": "official label codes 0..9", "grey": True},
    )
