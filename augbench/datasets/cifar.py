"""CIFAR-10 / CIFAR-100 from the python-pickle release, read from a local path.

This is the on-disk format torchvision's ``CIFAR10(download=True)`` leaves behind:
``cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}`` and
``cifar-100-python/{train, test, meta}``. ``root`` may be the folder holding that
directory or the directory itself. Nothing is downloaded.

The pickles are read with a restricted unpickler that only rebuilds numpy arrays and
plain containers, so a tampered file cannot run code. Parsing takes about a second, so
the result is not cached.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from augbench.datasets.base import Dataset, Split
from augbench.errors import ConfigError, DataError

_LAYOUTS: dict[str, dict[str, Any]] = {
    "cifar10": {
        "folder": "cifar-10-batches-py",
        "train": [f"data_batch_{i}" for i in range(1, 6)],
        "test": ["test_batch"],
        "meta": "batches.meta",
        "labels": "labels",
        "names": "label_names",
    },
    "cifar100": {
        "folder": "cifar-100-python",
        "train": ["train"],
        "test": ["test"],
        "meta": "meta",
        "labels": "fine_labels",
        "names": "fine_label_names",
    },
}

# What the official pickles (Python 2, protocol 2) and numpy re-pickles may reference.
_ALLOWED = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if module.startswith("numpy.core"):  # numpy < 2 name of numpy._core
            module = "numpy._core" + module[len("numpy.core") :]
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _load_pickle(path: Path, which: str) -> dict[str, Any]:
    if not path.is_file():
        raise DataError(
            f"{which}: no file {path} (expected the python-pickle release: "
            f"{_LAYOUTS[which]['folder']}/{{{', '.join(_LAYOUTS[which]['train'] + _LAYOUTS[which]['test'])}, "
            f"{_LAYOUTS[which]['meta']}}})"
        )
    try:
        with path.open("rb") as f:
            obj = _NumpyOnlyUnpickler(f, encoding="latin1").load()
    except Exception as e:
        raise DataError(f"{which}: cannot read {path} as a CIFAR pickle ({type(e).__name__}: {e})") from None
    if not isinstance(obj, dict):
        raise DataError(f"{which}: {path} does not hold a dict (expected a CIFAR python-pickle batch)")
    return obj


def _read_batches(
    folder: Path, files: list[str], which: str, label_key: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    xs, ys, coarse = [], [], []
    for name in files:
        path = folder / name
        batch = _load_pickle(path, which)
        if "data" not in batch or label_key not in batch:
            raise DataError(
                f"{which}: {path} has no 'data' or '{label_key}' entry (expected a CIFAR python-pickle batch)"
            )
        data = np.asarray(batch["data"], dtype=np.uint8)
        labels = np.asarray(batch[label_key], dtype=np.int64)
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or data.shape[0] != labels.shape[0]:
            raise DataError(
                f"{which}: {path} has data {data.shape} and {labels.shape[0]} labels "
                "(expected (N, 3072) uint8 and N labels)"
            )
        xs.append(torch.from_numpy(data.reshape(-1, 3, 32, 32).copy()))
        ys.append(torch.from_numpy(labels.copy()))
        if "coarse_labels" in batch:
            coarse.append(torch.as_tensor(np.asarray(batch["coarse_labels"], dtype=np.int64)))
    return torch.cat(xs), torch.cat(ys), (torch.cat(coarse) if coarse else None)


def load_cifar(root: str | Path, which: Literal["cifar10", "cifar100"] = "cifar10") -> Dataset:
    """CIFAR-10 (10 classes) or CIFAR-100 (100 fine classes; ``meta["coarse_label"]``
    holds the 20 superclasses) with the official train/test split."""
    if which not in _LAYOUTS:
        raise ConfigError(f"unknown CIFAR variant {which!r} (choose from: {', '.join(_LAYOUTS)})")
    spec = _LAYOUTS[which]
    root = Path(root).expanduser().resolve()
    folder = root if root.name == spec["folder"] else root / spec["folder"]
    if not folder.is_dir():
        raise DataError(
            f"{which}: no folder {spec['folder']} in {root} (expected the python-pickle release, e.g. from torchvision)"
        )
    meta = _load_pickle(folder / spec["meta"], which)
    if spec["names"] not in meta:
        raise DataError(f"{which}: {folder / spec['meta']} has no '{spec['names']}' entry")
    classes = [str(c) for c in meta[spec["names"]]]
    splits = {}
    for part in ("train", "test"):
        x, y, coarse = _read_batches(folder, spec[part], which, spec["labels"])
        if y.numel() and (int(y.min()) < 0 or int(y.max()) >= len(classes)):
            raise DataError(f"{which}: {part} labels outside 0..{len(classes) - 1} in {folder}")
        splits[part] = Split(x, y, {"coarse_label": coarse} if coarse is not None else {})
    info: dict[str, Any] = {"source": str(folder), "label_order": f"{spec['meta']} '{spec['names']}' order"}
    if "coarse_label_names" in meta:
        info["coarse_classes"] = [str(c) for c in meta["coarse_label_names"]]
    return Dataset(name=which, train=splits["train"], test=splits["test"], classes=classes, info=info)
