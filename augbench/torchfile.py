"""Files written by `torch.save`, read back with `weights_only=True`, and refused in augbench's words.

torch's own messages describe its loader, not the file: for random bytes or a pickled object it
advises re-running `torch.load` with `weights_only=False`, which would execute whatever the file
holds. A checkpoint, a cache file or a weights file that does not load is described here from
its bytes instead (empty, cut short, not a torch file, damaged, or holding Python objects), and
nothing of torch's message reaches the user.

    load_tensors(Path("runs/x/checkpoint.pt"))
    # UnreadableFile: checkpoint.pt is cut short (a write that did not finish, or a full disk)
"""

from __future__ import annotations

import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from augbench.errors import DataError

ZIP_MAGIC = b"PK\x03\x04"  # torch.save's format since torch 1.6 is a zip archive
PICKLE_MAGIC = b"\x80"  # the PROTO opcode that starts a pickle (torch.save's legacy format)


class UnreadableFile(DataError):
    """A file that `torch.load(weights_only=True)` refused, with what is wrong with it."""


def why_unreadable(path: Path, exc: BaseException) -> str:
    """What is wrong with `path`, which torch.load refused with `exc` (the file's bytes decide, not torch's text)."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(len(ZIP_MAGIC))
    except OSError as err:
        return f"cannot be read ({err.strerror})"
    if size == 0:
        return "is empty (a write that did not finish)"
    refused = isinstance(exc, pickle.UnpicklingError)
    if head.startswith(ZIP_MAGIC):
        if not zipfile.is_zipfile(path):
            return "is cut short (a write that did not finish, or a full disk)"
        if refused:
            return "holds Python objects besides tensors and plain data; refused unread, never run"
        return "is damaged (its archive does not read back)"
    if head.startswith(PICKLE_MAGIC) and refused:
        return "holds Python objects besides tensors and plain data; refused unread, never run"
    return "is not a file torch.save wrote (unknown content)"


def load_tensors(path: Path | str, *, mmap: bool = False) -> Any:
    """`torch.load(path, weights_only=True)` on the CPU; an unreadable file raises UnreadableFile naming why."""
    path = Path(path)
    try:
        with warnings.catch_warnings():  # its notes on pickle protocols in foreign files advise weights_only=False
            warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\._weights_only_unpickler")
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as exc:  # noqa: BLE001 - whatever failed, the file cannot be trusted: say why in our words
        raise UnreadableFile(f"{path.name} {why_unreadable(path, exc)}") from None
