"""Tiny-ImageNet-200 from a local copy of the official release (never downloaded).

Layout of the official release: ``wnids.txt``; ``train/<wnid>/images/*.JPEG``;
``val/images/*.JPEG`` labelled by ``val/val_annotations.txt`` (file, wnid, box); an
optional ``words.txt`` (wnid TAB names). The official val split is used as the test set
(the official test split has no labels), as in the InstaAug paper (Section 5.1).

Label order: labels follow the line order of ``wnids.txt``, not sorted wnids (public
loaders disagree; the rule is recorded in ``info["label_order"]``). All 64x64; the
grayscale JPEGs of the release are expanded to RGB.
"""

from __future__ import annotations

from pathlib import Path

import torch

from augbench.datasets._io import decode_stack, fingerprint
from augbench.datasets.base import Dataset, Split, cached, check_classes
from augbench.errors import DataError

_NAME = "tiny-imagenet"
_LAYOUT = "the official tiny-imagenet-200 layout: wnids.txt, train/<wnid>/images/*.JPEG, val/val_annotations.txt"
_SIZE = (64, 64)
_VERSION = 1  # bump when decoding changes


def _fail(what: str) -> DataError:
    return DataError(f"{_NAME}: {what} (expected {_LAYOUT})")


def _read_wnids(root: Path) -> list[str]:
    f = root / "wnids.txt"
    if not f.is_file():
        raise _fail(f"no wnids.txt in {root}")
    wnids = [line.strip() for line in f.read_text().splitlines() if line.strip()]
    if not wnids:
        raise _fail(f"{f} is empty")
    if len(set(wnids)) != len(wnids):
        raise _fail(f"{f} lists a wnid twice")
    return wnids


def _read_words(root: Path, wnids: list[str]) -> list[str] | None:
    f = root / "words.txt"
    if not f.is_file():
        return None
    words = dict(line.split("\t", 1) for line in f.read_text().splitlines() if "\t" in line)
    return [words.get(w, "").strip() for w in wnids]


def _index_train(root: Path, wnids: list[str]) -> tuple[list[Path], list[int]]:
    paths: list[Path] = []
    labels: list[int] = []
    for label, wnid in enumerate(wnids):
        folder = root / "train" / wnid / "images"
        if not folder.is_dir():
            raise _fail(f"no folder {folder} for wnid {wnid} of wnids.txt")
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpeg", ".jpg"))
        if not files:
            raise _fail(f"no JPEG images in {folder}")
        paths += files
        labels += [label] * len(files)
    return paths, labels


def _index_val(root: Path, wnids: list[str]) -> tuple[list[Path], list[int]]:
    ann = root / "val" / "val_annotations.txt"
    if not ann.is_file():
        raise _fail(f"no val/val_annotations.txt in {root}")
    label_of = {w: i for i, w in enumerate(wnids)}
    paths: list[Path] = []
    labels: list[int] = []
    for n, line in enumerate(ann.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        cols = line.split("\t")
        if len(cols) < 2:
            raise _fail(f"{ann} line {n} has no tab-separated wnid")
        fname, wnid = cols[0].strip(), cols[1].strip()
        if wnid not in label_of:
            raise _fail(f"{ann} line {n} names wnid {wnid} which is not in wnids.txt")
        path = root / "val" / "images" / fname
        if not path.is_file():
            raise _fail(f"{ann} line {n} names {path}, which does not exist")
        paths.append(path)
        labels.append(label_of[wnid])
    if not paths:
        raise _fail(f"{ann} lists no images")
    return paths, labels


def load_tinyimagenet(root: str | Path, cache: bool = True) -> Dataset:
    """Tiny-ImageNet-200: official train (100k) as train, official val (10k) as test.

    Decoding takes tens of seconds on CPU, so the decoded tensors are cached (see
    :func:`augbench.datasets.base.cached`), keyed by the resolved root and a fingerprint
    of the files' sizes and modification times.
    """
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise _fail(f"{root} is not a directory")
    wnids = _read_wnids(root)
    check_classes(_NAME, wnids, root / "wnids.txt")
    train_paths, train_labels = _index_train(root, wnids)
    val_paths, val_labels = _index_val(root, wnids)
    words = _read_words(root, wnids)

    def build() -> Dataset:
        info: dict = {
            "label_order": "wnids.txt line order",
            "source": str(root),
            "test_split": "official val (val/val_annotations.txt)",
        }
        if words is not None:
            info["class_words"] = words
        return Dataset(
            name=_NAME,
            train=Split(decode_stack(train_paths, _NAME, _SIZE), torch.tensor(train_labels, dtype=torch.int64)),
            test=Split(decode_stack(val_paths, _NAME, _SIZE), torch.tensor(val_labels, dtype=torch.int64)),
            classes=list(wnids),
            info=info,
        )

    if not cache:
        return build()
    key = {
        "root": str(root),
        "version": _VERSION,
        "wnids": wnids,
        "words": words,
        "files": fingerprint(train_paths + val_paths + [root / "val" / "val_annotations.txt"]),
    }
    return cached(_NAME, key, build)
