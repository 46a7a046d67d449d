"""The collected table's schema: its fixed columns, their dtypes and meaning, and its version.

`augbench collect` writes one row per run and record (split at a step). Fixed columns, in order:

    identity   benchmark, method, variant, seed, run_id, state, reason, split, step, epoch, time, run_dir
    provenance wall_time, wall_time_source, device, device_name, threads, augbench_version,
               git_commit, git_dirty, source_sha256, fingerprint, python_version, torch_version,
               torchvision_version, numpy_version, cuda_version, cudnn_version, platform,
               cpu_capability, blas, lapack, mkl_version, onednn_version, deterministic,
               cudnn_deterministic, cudnn_benchmark, interop_threads, identity_version, launch_id,
               grid, grid_file, grid_sha256, schema_version

then `set.<name>` (identity settings), `hp.<name>` (every resolved hyperparameter) and the
metrics (one column each, alphabetically; `best_epoch` and `steps` in test rows). Setting,
hyperparameter and metric columns take the dtype their values have (Int64 for integers,
float64, string; lists and dicts as JSON text). `COLUMNS` holds each fixed column's dtype and
description; `augbench collect --schema` prints them.

Versions: 1 had no provenance columns and no `schema_version` (collect before provenance);
2 added them; 3 added the fingerprint of what decides the numbers (`augbench.provenance`: source
hash, numpy, the math libraries, deterministic flags). `read_frame` reads every version (an
older file gets the columns it lacks empty, and says so) and refuses a newer version with one line.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from augbench.errors import DataError

SCHEMA_VERSION = 3

IDENTITY_COLUMNS: dict[str, tuple[str, str]] = {
    "benchmark": ("string", "benchmark name"),
    "method": ("string", "method name"),
    "variant": ("string", "the paper's name for the method's configuration (lrp, input-free, ...), or empty"),
    "seed": ("Int64", "the run's seed"),
    "run_id": ("string", "hash of the run's identity (what determines its result)"),
    "state": ("string", "done, failed, running or stalled"),
    "reason": ("string", "why a failed run failed (one line)"),
    "split": ("string", "train, val or test: the record this row holds (empty: a run without records)"),
    "step": ("Int64", "global training step of the record"),
    "epoch": ("Int64", "epoch of the record"),
    "time": ("float64", "Unix time the record was written"),
    "run_dir": ("string", "the run directory, relative to the collected folder"),
}
PROVENANCE_COLUMNS: dict[str, tuple[str, str]] = {
    "wall_time": ("float64", "seconds the trainer spent on the result (training and evaluation, summed over "
                             "attempts; work lost to an interruption is not counted)"),
    "wall_time_source": ("string", "trainer (its clock, in status.json) or records (last minus first record time, "
                                   "for runs written before the trainer kept time)"),
    "device": ("string", "cpu or cuda: the device the run trained on"),
    "device_name": ("string", "GPU name, or the CPU model"),
    "threads": ("Int64", "torch's CPU threads in the run's process"),
    "augbench_version": ("string", "augbench's version"),
    "git_commit": ("string", "commit of the augbench checkout that ran it (empty outside a checkout)"),
    "git_dirty": ("boolean", "whether the package's source in that checkout differed from the commit (changed or "
                             "untracked files under augbench/)"),
    "source_sha256": ("string", "SHA-256 of the package's source files: the code that ran, in or outside a checkout"),
    "fingerprint": ("string", "hash of what decides the numbers (source, versions, device, math libraries, flags, "
                              "threads): equal fingerprints give bit-identical results"),
    "python_version": ("string", "Python version"),
    "torch_version": ("string", "torch version"),
    "torchvision_version": ("string", "torchvision version"),
    "numpy_version": ("string", "numpy version"),
    "cuda_version": ("string", "CUDA version torch was built with (empty: a CPU build)"),
    "cudnn_version": ("Int64", "cuDNN version of a GPU run (empty on CPU)"),
    "platform": ("string", "operating system (platform.platform())"),
    "cpu_capability": ("string", "the CPU instruction set torch's kernels dispatched to (AVX2, AVX512, ...)"),
    "blas": ("string", "the BLAS torch was built with"),
    "lapack": ("string", "the LAPACK torch was built with"),
    "mkl_version": ("string", "MKL version torch carries (empty: none)"),
    "onednn_version": ("string", "oneDNN (MKL-DNN) version torch carries (empty: none)"),
    "deterministic": ("boolean", "torch.use_deterministic_algorithms was on"),
    "cudnn_deterministic": ("boolean", "cuDNN deterministic flag of a GPU run"),
    "cudnn_benchmark": ("boolean", "cuDNN benchmark flag of a GPU run"),
    "interop_threads": ("Int64", "torch's inter-op threads"),
    "identity_version": ("Int64", "version of the run-identity rules the run id was computed under"),
    "launch_id": ("string", "the sweep launch that last submitted the run (empty: not launched by a sweep)"),
    "grid": ("string", "that launch's grid name"),
    "grid_file": ("string", "the grid file as given to the launch"),
    "grid_sha256": ("string", "SHA-256 of the grid file's text at launch"),
    "schema_version": ("Int64", f"this table's schema version ({SCHEMA_VERSION})"),
}
COLUMNS: dict[str, tuple[str, str]] = {**IDENTITY_COLUMNS, **PROVENANCE_COLUMNS}
#: Which versions.json keys of config.json fill which provenance columns.
VERSION_KEYS = {"augbench": "augbench_version", "git_commit": "git_commit", "git_dirty": "git_dirty",
                "source_sha256": "source_sha256", "fingerprint": "fingerprint", "python": "python_version",
                "torch": "torch_version", "torchvision": "torchvision_version", "numpy": "numpy_version",
                "cuda": "cuda_version", "cudnn": "cudnn_version", "platform": "platform",
                "cpu_capability": "cpu_capability", "blas": "blas", "lapack": "lapack", "mkl": "mkl_version",
                "onednn": "onednn_version", "deterministic": "deterministic",
                "cudnn_deterministic": "cudnn_deterministic", "cudnn_benchmark": "cudnn_benchmark",
                "device": "device", "device_name": "device_name", "threads": "threads",
                "interop_threads": "interop_threads"}


def apply_dtypes(frame: pd.DataFrame) -> pd.DataFrame:
    """The documented dtype for every fixed column the frame has (CSV loses them; Parquet keeps them)."""
    out = frame.copy()
    for col, (dtype, _) in COLUMNS.items():
        if col not in out:
            continue
        if dtype == "boolean" and out[col].dtype == object:  # CSV gives "True"/"False" text
            out[col] = out[col].map(lambda v: {"True": True, "False": False}.get(v, v) if isinstance(v, str) else v)
        if dtype == "Int64" and not pd.api.types.is_integer_dtype(out[col]):
            out[col] = pd.to_numeric(out[col])
        out[col] = out[col].astype(dtype)
    return out


def describe() -> str:
    """The fixed columns as a Markdown table (name, dtype, meaning)."""
    lines = [f"Schema version {SCHEMA_VERSION}.", "", "| column | dtype | meaning |", "|---|---|---|"]
    lines += [f"| `{name}` | {dtype} | {text} |" for name, (dtype, text) in COLUMNS.items()]
    return "\n".join(lines) + "\n"


def read_frame(path: Path | str, report: Callable[[str], None] | None = None) -> pd.DataFrame:
    """A table written by `augbench collect` (.parquet or .csv), upgraded to this schema.

    Version 1 files get empty provenance columns (reported in one line); a newer version than
    this augbench knows is refused with a DataError naming both versions.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file (expected a table written by `augbench collect --out`)")
    try:
        frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, low_memory=False)
    except ImportError as exc:
        raise DataError(f"{path}: reading Parquet needs pyarrow ({exc})") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable collected table ({type(exc).__name__}: {exc})".splitlines()[0]) \
            from None
    missing = [c for c in ("benchmark", "method", "run_id") if c not in frame]
    if missing:
        raise DataError(f"{path}: not a table written by `augbench collect` (no {', '.join(missing)} column)")
    versions = pd.to_numeric(frame["schema_version"], errors="coerce").dropna() if "schema_version" in frame else []
    version = int(max(versions)) if len(versions) else 1
    if version > SCHEMA_VERSION:
        raise DataError(f"{path}: written with collect schema version {version}; this augbench reads versions up to "
                        f"{SCHEMA_VERSION}: upgrade augbench or collect the runs again")
    if version < SCHEMA_VERSION:
        if report is not None:
            report(f"{path}: collect schema version {version}: provenance columns of later versions are empty "
                   "(collect the runs again to fill them)")
        absent = {col: pd.Series(float("nan") if dtype == "float64" else pd.NA, index=frame.index, dtype=dtype)
                   for col, (dtype, _) in PROVENANCE_COLUMNS.items() if col not in frame}
        frame = pd.concat([frame, pd.DataFrame(absent, index=frame.index)], axis=1) if absent else frame
        frame["schema_version"] = SCHEMA_VERSION
    return apply_dtypes(frame)
