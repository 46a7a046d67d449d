"""In-memory dataset containers and the on-disk cache of decoded datasets.

Every benchmark dataset is held as uint8 tensors (N, C, H, W) so that a whole split can
live on the training device and be divided by 255 there (see the suite's image
convention). Decoding JPEG/PNG trees or generating synthetic data is slow compared with
loading tensors, so loaders wrap their work in :func:`cached`.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from augbench.atomic import atomic_torch_save
from augbench.errors import DataError
from augbench.log import logger
from augbench.torchfile import UnreadableFile, load_tensors

#: Bump when the cached layout (or anything that changes decoded values) changes: it is
#: part of every cache key, so old files are simply never read again.
CACHE_FORMAT_VERSION = 1


@dataclass
class Split:
    """One split: images, labels and per-sample extras, all sharing the first dimension N.

    ``x`` is uint8 (N, C, H, W) with C = 3 unless a dataset says otherwise; ``y`` is int64
    (N,); each ``meta`` tensor (e.g. object boxes, lighting index) has first dimension N.
    """

    x: Tensor
    y: Tensor
    meta: dict[str, Tensor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.x.dim() != 4 or self.x.dtype != torch.uint8:
            raise DataError(
                f"split images must be uint8 (N, C, H, W), got {self.x.dtype} {tuple(self.x.shape)}"
            )
        n = self.x.shape[0]
        if self.y.shape != (n,) or self.y.dtype != torch.int64:
            raise DataError(
                f"split labels must be int64 ({n},) to match the images, got {self.y.dtype} {tuple(self.y.shape)}"
            )
        for name, value in self.meta.items():
            if value.dim() == 0 or value.shape[0] != n:
                raise DataError(
                    f"split meta[{name!r}] must have first dimension {n}, got shape {tuple(value.shape)}"
                )

    def __len__(self) -> int:
        return self.x.shape[0]

    def subset(self, idx: Tensor) -> Split:
        """Rows ``idx`` (integer indices or a boolean mask) of x, y and every meta tensor."""
        return Split(
            x=self.x[idx.to(self.x.device)],
            y=self.y[idx.to(self.y.device)],
            meta={k: v[idx.to(v.device)] for k, v in self.meta.items()},
        )

    def to(self, device: torch.device | str) -> Split:
        """The same split with every tensor on ``device`` (dtypes unchanged)."""
        return Split(
            x=self.x.to(device),
            y=self.y.to(device),
            meta={k: v.to(device) for k, v in self.meta.items()},
        )


@dataclass
class Dataset:
    """A named train/test pair with class names in label order.

    ``info`` records facts a reader of the results needs (label-order rule, source path,
    lighting groups, ...); keep it to plain values (str, int, float, bool, None, lists,
    dicts, tensors) so that it survives the weights-only cache.
    """

    name: str
    train: Split
    test: Split
    classes: list[str]
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        c, h, w = self.train.x.shape[1:]
        return (int(c), int(h), int(w))


def check_classes(dataset: str, classes: Sequence[str], where: Path | str) -> None:
    """Refuse a class list a classifier cannot learn from: with one class every prediction is right.

    For loaders that find their classes on disk (folders, file names, a class list), so a tree
    with one class folder fails in one line instead of training to a meaningless 100%.
    """
    if len(classes) < 2:
        found = f"only one class ({classes[0]})" if classes else "no classes"
        raise DataError(f"{dataset}: {found} in {where}; a classification benchmark needs two or more")


def cache_root() -> Path:
    """``$AUGBENCH_CACHE`` if set, else ``~/.cache/augbench``."""
    env = os.environ.get("AUGBENCH_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "augbench"


def _key_json(kind: str, key: dict) -> str:
    try:
        return json.dumps(
            {"kind": kind, "format": CACHE_FORMAT_VERSION, "key": key},
            sort_keys=True,
            separators=(",", ":"),
        )
    except TypeError as e:  # a Path or tensor in the key is a caller bug
        raise TypeError(f"cache key for {kind!r} must be JSON-serialisable: {e}") from None


def cache_path(kind: str, key: dict) -> Path:
    """Where the dataset described by (kind, key) is cached.

    The file name is the sha256 of the sorted JSON of the key plus the cache format
    version, so any change of a parameter (or of the format) points at a new file.
    """
    digest = hashlib.sha256(_key_json(kind, key).encode()).hexdigest()
    return cache_root() / kind / f"{digest}.pt"


def _check_plain(value: Any, where: str) -> None:
    """Refuse values that ``torch.load(weights_only=True)`` would not read back."""
    if value is None or isinstance(value, (str, int, float, bool, Tensor)):
        return
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_plain(v, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"{where} has a non-string key {k!r}; the cache cannot store it")
            _check_plain(v, f"{where}[{k!r}]")
        return
    raise TypeError(f"{where} holds a {type(value).__name__}; the cache stores only plain values")


def _split_state(s: Split) -> dict[str, Any]:
    return {"x": s.x.cpu(), "y": s.y.cpu(), "meta": {k: v.cpu() for k, v in s.meta.items()}}


def _to_state(ds: Dataset, key_json: str) -> dict[str, Any]:
    _check_plain(ds.info, "Dataset.info")
    return {
        "key": key_json,
        "name": ds.name,
        "classes": list(ds.classes),
        "info": ds.info,
        "train": _split_state(ds.train),
        "test": _split_state(ds.test),
    }


def _from_state(state: dict[str, Any]) -> Dataset:
    return Dataset(
        name=state["name"],
        train=Split(**state["train"]),
        test=Split(**state["test"]),
        classes=list(state["classes"]),
        info=state["info"],
    )


def cached(kind: str, key: dict, build: Callable[[], Dataset]) -> Dataset:
    """Load the dataset for (kind, key) from the cache, or ``build()`` it and cache it.

    ``key`` must hold everything that changes the result (parameters, seed, generator
    version, a fingerprint of the source files). A cache file that cannot be read, or
    whose stored key differs, is rebuilt with a warning; it is never fatal. Tensors come
    back on the CPU.
    """
    key_json = _key_json(kind, key)
    path = cache_path(kind, key)
    if path.exists():
        try:
            state = load_tensors(path)
            if not isinstance(state, dict) or state.get("key") != key_json:
                raise UnreadableFile(f"{path.name} was written for other data (its stored key differs)")
            return _from_state(state)
        except Exception as e:  # noqa: BLE001 - corrupt, truncated or foreign file: rebuild
            why = str(e) if isinstance(e, UnreadableFile) else f"{path.name} does not hold a cached dataset"
            logger.warning(f"rebuilding cache file {path}: {why}")
    ds = build()
    try:
        atomic_torch_save(path, _to_state(ds, key_json))  # readers never see half a file
    except OSError as e:  # a read-only or full disk must not stop the run
        logger.warning(f"could not write cache file {path} ({e})")
    return ds
