"""A run directory on disk: the only database augbench has.

    <run>/config.json     resolved config, identity, versions (written first)
    <run>/records.jsonl   append-only metric records, one JSON object a line
    <run>/checkpoint.pt   latest checkpoint (atomic replace)
    <run>/heartbeat       touched while the run is alive
    <run>/status.json     written last: {"state": "done", "metrics": ...} or
                          {"state": "failed", "reason": ..., "traceback": ...}

A record line: {"run_id", "benchmark", "method", "seed", "step", "epoch", "split", "metrics"}.
Readers tolerate a truncated last line (a killed writer) and report it instead of failing.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from augbench.atomic import atomic_write_text

CONFIG = "config.json"
RECORDS = "records.jsonl"
CHECKPOINT = "checkpoint.pt"
STATUS = "status.json"
HEARTBEAT = "heartbeat"


def to_jsonable(value: Any) -> Any:
    """Tensors and numpy scalars as plain numbers/lists; NaN/inf kept as JSON's extensions."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    return value


class RecordWriter:
    """Appends records; `truncate(offset)` rewinds to a checkpoint so a resume never duplicates."""

    def __init__(self, run_dir: Path, header: dict[str, Any]) -> None:
        self.path = Path(run_dir) / RECORDS
        self.header = header

    def offset(self) -> int:
        """Current size in bytes, stored in checkpoints."""
        return self.path.stat().st_size if self.path.exists() else 0

    def truncate(self, offset: int) -> None:
        """Drop everything written after `offset` (records of steps that will be replayed)."""
        if self.path.exists():
            with open(self.path, "r+b") as fh:
                fh.truncate(offset)

    def write(self, *, step: int, epoch: int, split: str, metrics: dict[str, Any]) -> None:
        rec = {**self.header, "step": step, "epoch": epoch, "split": split, "time": time.time(),
               "metrics": to_jsonable(metrics)}
        line = json.dumps(rec, allow_nan=True) + "\n"
        with open(self.path, "a") as fh:
            fh.write(line)
            fh.flush()


@dataclass
class ReadResult:
    """Records of one file and what could not be read."""

    records: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def read_records(path: Path) -> ReadResult:
    """All readable records of a records file; bad lines are reported, never fatal."""
    out = ReadResult()
    try:
        text = Path(path).read_text(errors="replace")
    except OSError as exc:
        out.problems.append(f"{path}: unreadable ({exc.strerror})")
        return out
    lines = text.split("\n")
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            if not isinstance(rec, dict) or "metrics" not in rec:
                raise ValueError("not a record")
            out.records.append(rec)
        except ValueError:
            last = i == len(lines) or (i == len(lines) - 1 and lines[-1] == "")
            kind = "truncated last line" if last and not text.endswith("\n") else "unreadable line"
            out.problems.append(f"{path}:{i}: {kind}, skipped")
    return out


def write_status(run_dir: Path, state: str, **fields: Any) -> None:
    """The final status file; written last so its presence means the run ended."""
    atomic_write_text(Path(run_dir) / STATUS, json.dumps({"state": state, "time": time.time(),
                                                          **to_jsonable(fields)}, indent=1, allow_nan=True))


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON file, or None if it is missing or unreadable."""
    try:
        value = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def touch_heartbeat(run_dir: Path) -> None:
    """Mark the run alive (mtime is the heartbeat)."""
    p = Path(run_dir) / HEARTBEAT
    p.touch()


def iter_run_dirs(root: Path) -> Iterator[Path]:
    """Every run directory below `root` (a folder holding a config.json)."""
    for cfg in sorted(Path(root).rglob(CONFIG)):
        yield cfg.parent
