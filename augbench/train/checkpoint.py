"""Atomic, safe-to-load checkpoints and the RNG state they must carry for exact resumes."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import torch

from augbench.atomic import atomic_torch_save


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


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """torch.save atomically: a kill -9 mid-write leaves the previous checkpoint intact."""
    atomic_torch_save(path, payload)


def load_checkpoint(path: Path) -> dict[str, Any] | None:
    """The checkpoint, loaded with `weights_only=True` (no pickled code), or None if absent."""
    path = Path(path)
    if not path.exists():
        return None
    return torch.load(path, map_location="cpu", weights_only=True)
