"""Atomic, safe-to-load checkpoints and the RNG state they must carry for exact resumes."""

from __future__ import annotations

import os
import random
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from augbench.atomic import atomic_torch_save
from augbench.errors import DataError
from augbench.rundir import CHECKPOINT, CHECKPOINT_PREVIOUS, RecordWriter
from augbench.torchfile import UnreadableFile, load_tensors


class CorruptCheckpoint(DataError):
    """A checkpoint file that cannot be loaded."""


def rng_state() -> dict[str, Any]:
    """Every RNG a training step may touch (CPU and CUDA torch, Python's `random`)."""
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    # Python's random state as a plain list of ints (weights_only-safe)
    version, internal, gauss = random.getstate()
    state["python"] = [version, list(internal), gauss]
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def save_checkpoint(path: Path, payload: dict[str, Any], previous: Path | None = None) -> None:
    """torch.save atomically: a kill -9 mid-write leaves the previous checkpoint intact.

    With `previous`, the checkpoint being replaced is kept there (two generations), so a
    checkpoint damaged after it was written still leaves one to resume from. It moves there
    only once the new one is whole: while the new one is written, `path` and `previous` stay
    two files (the last two checkpoints), never two names of one file that one damage would hit.
    """
    path = Path(path)

    def keep_current() -> None:
        if previous is None or not path.exists():
            return
        # a second name for the current file, then the new one over it: `path` never disappears
        tmp = previous.with_name(f".{previous.name}.{os.getpid()}.tmp")
        tmp.unlink(missing_ok=True)
        try:
            os.link(path, tmp)
        except OSError:  # no hard links here (some network file systems): copy instead
            shutil.copyfile(path, tmp)
        os.replace(tmp, previous)

    atomic_torch_save(path, payload, before_replace=keep_current)


def load_checkpoint(path: Path) -> dict[str, Any] | None:
    """The checkpoint, loaded with `weights_only=True` (no pickled code), or None if absent.

    A damaged file (truncated, or a payload `weights_only` refuses) raises `CorruptCheckpoint`.
    """
    path = Path(path)
    if not path.exists():
        return None
    try:
        return load_tensors(path)
    except UnreadableFile as exc:  # what is wrong with the file, in augbench's words (never torch's advice)
        raise CorruptCheckpoint(str(exc)) from None


def load_latest(paths: list[Path], warn: Callable[[str], None],
                usable: Callable[[dict[str, Any]], str | None] | None = None) -> dict[str, Any] | None:
    """The first readable checkpoint of `paths` (newest first) that `usable` accepts; one warning line each skipped.

    `usable(ck)` returns why a readable checkpoint cannot be resumed from (None: it can), e.g.
    records that end before the checkpoint's position.
    """
    for i, path in enumerate(paths):
        try:
            ck = load_checkpoint(path)
            why = usable(ck) if ck is not None and usable is not None else None
        except CorruptCheckpoint as exc:
            why = str(exc)
            ck = None
        else:
            if why is not None:
                why = f"{path.name} cannot be resumed: {why}"
        if why is not None:
            rest = [p for p in paths[i + 1:] if p.exists()]
            warn(f"{why}; " + (f"resuming from {rest[0].name}" if rest else "no other checkpoint: restarting "
                                                                           "the run from scratch"))
            continue
        if ck is not None:
            return ck
    return None


def peek_checkpoint(path: Path) -> dict[str, Any] | None:
    """Run id, epoch, step and records position of a checkpoint, read without loading its tensors (mmap).

    None when the file is missing or unreadable (the trainer then falls back and says so).
    """
    if not Path(path).exists():
        return None
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        return {"run_id": ck.get("run_id"), "epoch": int(ck["epoch"]), "step": int(ck["global_step"]),
                "records_offset": int(ck["records_offset"])}
    except Exception:  # noqa: BLE001 - unreadable: the trainer falls back and says so
        return None


def checkpoint_position(run_dir: Path) -> dict[str, int] | None:
    """Epoch and step of the checkpoint a run in `run_dir` will resume from (the trainer's order and rule)."""
    records = RecordWriter(run_dir, {})
    for name in (CHECKPOINT, CHECKPOINT_PREVIOUS):
        peek = peek_checkpoint(Path(run_dir) / name)
        if peek is not None and records.covers(peek["records_offset"]):
            return {"epoch": peek["epoch"], "step": peek["step"]}
    return None


def checkpoint_run_id(path: Path) -> str | None:
    """The run id a checkpoint names (None: unreadable, or written before checkpoints named their run)."""
    peek = peek_checkpoint(path)
    return peek.get("run_id") if peek is not None else None


def remove_stale_temporaries(folder: Path) -> None:
    """Delete `.<name>.*.tmp` files that a write killed half-way left behind."""
    for tmp in Path(folder).glob(".*.tmp"):
        tmp.unlink(missing_ok=True)
