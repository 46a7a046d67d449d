"""The run directory: the only database augbench has, and the one module that knows its schema.

    <run>/config.json       resolved config, identity, versions (written first)
    <run>/records.jsonl     append-only metric records, one JSON object a line
    <run>/checkpoint.pt     latest checkpoint (atomic replace)
    <run>/checkpoint.prev.pt  the one before it (a damaged latest one falls back to it)
    <run>/heartbeat         touched while the run is alive (its mtime is the beat)
    <run>/inspect.pt        per-sample distribution parameters of the first test images, for figures
    <run>/final_weights.pt  the reported model and method weights
    <run>/attempts.jsonl    one line per start by a sweep job (scheduler job id, resumed position)
    <run>/tensorboard/      TensorBoard event files of the records' scalars (only with run.tensorboard)
    <run>/.lock             held (flock) by the one process that trains the run
    <run>/status.json       written last: {"state": "done", "metrics": ...} or
                            {"state": "failed", "reason": ..., "traceback": ...}

A record line: {"run_id", "benchmark", "method", "seed", "step", "epoch", "split", "time", "metrics"}.
Readers tolerate a truncated last line (a killed writer) and report it instead of failing.

Run state has one vocabulary (`STATES`). From the directory alone (`run_state`): done / failed
(status.json), running (no status, a write within `ALIVE_SECONDS`), stalled (no status, nothing
recent: killed, preempted, crashed without a traceback) or absent. A sweep adds what only its
manifest and scheduler know: pending (submitted, not started) and cancelled.

This module imports neither torch nor pandas, so light commands (`sweep status`) stay fast.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from augbench.atomic import atomic_write_text
from augbench.errors import ConfigError

CONFIG = "config.json"
RECORDS = "records.jsonl"
CHECKPOINT = "checkpoint.pt"
CHECKPOINT_PREVIOUS = "checkpoint.prev.pt"
STATUS = "status.json"
HEARTBEAT = "heartbeat"
INSPECT = "inspect.pt"
FINAL_WEIGHTS = "final_weights.pt"
ATTEMPTS = "attempts.jsonl"
TENSORBOARD = "tensorboard"  # event files of the optional TensorBoard writer (run.tensorboard)
LOCK = ".lock"

HEARTBEAT_SECONDS = 30.0  # how often a live run touches its heartbeat
ALIVE_SECONDS = 120.0  # no write for this long (4 missed beats): nothing runs the run any more

STATES = ("absent", "pending", "running", "done", "failed", "stalled", "cancelled")

IDENTITY_VERSION = 2  # bump when a change alters the results of existing configurations (2: paper network,
#                      AdaAug base crop, imagenet-tta phi lr and prior, new declared settings)


# --------------------------------------------------------------------------------- config
@dataclass(frozen=True)
class RunConfig:
    """A fully resolved, validated run: (benchmark, method, settings, hyperparameters, seed)."""

    benchmark: str
    method: str
    seed: int
    settings: dict[str, Any] = field(default_factory=dict)
    hparams: dict[str, Any] = field(default_factory=dict)
    task: str = ""  # '' = the benchmark's task; set by prerequisite runs (e.g. pretraining a classifier)

    def identity(self) -> dict[str, Any]:
        """What determines the result (never paths, devices or cluster settings): the input of `run_id`."""
        # the registries import torch; only computing an identity needs them (not `sweep status`)
        from augbench.methods import get_method
        from augbench.settings import settings_spec

        bench_spec = settings_spec(self.benchmark)
        method_spec = get_method(self.method).spec()
        ident = {"version": IDENTITY_VERSION, "benchmark": self.benchmark, "method": self.method,
                 "seed": self.seed, "settings": bench_spec.identity_items(self.settings),
                 "hparams": method_spec.identity_items(self.hparams)}
        if self.task:
            ident["task"] = self.task
        return ident

    @property
    def run_id(self) -> str:
        blob = json.dumps(self.identity(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def to_json(self) -> dict[str, Any]:
        out = {"benchmark": self.benchmark, "method": self.method, "seed": self.seed,
               "settings": self.settings, "hparams": self.hparams}
        if self.task:
            out["task"] = self.task
        return out

    @classmethod
    def from_json(cls, entry: dict[str, Any], expect_id: str | None = None) -> RunConfig:
        """Rebuild a resolved config; with `expect_id`, refuse one whose identity changed since."""
        cfg = cls(entry["benchmark"], entry["method"], int(entry["seed"]), dict(entry.get("settings") or {}),
                  dict(entry.get("hparams") or {}), str(entry.get("task") or ""))
        if expect_id is not None and cfg.run_id != expect_id:
            raise ConfigError(f"run {expect_id} now hashes to {cfg.run_id} (augbench changed since it was "
                              f"planned); relaunch it")
        return cfg


def write_config(run_dir: Path, config: RunConfig, versions: dict[str, Any]) -> None:
    """config.json: the resolved config with its identity and the software that ran it."""
    atomic_write_text(Path(run_dir) / CONFIG, json.dumps(
        {"run_id": config.run_id, "identity": config.identity(), **config.to_json(), "versions": versions},
        indent=1))


def read_config(run_dir: Path) -> dict[str, Any] | None:
    """config.json as written by `write_config`, or None when missing, unreadable or not a run's."""
    cfg = read_json(Path(run_dir) / CONFIG)
    if cfg is None or not all(k in cfg for k in ("run_id", "benchmark", "method")):
        return None
    return cfg


# --------------------------------------------------------------------------------- JSON files
def to_jsonable(value: Any) -> Any:
    """Tensors and numpy scalars as plain numbers/lists; NaN/inf kept as JSON's extensions."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    return value


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object file, or None if it is missing or unreadable."""
    try:
        value = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON line with a single `write` on an O_APPEND descriptor.

    Writers in several processes (launcher, local supervisor, jobs) share a manifest: one write
    of a short line is atomic on a local file system, so lines never interleave.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(to_jsonable(record), allow_nan=True) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


# --------------------------------------------------------------------------------- records
class RecordWriter:
    """Appends records; `truncate(offset)` rewinds to a checkpoint so a resume never duplicates."""

    def __init__(self, run_dir: Path, header: dict[str, Any]) -> None:
        self.path = Path(run_dir) / RECORDS
        self.header = header

    def offset(self) -> int:
        """Current size in bytes, stored in checkpoints."""
        return self.path.stat().st_size if self.path.exists() else 0

    def truncate(self, offset: int) -> None:
        """Drop everything written after `offset` (records of steps that will be replayed).

        A file shorter than `offset` lost records the checkpoint relies on: refused, never padded.
        """
        size = self.offset()
        if size < offset:
            raise ConfigError(f"{self.path} has {size} bytes but its checkpoint expects {offset}: records were "
                              f"lost; delete {self.path.parent} to rerun it from scratch")
        if size > offset:
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
    path = Path(path)
    if not path.exists():
        return out
    try:
        text = path.read_text(errors="replace")
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


def epochs_done(run_dir: Path, problems: list[str] | None = None) -> int:
    """Epochs with a validation record (bad lines go to `problems`)."""
    res = read_records(Path(run_dir) / RECORDS)
    if problems is not None:
        problems.extend(res.problems)
    epochs = [r["epoch"] for r in res.records if r.get("split") == "val" and isinstance(r.get("epoch"), int)]
    return max(epochs) + 1 if epochs else 0


# --------------------------------------------------------------------------------- status
def failure_reason(exc: BaseException) -> str:
    """The one-line reason a failed run records: `Type: first line of the message`."""
    return f"{type(exc).__name__}: {exc}".splitlines()[0]


def write_status(run_dir: Path, state: str, **fields: Any) -> None:
    """The final status file; written last so its presence means the run ended."""
    atomic_write_text(Path(run_dir) / STATUS, json.dumps({"state": state, "time": time.time(),
                                                          **to_jsonable(fields)}, indent=1, allow_nan=True))


def read_status(run_dir: Path) -> dict[str, Any] | None:
    return read_json(Path(run_dir) / STATUS)


def is_done(status: dict[str, Any] | None) -> bool:
    """Whether a status (from `read_status`) is a finished run's."""
    return status is not None and status.get("state") == "done"


def clear_status(run_dir: Path) -> None:
    """Remove the status of a failed run that is retried: it must not outlive the retry."""
    (Path(run_dir) / STATUS).unlink(missing_ok=True)


# --------------------------------------------------------------------------------- liveness
def touch_heartbeat(run_dir: Path) -> None:
    """Mark the run alive (mtime is the heartbeat)."""
    (Path(run_dir) / HEARTBEAT).touch()


def last_write_age(run_dir: Path, now: float | None = None) -> float:
    """Seconds since a live run last showed itself (heartbeat, records, checkpoint); inf if never.

    The run's process touches the heartbeat as soon as it starts (`augbench.runs.execute`) and
    every HEARTBEAT_SECONDS while it trains, so a recent mtime means something runs it.
    """
    now = time.time() if now is None else now
    latest = None
    for name in (HEARTBEAT, RECORDS, CHECKPOINT):
        try:
            mtime = (Path(run_dir) / name).stat().st_mtime
        except OSError:
            continue
        latest = mtime if latest is None else max(latest, mtime)
    return float("inf") if latest is None else now - latest


@dataclass(frozen=True)
class RunState:
    """What a run directory says about its run (see the module docstring for the states)."""

    state: str
    config: dict[str, Any] | None
    status: dict[str, Any] | None
    age: float  # seconds since the last write
    problems: tuple[str, ...] = ()


def run_state(run_dir: Path, now: float | None = None, alive_seconds: float = ALIVE_SECONDS) -> RunState:
    """done / failed / running / stalled / absent, from the directory alone.

    An unreadable status is a problem (the run counts as unfinished); an unreadable config is
    `config=None`, which callers report in their own terms.
    """
    run_dir = Path(run_dir)
    problems = []
    config = read_config(run_dir)
    status = read_status(run_dir)
    if status is None and (run_dir / STATUS).exists():
        problems.append(f"{run_dir / STATUS}: unreadable, run treated as unfinished")
    age = last_write_age(run_dir, now)
    if status is not None:
        state = str(status.get("state", "failed"))
    elif age <= alive_seconds:
        state = "running"
    elif (run_dir / CONFIG).exists() or (run_dir / CHECKPOINT).exists():
        state = "stalled"
    else:
        state = "absent"
    return RunState(state, config, status, age, tuple(problems))


def iter_run_dirs(root: Path) -> Iterator[Path]:
    """Every run directory below `root` (a folder holding a config.json)."""
    for cfg in sorted(Path(root).rglob(CONFIG)):
        yield cfg.parent


# --------------------------------------------------------------------------------- the lock
class RunLock:
    """Exclusive `flock` on `<run>/.lock`: one process trains a run, a second one is told who holds it.

    `acquire()` returns False when another process holds the lock (or waits for it, with
    `blocking`); `holder()` then says who (host and pid, written into the lock file by the
    holder). The lock dies with its process.
    """

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / LOCK
        self._fd: int | None = None

    def acquire(self, blocking: bool = False) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "time": time.time()}).encode())
        self._fd = fd
        return True

    def holder(self) -> str:
        """`host:pid` of the holder as it wrote it, or 'another process'."""
        info = read_json(self.path)
        return f"{info.get('host')}:{info.get('pid')}" if info else "another process"

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # releases the flock
            self._fd = None

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()
