"""Which device a run trains on (`run.device`), one rule for single runs, data-parallel processes and the bench.

    auto       cuda when a GPU is visible, else cpu
    cuda[:N]   that GPU; cpu; mps (a one-line error when this machine lacks it)

With several processes (torchrun, submitit), "auto" and "cuda" mean cuda:LOCAL_RANK, each
process its own GPU. A device never changes a run's identity (`run.device` is not part of it).
"""

from __future__ import annotations

import platform
import re
from pathlib import Path

import torch

from augbench.errors import ConfigError

DEVICE_SPEC = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


def auto_device() -> torch.device:
    """What "auto" means in one process: the GPU when one is visible, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def process_device(name: str, world_size: int = 1, local_rank: int = 0) -> str:
    """`run.device` for this process of `world_size`: with several, "auto"/"cuda" mean cuda:LOCAL_RANK."""
    if world_size <= 1:
        return name
    if name in ("auto", "cuda"):
        return f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    if name != "cpu":
        raise ConfigError(f"run.device {name}: with {world_size} processes use cuda or auto (each process "
                          f"takes the GPU of its LOCAL_RANK) or cpu")
    return name


def resolve_device(name: str) -> torch.device:
    """`run.device` as a torch device; one-line errors for a bad name or a device this machine lacks."""
    if not DEVICE_SPEC.fullmatch(name):
        raise ConfigError(f"run.device {name!r}: expected auto, cpu, cuda, cuda:N or mps")
    if name == "auto":
        return auto_device()
    dev = torch.device(name)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"run.device {name}: no CUDA GPU is visible here (torch.cuda.is_available() is "
                              f"False); use cpu or auto")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"run.device {name}: only {torch.cuda.device_count()} CUDA device(s) here")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"run.device {name}: MPS is not available here; use cpu or auto")
    return dev


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU model (/proc/cpuinfo, else platform.processor()): provenance."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


__all__ = ["DEVICE_SPEC", "auto_device", "device_name", "process_device", "resolve_device"]
