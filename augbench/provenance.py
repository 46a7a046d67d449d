"""What decides a run's numbers, recorded in its config.json so a result can be cited and reproduced.

`versions(device)` is the run's `versions` entry: the commit of the checkout and whether its
package source had uncommitted changes, a SHA-256 of the package's source files (which names
the code even outside a checkout), Python/torch/torchvision/numpy, the device (GPU name or CPU
model, and the CPU instruction set torch dispatches to), the math libraries torch uses (BLAS
and LAPACK from its build, MKL and oneDNN versions, CUDA and cuDNN on a GPU), the
deterministic-algorithm flags and the thread counts. `fingerprint` hashes the numerical part of
that: two runs of the same configuration with the same fingerprint give bit-identical numbers
(the suite's determinism contract); with another fingerprint (another CPU type, another
library) they agree only within the seed spread.

    >>> v = versions("cpu")
    >>> v["fingerprint"] == fingerprint(v)
    True
"""

from __future__ import annotations

import functools
import hashlib
import platform
import re
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

PACKAGE = Path(__file__).resolve().parent
#: Files of the package that decide numbers (code, grids, data tables); caches and build outputs are not.
SOURCE_SUFFIXES = (".py", ".toml", ".csv", ".json", ".j2", ".css", ".js")
#: The `versions` keys the fingerprint hashes: code, software, device and math libraries, threads.
#: (Not the commit or the dirty flag: the source hash covers them; not the platform string, which
#: names a kernel build that does not change a floating-point result.)
NUMERIC_KEYS = ("source_sha256", "python", "torch", "torchvision", "numpy", "device", "device_name", "cpu_capability",
                "blas", "lapack", "mkl", "onednn", "cuda", "cudnn", "deterministic", "cudnn_deterministic",
                "cudnn_benchmark", "threads")
#: The keys that name a machine type (the determinism contract holds within one).
MACHINE_KEYS = ("device", "device_name", "cpu_capability")
DETERMINISM = ("bit-identical for the same code on the same machine type (same fingerprint); elsewhere equal "
               "within the seed spread")


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=PACKAGE, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def git_commit() -> str | None:
    """The commit of the checkout the package runs from (None outside a checkout)."""
    out = _git("rev-parse", "HEAD")
    return out.strip() or None if out is not None else None


def git_dirty() -> bool | None:
    """Whether the package's source differs from that commit: changed or untracked files under the
    package folder (ignored ones, such as caches, do not count; None outside a checkout). Files
    outside the package (results, tests, documents) do not decide numbers and do not count."""
    out = _git("status", "--porcelain", "--untracked-files=normal", "--", ".")
    return bool(out.strip()) if out is not None else None


@functools.lru_cache(maxsize=1)
def source_sha256() -> str:
    """SHA-256 over the package's source files (relative path and bytes, in sorted order)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in PACKAGE.rglob("*") if p.is_file() and p.suffix in SOURCE_SUFFIXES
                       and "__pycache__" not in p.parts):
        digest.update(path.relative_to(PACKAGE).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def math_libraries() -> dict[str, Any]:
    """BLAS and LAPACK from torch's build settings, the MKL and oneDNN versions it carries, and the
    CPU instruction set its kernels dispatch to (None where torch does not say)."""
    import torch  # the CLI imports this module: torch only when recorded

    config = torch.__config__.show()

    def find(pattern: str) -> str | None:
        found = re.search(pattern, config)
        return found.group(1) if found else None

    return {"blas": find(r"BLAS_INFO=([^,\s]+)"), "lapack": find(r"LAPACK_INFO=([^,\s]+)"),
            "mkl": find(r"Math Kernel Library Version ([^\s-]+)") if torch.backends.mkl.is_available() else None,
            "onednn": find(r"MKL-DNN (v[\d.]+)") if torch.backends.mkldnn.is_available() else None,
            "cpu_capability": torch.backends.cpu.get_cpu_capability()}


def versions(device: Any = None) -> dict[str, Any]:
    """Everything recorded about the software and machine of a run on `device` (`auto`/None: CUDA if
    available), with its `fingerprint`."""
    import numpy  # the CLI imports this module: torch only when recorded
    import torch
    import torchvision

    from augbench import __version__
    from augbench.device import auto_device, device_name

    dev = auto_device() if device in (None, "auto") else torch.device(device)
    gpu = dev.type == "cuda"
    out: dict[str, Any] = {
        "python": platform.python_version(), "torch": torch.__version__, "torchvision": torchvision.__version__,
        "numpy": numpy.__version__, "augbench": __version__, "git_commit": git_commit(), "git_dirty": git_dirty(),
        "source_sha256": source_sha256(), "platform": platform.platform(), "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(), "cuda": torch.version.cuda, "device": dev.type,
        "device_name": device_name(dev), **math_libraries(),
        "cudnn": torch.backends.cudnn.version() if gpu and torch.backends.cudnn.is_available() else None,
        "deterministic": torch.are_deterministic_algorithms_enabled(),
        "cudnn_deterministic": bool(torch.backends.cudnn.deterministic) if gpu else None,
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark) if gpu else None,
    }
    out["fingerprint"] = fingerprint(out)
    return out


def fingerprint(versions: Mapping[str, Any]) -> str:
    """A short hash of the `NUMERIC_KEYS` of a `versions` entry: equal fingerprints, identical numbers."""
    blob = repr([(k, versions.get(k)) for k in NUMERIC_KEYS]).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def machine(versions: Mapping[str, Any]) -> str:
    """The machine type of a `versions` entry, for messages: device, model and instruction set."""
    parts = [str(versions.get(k)) for k in MACHINE_KEYS if versions.get(k)]
    return " / ".join(parts) or "unknown machine"
