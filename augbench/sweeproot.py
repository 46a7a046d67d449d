"""A sweep root on disk: ROOT/runs/<run_id> (one run directory per identity) and ROOT/manifest.jsonl.

    ROOT/manifest.jsonl          append-only events: launch, submit (run -> job id / pid),
                                 start, end, exit, skip, cancel
    ROOT/runs/<run_id>/          one run directory per identity (augbench.rundir)
    ROOT/grids/<launch>-<name>.toml  the grid file of each launch, as it was
    ROOT/launches/<launch>.json  the runs of a local launch (read by its supervisor)
    ROOT/logs/                   local supervisor and worker logs
    ROOT/slurm/                  submitit's job folders (sbatch scripts, pickles, logs)

Below both `augbench.sweep` (which writes it) and `augbench.results` (which reads the
provenance of sweeps launched before runs recorded it in their own attempts.jsonl), so neither
imports the other. No torch, pandas or registry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from augbench.rundir import read_jsonl

RUNS_DIR = "runs"
MANIFEST = "manifest.jsonl"
GRIDS_DIR = "grids"


def run_dir(root: Path | str, run_id: str) -> Path:
    """A run's directory under a sweep root: by identity, never by name or path of the grid."""
    return Path(root) / RUNS_DIR / run_id


def grid_copy(root: Path | str, launch_id: str, grid_name: str) -> Path:
    """Where a launch keeps the grid file it launched, as it was."""
    return Path(root) / GRIDS_DIR / f"{launch_id}-{grid_name}.toml"


def sweep_root_of(run_path: Path) -> Path | None:
    """The sweep root holding the run directory `run_path` (ROOT/runs/<run_id> next to a manifest), or None."""
    root = run_path.parent.parent
    return root if run_path.parent.name == RUNS_DIR and (root / MANIFEST).is_file() else None


@dataclass
class Manifest:
    """ROOT/manifest.jsonl read tolerantly: events in file order (`_seq`: their position) and the lines it skipped."""

    events: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def submissions(self) -> dict[str, dict[str, Any]]:
        """The latest submit event of each run."""
        out: dict[str, dict[str, Any]] = {}
        for ev in self.events:
            if ev.get("event") == "submit" and "run_id" in ev:
                out[ev["run_id"]] = ev
        return out

    def launches(self) -> dict[Any, dict[str, Any]]:
        """Each launch event by its launch id."""
        return {ev.get("launch_id"): ev for ev in self.events if ev.get("event") == "launch"}


def read_manifest(root: Path | str) -> Manifest:
    """Every readable event of the sweep's manifest, with its position (`_seq`)."""
    res = read_jsonl(Path(root) / MANIFEST, "event", "manifest line")
    for i, ev in enumerate(res.records):
        ev["_seq"] = i
    return Manifest(res.records, res.problems)
