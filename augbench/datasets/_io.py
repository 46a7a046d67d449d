"""File-tree helpers shared by the real-data loaders: listing, fingerprinting, decoding.

Decoding goes through torchvision.io (libjpeg/libpng): JPEGs are decoded a list at a
time with ``decode_jpeg``, which is several times faster per image than one
``decode_image`` call per file. Every image comes out as uint8 RGB (3, H, W): grey and
palette files are expanded, 16-bit PNGs are rounded to 8 bits.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import Tensor
from torchvision.io import ImageReadMode, decode_image, decode_jpeg, read_file

from augbench.errors import DataError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif"})
_JPEG_SUFFIXES = frozenset({".jpg", ".jpeg"})
_CHUNK = 1024  # files read and decoded together: bounds the raw bytes held at once


@contextmanager
def _quiet_torchvision_io() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The image decoding and encoding capabilities",
                                category=DeprecationWarning)
        yield


def list_images(folder: Path) -> list[Path]:
    """Image files directly in ``folder`` (by suffix, case-insensitive), sorted by name."""
    return sorted(
        p
        for p in folder.iterdir()
        if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file()
    )


def fingerprint(paths: Sequence[Path]) -> str:
    """sha256 over (path, size, mtime) of ``paths``: changes when any file is edited,
    added, removed or renamed, without reading the files."""
    h = hashlib.sha256()
    for p in paths:
        st = os.stat(p)
        h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def to_uint8(img: Tensor) -> Tensor:
    """uint8 as is; uint16 (16-bit PNG) rounded to the nearest 8-bit value."""
    if img.dtype == torch.uint8:
        return img
    if img.dtype == torch.uint16:
        return ((img.to(torch.int32) * 255 + 32767) // 65535).to(torch.uint8)
    raise DataError(f"unsupported image dtype {img.dtype} (expected 8- or 16-bit images)")


def _decode_one(data: Tensor, path: Path, dataset: str) -> Tensor:
    try:
        return to_uint8(decode_image(data, mode=ImageReadMode.RGB))
    except RuntimeError as e:
        raise DataError(f"{dataset}: cannot decode image {path} ({str(e).splitlines()[0]})") from None


def _chunks(seq: Sequence[Path], n: int) -> Iterator[Sequence[Path]]:
    for i in range(0, len(seq), n):
        yield seq[i : i + n]


def iter_decoded(paths: Sequence[Path], dataset: str) -> Iterator[tuple[Path, Tensor]]:
    """Yield (path, uint8 RGB (3, H, W)) for each path, in order.

    A file that cannot be read or decoded raises DataError naming it.
    """
    for chunk in _chunks(paths, _CHUNK):
        with _quiet_torchvision_io():
            try:
                datas = [read_file(str(p)) for p in chunk]
            except (OSError, RuntimeError) as e:
                raise DataError(f"{dataset}: cannot read image files under {chunk[0].parent} ({e})") from None
            if all(p.suffix.lower() in _JPEG_SUFFIXES for p in chunk):
                try:
                    images = decode_jpeg(datas, mode=ImageReadMode.RGB)
                except RuntimeError:  # locate the bad file (or a JPEG-named PNG) one by one
                    images = [_decode_one(d, p, dataset) for d, p in zip(datas, chunk)]
            else:
                images = [_decode_one(d, p, dataset) for d, p in zip(datas, chunk)]
        yield from zip(chunk, images)


def decode_stack(
    paths: Sequence[Path],
    dataset: str,
    size: tuple[int, int] | None = None,
    transform: Callable[[Tensor], Tensor] | None = None,
) -> Tensor:
    """Decode ``paths`` into one uint8 (N, 3, H, W) tensor, filled in place.

    ``transform`` (e.g. resize + centre crop) maps each decoded image to the common size;
    without it every image must already have ``size`` (or the first image's size).
    """
    out: Tensor | None = None
    for i, (path, img) in enumerate(iter_decoded(paths, dataset)):
        if transform is not None:
            img = transform(img)
        if out is None:
            h, w = size if size is not None else img.shape[1:]
            out = torch.empty((len(paths), 3, h, w), dtype=torch.uint8)
        if img.shape[1:] != out.shape[2:]:
            raise DataError(
                f"{dataset}: image {path} is {img.shape[2]}x{img.shape[1]}, "
                f"expected {out.shape[3]}x{out.shape[2]} like the others"
            )
        out[i] = img
    if out is None:
        h, w = size if size is not None else (0, 0)
        out = torch.empty((0, 3, h, w), dtype=torch.uint8)
    return out
