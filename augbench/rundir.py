"""The run directory: the only database augbench has, and the one module that knows its schema.

    <run>/config.json       resolved config, identity, family, task, variant, versions (written first)
    <run>/records.jsonl     append-only metric records, one JSON object a line
    <run>/checkpoint.pt     latest checkpoint (atomic replace)
    <run>/checkpoint.prev.pt  the one before it (a damaged latest one falls back to it)
    <run>/heartbeat         touched while the run is alive (its mtime is the beat)
    <run>/inspect.pt        per-sample distribution parameters of the first test images, for figures
    <run>/final_weights.pt  the reported model and method weights
    <run>/attempts.jsonl    one line per start by a sweep job (scheduler job id, resumed position, launch)
    <run>/tensorboard/      TensorBoard event files of the records' scalars (only with run.tensorboard)
    <run>/.lock             held (flock) by the one process that trains the run
    <run>/status.json       written last: {"state": "done", "run_id", "metrics": ...} or
                            {"state": "failed", "run_id", "reason": ..., "traceback": ...}

A record line: {"run_id", "benchmark", "method", "seed", "step", "epoch", "split", "time", "metrics"}.
Readers tolerate a truncated last line (a killed writer) and report it instead of failing.

`RunDir` owns one directory: its files, its `RunState`, whose run it holds (`claims`: every file
that names a run id), whether it holds a finished run of a given config (`finished`), the failure
record, the heartbeat, the lock, records and attempts. Run state has one vocabulary (`RunState`):
from the directory alone, done / failed (status.json), running (no status, a write within
`ALIVE_SECONDS`), stalled (no status, nothing recent: killed, preempted, crashed without a
traceback) or absent. A sweep adds what only its manifest and scheduler know: pending
(submitted, not started) and cancelled.

This module imports neither torch, pandas nor any registry, so light commands (`sweep status`,
`collect`) stay fast: `augbench.runs.resolve` writes into config.json what readers need.
"""

from __future__ import annotations

import enum
import fcntl
import hashlib
import json
import os
import socket
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from augbench.atomic import atomic_write_text
from augbench.errors import ConfigError
from augbench.safeload import loads_json

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


class RunState(enum.StrEnum):
    """The one vocabulary of run states (a `str`, so it compares and serialises as its value)."""

    ABSENT = "absent"
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    STALLED = "stalled"
    CANCELLED = "cancelled"


STATES = tuple(RunState)

IDENTITY_VERSION = 2  # bump when a change alters the results of existing configurations (2: paper network,
#                      AdaAug base crop, imagenet-tta phi lr and prior, new declared settings)


# --------------------------------------------------------------------------------- config
class _Spec(Protocol):
    """What `RunConfig.of` needs of a benchmark's or method's declared parameters (`augbench.hparams.Spec`)."""

    def identity_items(self, resolved: Mapping[str, Any]) -> dict[str, Any]: ...


@dataclass(frozen=True)
class RunConfig:
    """A fully resolved, validated run: (benchmark, method, settings, hyperparameters, seed).

    `augbench.runs.resolve` builds it (through `of`) with what readers of a run directory need and
    must not compute from the registries: which settings and hyperparameters make up the
    identity, the benchmark's family and task, and the method's variant name.
    """

    benchmark: str
    method: str
    seed: int
    settings: dict[str, Any] = field(default_factory=dict)
    hparams: dict[str, Any] = field(default_factory=dict)
    task: str = ""  # '' = the benchmark's task; set by prerequisite runs (e.g. pretraining a classifier)
    family: str = ""  # the benchmark's transformation family
    benchmark_task: str = ""  # the benchmark's own task
    variant: str = ""  # the method's name for this configuration (`AugmentationMethod.variant_name`)
    identity_keys: tuple[tuple[str, ...], tuple[str, ...]] | None = None  # (settings, hparams) in the identity

    @classmethod
    def of(cls, benchmark: str, method: str, seed: int, settings: dict[str, Any], hparams: dict[str, Any], *,
           bench_spec: _Spec, method_spec: _Spec, task: str = "", family: str = "", benchmark_task: str = "",
           variant: str = "") -> RunConfig:
        """A config whose identity is fixed now, from the benchmark's and the method's declared parameters."""
        keys = (tuple(bench_spec.identity_items(settings)), tuple(method_spec.identity_items(hparams)))
        return cls(benchmark, method, int(seed), settings, hparams, task, family, benchmark_task, variant, keys)

    @property
    def effective_task(self) -> str:
        return self.task or self.benchmark_task

    def identity(self) -> dict[str, Any]:
        """What determines the result (never paths, devices or cluster settings): the input of `run_id`."""
        if self.identity_keys is None:
            raise ConfigError(f"the config of {self.benchmark} / {self.method} / seed {self.seed} carries no "
                              f"identity (written by an older augbench, or not built by augbench.runs.resolve); "
                              f"relaunch it")
        s_keys, h_keys = self.identity_keys
        ident = {"version": IDENTITY_VERSION, "benchmark": self.benchmark, "method": self.method,
                 "seed": self.seed, "settings": {k: v for k, v in self.settings.items() if k in s_keys},
                 "hparams": {k: v for k, v in self.hparams.items() if k in h_keys}}
        if self.task:
            ident["task"] = self.task
        return ident

    @property
    def run_id(self) -> str:
        blob = json.dumps(self.identity(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def to_json(self) -> dict[str, Any]:
        """The config as JSON (with its identity when it has one): `from_json` rebuilds it."""
        out: dict[str, Any] = {"benchmark": self.benchmark, "method": self.method, "seed": self.seed,
                               "settings": self.settings, "hparams": self.hparams}
        if self.task:
            out["task"] = self.task
        out.update(family=self.family, benchmark_task=self.benchmark_task, variant=self.variant)
        if self.identity_keys is not None:
            out["identity"] = self.identity()
        return out

    @classmethod
    def from_json(cls, entry: dict[str, Any], expect_id: str | None = None) -> RunConfig:
        """Rebuild a resolved config; with `expect_id`, refuse one whose identity changed since."""
        ident = entry.get("identity")
        keys = None
        if isinstance(ident, dict) and isinstance(ident.get("settings"), dict) and isinstance(ident.get("hparams"),
                                                                                              dict):
            keys = (tuple(ident["settings"]), tuple(ident["hparams"]))
        cfg = cls(entry["benchmark"], entry["method"], int(entry["seed"]), dict(entry.get("settings") or {}),
                  dict(entry.get("hparams") or {}), str(entry.get("task") or ""), str(entry.get("family") or ""),
                  str(entry.get("benchmark_task") or ""), str(entry.get("variant") or ""), keys)
        if expect_id is not None and cfg.run_id != expect_id:
            raise ConfigError(f"run {expect_id} now hashes to {cfg.run_id} (augbench changed since it was "
                              f"planned); relaunch it")
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
        value = loads_json(Path(path).read_text())
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


@dataclass
class ReadResult:
    """The readable objects of a JSON-lines file and what could not be read."""

    records: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def read_jsonl(path: Path, required: str, what: str = "line") -> ReadResult:
    """Every JSON object of a JSON-lines file that has the key `required`; bad lines are reported, never fatal.

    The one tolerant reader of records, attempts and sweep manifests: an unreadable line is a
    problem (`<path>:<line>: unreadable <what>, skipped`; a last line without its newline is
    called truncated: a killed writer), and so is an unreadable file.
    """
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
            obj = loads_json(line)
            if not isinstance(obj, dict) or required not in obj:
                raise ValueError(f"not a {what}")
            out.records.append(obj)
        except ValueError:
            torn = i == len(lines) and not text.endswith("\n")
            out.problems.append(f"{path}:{i}: {'truncated last line' if torn else f'unreadable {what}'}, skipped")
    return out


# --------------------------------------------------------------------------------- records
def read_records(path: Path) -> ReadResult:
    """All readable records of a records file; bad lines are reported, never fatal."""
    return read_jsonl(path, "metrics")


class RecordWriter:
    """Appends records; `truncate(offset)` rewinds to a checkpoint so a resume never duplicates."""

    def __init__(self, run_dir: Path, header: dict[str, Any]) -> None:
        self.path = Path(run_dir) / RECORDS
        self.header = header

    def offset(self) -> int:
        """Current size in bytes, stored in checkpoints."""
        return self.path.stat().st_size if self.path.exists() else 0

    def covers(self, offset: int) -> bool:
        """Whether the file holds whole records up to `offset` (a checkpoint's position): resumable from there."""
        if offset == 0:
            return True
        try:
            with open(self.path, "rb") as fh:
                fh.seek(offset - 1)
                return fh.read(1) == b"\n"
        except OSError:
            return False

    def sync(self) -> None:
        """Make the records durable: a checkpoint written after this never points past them (power loss)."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

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


# --------------------------------------------------------------------------------- status
def failure_reason(exc: BaseException) -> str:
    """The one-line reason a failed run records: `Type: first line of the message`."""
    return f"{type(exc).__name__}: {exc}".splitlines()[0]


# --------------------------------------------------------------------------------- liveness
class Heartbeat:
    """Touches `<run>/heartbeat` from a daemon thread until stopped (dies with the process).

    The one writer of the heartbeat: a run's process starts it as soon as it owns the directory
    (dataset loading included), so `status` and relaunches can tell a live run from a dead one.
    """

    def __init__(self, run_dir: RunDir, every: float = HEARTBEAT_SECONDS) -> None:
        self.run_dir, self.every = run_dir, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="augbench-heartbeat", daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.run_dir.touch_heartbeat()
            except OSError:
                pass

    def __enter__(self) -> Heartbeat:
        self.run_dir.touch_heartbeat()
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()


@dataclass(frozen=True)
class Snapshot:
    """What a run directory says about its run at one moment (see the module docstring for the states)."""

    state: RunState
    config: dict[str, Any] | None
    status: dict[str, Any] | None
    age: float  # seconds since the last write
    problems: tuple[str, ...] = ()


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


# --------------------------------------------------------------------------------- the directory
class RunDir:
    """One run directory: its files, its state, whose run it holds, its failure record, heartbeat and lock.

        run = RunDir("runs/0123456789abcdef")
        run.state().state          # RunState.DONE, .RUNNING, ...
        run.finished(cfg.run_id)   # the metrics when it holds a finished run of cfg, else None
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def file(self, name: str) -> Path:
        """The path of one of the directory's files (a name from this module: CONFIG, RECORDS, ...)."""
        return self.path / name

    # ---------------------------------------------------------------- config
    def config(self) -> dict[str, Any] | None:
        """config.json as written by `write_config`, or None when missing, unreadable or not a run's."""
        cfg = read_json(self.file(CONFIG))
        if cfg is None or not all(k in cfg for k in ("run_id", "benchmark", "method")):
            return None
        return cfg

    def write_config(self, config: RunConfig, versions: dict[str, Any]) -> None:
        """config.json: the resolved config with its identity, family, task, variant and the software that ran it."""
        body = config.to_json()
        body.pop("identity", None)
        atomic_write_text(self.file(CONFIG), json.dumps(
            {"run_id": config.run_id, "identity": config.identity(), **body, "versions": versions}, indent=1))

    # ---------------------------------------------------------------- status
    def status(self) -> dict[str, Any] | None:
        return read_json(self.file(STATUS))

    def write_status(self, state: RunState, **fields: Any) -> None:
        """The final status file; written last so its presence means the run ended."""
        atomic_write_text(self.file(STATUS), json.dumps({"state": state, "time": time.time(),
                                                         **to_jsonable(fields)}, indent=1, allow_nan=True))

    def record_failure(self, run_id: str, exc: BaseException) -> None:
        """status.json of a run that failed: the one-line reason and the traceback being handled."""
        self.write_status(RunState.FAILED, run_id=run_id, reason=failure_reason(exc),
                          traceback=traceback.format_exc())

    def clear_status(self) -> None:
        """Remove the status of a failed run that is retried: it must not outlive the retry."""
        self.file(STATUS).unlink(missing_ok=True)

    # ---------------------------------------------------------------- identity
    def claims(self, checkpoint_id: Callable[[Path], str | None] | None = None) -> dict[str, str]:
        """The run id each file that carries one names: config.json, status.json, records.jsonl, the checkpoints.

        Checkpoints need torch to read: the caller that has it passes `checkpoint_id` (path -> id).
        """
        out: dict[str, str] = {}
        for name, body in ((CONFIG, self.config()), (STATUS, self.status())):
            if body is not None and isinstance(body.get("run_id"), str):
                out[name] = body["run_id"]
        first = self.first_record()
        if first is not None:
            out[RECORDS] = first["run_id"]
        for name in (CHECKPOINT, CHECKPOINT_PREVIOUS):
            found = checkpoint_id(self.file(name)) if checkpoint_id is not None and self.file(name).exists() else None
            if found is not None:
                out[name] = found
        return out

    def first_record(self) -> dict[str, Any] | None:
        """The first readable record that names its run (one run writes a records file: no need to read on)."""
        try:
            with open(self.file(RECORDS), "rb") as fh:
                for line in fh:
                    try:
                        rec = loads_json(line)
                    except ValueError:
                        continue
                    if isinstance(rec, dict) and isinstance(rec.get("run_id"), str):
                        return rec
        except OSError:
            pass
        return None

    def foreign_claim(self, run_id: str, checkpoint_id: Callable[[Path], str | None] | None = None) -> str | None:
        """Why this directory holds another run than `run_id` (one line naming it); None: it may be this run's."""
        claims = self.claims(checkpoint_id)
        others = {name: rid for name, rid in claims.items() if rid != run_id}
        if others:
            name, other = next(iter(others.items()))
            head = next((h for h in (self.config(), self.first_record()) if h and h.get("run_id") == other), None)
            what = other if head is None else \
                f"{other}: {head.get('benchmark')} / {head.get('method')} / seed {head.get('seed')}"
            return f"{self.path} holds another run ({what}, named by its {name})"
        status = self.status()
        if status is not None and status.get("state") == RunState.DONE and not claims:
            return f"{self.path} holds a finished run that names no run id (its config.json and records are gone)"
        return None

    def finished(self, run_id: str) -> dict[str, Any] | None:
        """The metrics when this directory holds a finished run of `run_id`, else None.

        Finished: status.json says done. Of `run_id`: no file names another run, and at least one
        names this one (a config.json deleted afterwards is restored by re-running the command).
        """
        status = self.status()
        if status is None or status.get("state") != RunState.DONE or not isinstance(status.get("metrics"), dict):
            return None
        claims = self.claims()
        if not claims or any(rid != run_id for rid in claims.values()):
            return None
        return dict(status["metrics"])

    # ---------------------------------------------------------------- liveness and state
    def touch_heartbeat(self) -> None:
        """Mark the run alive (mtime is the heartbeat)."""
        self.file(HEARTBEAT).touch()

    def heartbeat(self, every: float = HEARTBEAT_SECONDS) -> Heartbeat:
        return Heartbeat(self, every)

    def last_write_age(self, now: float | None = None) -> float:
        """Seconds since a live run last showed itself (heartbeat, records, checkpoint); inf if never."""
        now = time.time() if now is None else now
        latest = None
        for name in (HEARTBEAT, RECORDS, CHECKPOINT):
            try:
                mtime = self.file(name).stat().st_mtime
            except OSError:
                continue
            latest = mtime if latest is None else max(latest, mtime)
        return float("inf") if latest is None else now - latest

    def state(self, now: float | None = None, alive_seconds: float = ALIVE_SECONDS) -> Snapshot:
        """done / failed / running / stalled / absent, from the directory alone.

        An unreadable status is a problem (the run counts as unfinished); an unreadable config is
        `config=None`, which callers report in their own terms.
        """
        problems = []
        config, status = self.config(), self.status()
        if status is None and self.file(STATUS).exists():
            problems.append(f"{self.file(STATUS)}: unreadable, run treated as unfinished")
        age = self.last_write_age(now)
        if status is not None:
            state = RunState(status["state"]) if status.get("state") in STATES else RunState.FAILED
        elif age <= alive_seconds:
            state = RunState.RUNNING
        elif self.file(CONFIG).exists() or self.file(CHECKPOINT).exists():
            state = RunState.STALLED
        else:
            state = RunState.ABSENT
        return Snapshot(state, config, status, age, tuple(problems))

    def lock(self) -> RunLock:
        return RunLock(self.path)

    # ---------------------------------------------------------------- records and attempts
    def records(self) -> ReadResult:
        return read_records(self.file(RECORDS))

    def epochs_done(self, problems: list[str] | None = None) -> int:
        """Epochs with a validation record (bad lines go to `problems`)."""
        res = self.records()
        if problems is not None:
            problems.extend(res.problems)
        epochs = [r["epoch"] for r in res.records if r.get("split") == "val" and isinstance(r.get("epoch"), int)]
        return max(epochs) + 1 if epochs else 0

    def add_attempt(self, attempt: dict[str, Any]) -> None:
        """One line per start of the run by a sweep job: who ran it, from where it resumed, which launch."""
        append_jsonl(self.file(ATTEMPTS), attempt)

    def attempts(self) -> ReadResult:
        return read_jsonl(self.file(ATTEMPTS), "time", "attempt")


def iter_run_dirs(root: Path) -> Iterator[RunDir]:
    """Every run directory below `root`: a folder holding a config.json, or a status.json (its config lost)."""
    found = {p.parent for name in (CONFIG, STATUS) for p in Path(root).rglob(name)}
    for path in sorted(found):
        yield RunDir(path)
