"""A sweep root: ROOT/runs/<run_id> (one run directory per identity) and ROOT/manifest.jsonl."""

from __future__ import annotations

from pathlib import Path

RUNS_DIR = "runs"
MANIFEST = "manifest.jsonl"


def run_dir(root: Path | str, run_id: str) -> Path:
    """A run's directory under a sweep root: by identity, never by name or path of the grid."""
    return Path(root) / RUNS_DIR / run_id
