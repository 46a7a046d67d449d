"""Atomic file writes: readers (other jobs of a sweep, a resumed run) see no file or a whole one."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def atomic_write(path: Path | str, write: Callable[[IO[bytes]], None]) -> None:
    """Call `write` on a temp file in `path`'s folder, fsync it, then rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_all(fh: IO[bytes], data: bytes) -> None:
    fh.write(data)


def atomic_write_text(path: Path | str, text: str) -> None:
    data = text.encode()
    atomic_write(path, lambda fh: _write_all(fh, data))


def atomic_torch_save(path: Path | str, obj: Any) -> None:
    import torch  # here, so that reading run directories never needs torch

    atomic_write(path, lambda fh: torch.save(obj, fh))


def write_if_changed(path: Path | str, data: bytes | str) -> bool:
    """Write `data` atomically unless the file already holds exactly it; True if it wrote.

    Generated outputs (tables, figures, leaderboards) are committed: regenerating them from the
    same runs must leave the files, and their modification times, untouched.
    """
    path = Path(path)
    blob = data.encode() if isinstance(data, str) else data
    try:
        if path.read_bytes() == blob:
            return False
    except OSError:
        pass
    atomic_write(path, lambda fh: _write_all(fh, blob))
    return True
