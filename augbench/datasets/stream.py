"""Splits whose images stay on disk: decoded batch by batch by DataLoader workers.

A dataset larger than the memory budget (ImageNet at 224 px is ~190 GB as uint8) cannot be a
`Split` of tensors. `FileSplit` is a `Split` whose `x` is `FileImages`, a stand-in for the uint8
(N, C, H, W) tensor: indexing it decodes those rows, with exactly the decoding of the in-memory
loaders (`decode_stack`: libjpeg/libpng through torchvision.io, then the loader's transform), so
a streamed run sees the same uint8 pixels in the same order and gives the same numbers.

Decoding runs in DataLoader worker processes on the CPU rather than with nvjpeg on the GPU: the
GPU decoder's IDCT and upsampling differ from libjpeg's in the last bits, so its pixels (and every
number after them) would differ from the in-memory path; CPU workers also serve every device.
`FileImages.batches` streams a known list of batches (the trainer's epoch, from any step on);
consecutive slices `x[a:b]`, `x[b:c]`, ... (every evaluation loop) are read ahead the same way.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from augbench.datasets._io import decode_stack
from augbench.datasets.base import Split
from augbench.errors import ConfigError
from augbench.hparams import HParam

PREFETCH = 4  # batches each worker decodes ahead

#: How a file-backed benchmark holds its images. None of it changes a number, so none of it is
#: part of a run's identity.
STREAM_SETTINGS: dict[str, HParam] = {
    "data.stream": HParam("auto", str, choices=("auto", "on", "off"), identity=False,
                          help="decode images batch by batch from their files (on), hold them in memory (off), "
                               "or stream when they exceed data.memory_budget_gb (auto); same numbers either way"),
    "data.memory_budget_gb": HParam(16.0, float, low=0.0, identity=False,
                                    help="auto streaming: the largest decoded dataset (uint8, train + test) held "
                                         "in memory"),
    "data.workers": HParam(None, int, low=0, nullable=True, identity=False,
                           help="decoding processes per training process when streaming (0: in the training "
                                "process; None: its CPUs divided among the processes of the node, at most 8)"),
}


def default_workers() -> int:
    """Decoding processes per training process: the CPUs this process may use, divided among the
    training processes of the node (torchrun's LOCAL_WORLD_SIZE), at most 8."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    per_node = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1))
    return max(1, min(8, cpus // per_node))


def stream_options(s: Mapping[str, Any]) -> dict[str, Any]:
    """`load_imagefolder`'s stream, memory_budget_gb and workers from a benchmark's settings."""
    workers = s.get("data.workers")
    return {"stream": s.get("data.stream", "off"), "memory_budget_gb": s.get("data.memory_budget_gb", 16.0),
            "workers": default_workers() if workers is None else workers}


def should_stream(mode: str, nbytes: int, budget_gb: float) -> bool:
    """`data.stream`: "on", "off", or "auto" (stream when the uint8 images exceed the budget)."""
    if mode not in ("auto", "on", "off"):
        raise ConfigError(f"data.stream {mode!r}: expected auto, on or off")
    return mode == "on" or (mode == "auto" and nbytes > budget_gb * 1e9)


class PathTable:
    """File paths as one byte buffer and offsets: no per-path Python objects, so forked workers
    share it instead of copying it page by page (reference counts touch every object)."""

    def __init__(self, data: np.ndarray, offsets: np.ndarray) -> None:
        self.data, self.offsets = data, offsets

    @classmethod
    def of(cls, paths: Sequence[str | Path]) -> PathTable:
        encoded = [os.fsencode(p) for p in paths]
        offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum([len(e) for e in encoded], out=offsets[1:])
        return cls(np.frombuffer(b"".join(encoded), dtype=np.uint8).copy(), offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> Path:
        return Path(os.fsdecode(self.data[self.offsets[i]:self.offsets[i + 1]].tobytes()))

    def paths(self, rows: Sequence[int]) -> list[Path]:
        return [self[int(i)] for i in rows]

    def take(self, rows: np.ndarray) -> PathTable:
        """The paths of `rows`, in that order (vectorised: ImageNet has 1.28 M of them)."""
        starts, lengths = self.offsets[rows], np.diff(self.offsets)[rows]
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        within = np.arange(offsets[-1]) - np.repeat(offsets[:-1], lengths)
        return PathTable(self.data[np.repeat(starts, lengths) + within], offsets)


def _rows(idx: Any, n: int) -> np.ndarray:
    """Integer row numbers of an index (int, slice, list, integer or boolean tensor)."""
    if isinstance(idx, slice):
        return np.arange(n)[idx]
    if isinstance(idx, Tensor):
        idx = idx.cpu()
        if idx.dtype == torch.bool:
            idx = idx.nonzero().flatten()
        return idx.numpy().astype(np.int64).reshape(-1)
    return np.asarray(idx, dtype=np.int64).reshape(-1)


class _Rows(torch.utils.data.Dataset):
    """What a DataLoader worker holds: the paths and how to decode them; one item is one batch."""

    def __init__(self, paths: PathTable, shape: tuple[int, int, int], transform: Callable[[Tensor], Tensor] | None,
                 name: str) -> None:
        self.paths, self.shape, self.transform, self.name = paths, shape, transform, name

    def decode(self, rows: np.ndarray) -> Tensor:
        """uint8 (len(rows), C, H, W): the in-memory loader's decoding of exactly these files."""
        return decode_stack(self.paths.paths(rows.tolist()), self.name, self.shape[1:], self.transform)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, rows: np.ndarray) -> Tensor:
        return self.decode(rows)


class FileImages:
    """A uint8 (N, C, H, W) image tensor whose rows are files, decoded when indexed.

    Indexing returns a real CPU tensor. `workers` DataLoader processes decode `batches` and
    read-ahead slices; 0 decodes in this process.
    """

    dtype = torch.uint8
    device = torch.device("cpu")

    def __init__(self, paths: PathTable, shape: tuple[int, int, int], transform: Callable[[Tensor], Tensor] | None,
                 name: str, workers: int = 0) -> None:
        self._rows = _Rows(paths, shape, transform, name)
        self.workers = workers
        self.shape = torch.Size((len(paths), *shape))
        self._ahead: tuple[int, int, Iterator[Tensor]] | None = None  # (next start, length, batches)
        self._last: tuple[int, int] | None = None  # the previous slice (start, stop)

    def __len__(self) -> int:
        return self.shape[0]

    def dim(self) -> int:
        return 4

    def subset(self, idx: Any) -> FileImages:
        rows = _rows(idx, len(self))
        return FileImages(self._rows.paths.take(rows), tuple(self.shape[1:]), self._rows.transform,  # type: ignore[arg-type]
                          self._rows.name, self.workers)

    def batches(self, index: Sequence[Any], pin_memory: bool = False) -> Iterator[Tensor]:
        """The images of each entry of `index` (a list of row indices per batch), decoded ahead by workers."""
        rows = [_rows(i, len(self)) for i in index]
        if self.workers == 0 or not rows:
            yield from (self._rows.decode(r) for r in rows)
            return
        loader = DataLoader(self._rows, batch_size=None, sampler=rows, num_workers=min(self.workers, len(rows)),
                            prefetch_factor=PREFETCH, pin_memory=pin_memory,
                            generator=torch.Generator())  # its seed draw must not touch the global RNG
        yield from loader

    def __getitem__(self, idx: Any) -> Tensor:
        if isinstance(idx, int):
            return self._rows.decode(_rows([idx], len(self)))[0]
        if isinstance(idx, slice) and idx.step in (None, 1):
            return self._slice(*idx.indices(len(self))[:2])
        return self._rows.decode(_rows(idx, len(self)))

    def _slice(self, start: int, stop: int) -> Tensor:
        """Consecutive equal slices (an evaluation loop): from the second on, workers read ahead."""
        n, length = len(self), stop - start
        ahead, last = self._ahead, self._last
        self._last, self._ahead = (start, stop), None  # a miss drops the read-ahead (its workers exit)
        if ahead is not None and ahead[0] == start and (ahead[1] == length or stop == n):
            batches = ahead[2]
        elif last is not None and last[1] == start and last[1] - last[0] == length and self.workers:
            index = [range(a, min(a + length, n)) for a in range(start, n, length)]
            batches = self.batches(index, pin_memory=torch.cuda.is_available())
        else:
            return self._rows.decode(np.arange(start, stop))
        out = next(batches)
        if stop < n:
            self._ahead = (stop, length, batches)
        return out


class FileSplit(Split):
    """A `Split` whose images are files (`x` is `FileImages`); labels and meta are tensors."""

    def __init__(self, x: FileImages, y: Tensor, meta: dict[str, Tensor] | None = None) -> None:
        # not the dataclass __init__: its check wants a uint8 tensor, and x only stands in for one
        self.x = cast(Tensor, x)
        self.y = y
        self.meta = dict(meta or {})
        if y.shape != (len(x),) or y.dtype != torch.int64:
            raise ConfigError(f"file split labels must be int64 ({len(x)},), got {y.dtype} {tuple(y.shape)}")

    @property
    def files(self) -> FileImages:
        return cast(FileImages, self.x)

    def subset(self, idx: Tensor) -> FileSplit:
        return FileSplit(self.files.subset(idx), self.y[idx.to(self.y.device)],
                         {k: v[idx.to(v.device)] for k, v in self.meta.items()})

    def to(self, device: torch.device | str) -> FileSplit:
        """Labels and meta on `device`; the images stay files (batches are moved by the caller)."""
        return FileSplit(self.files, self.y.to(device), {k: v.to(device) for k, v in self.meta.items()})


def image_bytes(*splits: Split) -> int:
    """uint8 bytes of the splits' images if they were held in memory."""
    return sum(int(np.prod(s.x.shape)) for s in splits)
