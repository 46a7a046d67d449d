#!/usr/bin/env python
"""Chaos trials of resumable runs: kill -9 a run at a random moment, damage what it left, run it
again, and compare the result bit for bit with an uninterrupted run.

    python scripts/chaos.py                              # the full matrix: 3 trials x 7 configurations
    python scripts/chaos.py --trials 5 --seed 7          # more trials, other random moments
    python scripts/chaos.py --configs adaaug,flowinv     # some configurations only
    python scripts/chaos.py --seed 7 --only adaaug:2     # one trial again (the report names it)

Each configuration (a method family at a tiny size, one CPU thread, a checkpoint every step) is
first run once uninterrupted, counting its writes. Each trial then starts the same run into a
fresh directory and kills its process group with SIGKILL at a moment drawn from the trial's
seed: while one chosen write is half done (the N-th write of checkpoint.pt, records.jsonl,
inspect.pt, final_weights.pt, status.json or config.json writes half its bytes and sleeps until
the kill), or at a random time between two writes (up to two mean gaps after the N-th one
completed, so mostly inside a training step). Then, by the same seed, it damages what is left
(or not): truncates checkpoint.pt, tears the last line of records.jsonl, or deletes
config.json. The run is then started again, exactly as the user would, and must
exit 0 and end identical to the uninterrupted run: status.json's metrics, every record but its
timestamp, every tensor of final_weights.pt and inspect.pt.

The half-done writes come from wrapping augbench's writers in the killed process only
(`augbench.atomic.atomic_write`, and `open` as `augbench.rundir` sees it for records.jsonl):
the package has no test-only code, and the re-run is a plain `python -m augbench run`. A small
matrix runs in CI (tests/test_chaos.py, marked `chaos`). Exit status: 0 when every trial is
identical, 1 otherwise.
"""

from __future__ import annotations

import argparse
import atexit
import builtins
import io
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: tiny sizes, one thread, a checkpoint after every step: many checkpoint and record writes to kill inside
COMMON = {"data.n_train": 64, "data.n_test": 24, "train.epochs": 3, "train.batch_size": 16,
          "eval.tta_views": 2, "eval.batch_size": 64, "eval.inspect_samples": 8, "model.width": 0.25,
          "run.checkpoint_every_steps": 1, "run.log_every": 1, "run.threads": 1, "run.progress": False,
          "run.device": "cpu"}

#: configuration -> (benchmark, method, its own --set pairs): every learned method family and random crop
CONFIGS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "instaaug-uniform": ("clutter-crop", "instaaug", {"variant": "uniform"}),
    "instaaug-lrp": ("clutter-crop", "instaaug", {"variant": "lrp"}),
    "adaaug": ("clutter-crop", "adaaug", {}),
    "madaug": ("clutter-crop", "madaug", {}),
    "teachaugment": ("glyphs-rotation", "teachaugment", {}),
    "flowinv": ("glyphs-rotation", "flowinv", {}),
    "random-crop": ("clutter-crop", "random-crop", {}),
}

#: the files whose writes a trial may kill half-way, with how often each is chosen
WRITES = {"checkpoint.pt": 3, "records.jsonl": 3, "inspect.pt": 1, "final_weights.pt": 1, "status.json": 1,
          "config.json": 1}
DAMAGES = ("none", "truncate checkpoint.pt", "tear records.jsonl", "delete config.json")
TIMEOUT = 900.0  # seconds any one process may take


# --------------------------------------------------------------------------------- the killed process
def _pause(fh: Any, data: str | bytes, marker: Path) -> None:
    """Write the first half of `data`, make it durable, tell the parent, and wait for SIGKILL."""
    fh.write(data[: max(1, len(data) // 2)])
    fh.flush()
    os.fsync(fh.fileno())
    marker.write_text(str(os.getpid()))
    while True:
        time.sleep(60)


class _Watched:
    """A records file handle whose write stops half-way (`inside`, see `_pause`) or says when it is done."""

    def __init__(self, fh: Any, marker: Path, inside: bool) -> None:
        self.fh, self.marker, self.inside = fh, marker, inside

    def write(self, data: str) -> int:
        if self.inside:
            _pause(self.fh, data, self.marker)
        return int(self.fh.write(data))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.fh, name)

    def __enter__(self) -> _Watched:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.fh.close()
        self.marker.write_text(str(os.getpid()))  # after the write: the parent's clock starts


def install_hooks(counts_file: Path, target: tuple[str, int] | None = None, marker: Path | None = None,
                  inside: bool = True) -> None:
    """Count this process's writes per file name (saved at exit). The `target` (name, n)-th write stops
    half-way (`inside`) or, once complete, leaves `marker` for the parent."""
    import augbench.atomic as atomic  # the child's own process only: the parent never imports augbench
    import augbench.rundir as rundir

    counts: Counter[str] = Counter()
    atexit.register(lambda: counts_file.write_text(json.dumps(counts)))

    def is_target(name: str) -> bool:
        counts[name] += 1
        return target == (name, counts[name])

    atomic_write = atomic.atomic_write

    def counted_atomic_write(path: Path | str, write: Callable[[Any], None], *args: Any, **kwargs: Any) -> None:
        if not is_target(Path(path).name):
            return atomic_write(path, write, *args, **kwargs)
        assert marker is not None
        if not inside:
            atomic_write(path, write, *args, **kwargs)
            marker.write_text(str(os.getpid()))
            return None

        def half(fh: Any) -> None:
            buf = io.BytesIO()
            write(buf)
            _pause(fh, buf.getvalue(), marker)

        return atomic_write(path, half, *args, **kwargs)

    def records_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        fh = builtins.open(file, mode, *args, **kwargs)
        if "a" in mode and Path(file).name == rundir.RECORDS and is_target(rundir.RECORDS):
            assert marker is not None
            return _Watched(fh, marker, inside)
        return fh

    atomic.atomic_write = counted_atomic_write  # type: ignore[assignment]
    rundir.open = records_open  # type: ignore[attr-defined]  # a module global shadows the builtin there only


def child(argv: Sequence[str]) -> int:
    """`chaos.py _child COUNTS [inside|after NAME:N MARKER] -- AUGBENCH-ARGS`: augbench's CLI with the hooks."""
    sep = list(argv).index("--")
    own, args = list(argv[:sep]), list(argv[sep + 1:])
    if len(own) == 4:
        name, _, n = own[2].rpartition(":")
        install_hooks(Path(own[0]), (name, int(n)), Path(own[3]), inside=own[1] == "inside")
    else:
        install_hooks(Path(own[0]))
    from augbench.cli import main  # after the hooks, as a plain `augbench` would start

    return main(args)


# --------------------------------------------------------------------------------- trials
@dataclass(frozen=True)
class Plan:
    """What one trial does: when it kills the run, and what it damages afterwards."""

    config: str
    trial: int
    kill: str  # "inside" a write, or "after" it
    write: tuple[str, int] = ("checkpoint.pt", 1)  # (file name, n-th write of it)
    delay: float = 0.0  # kill="after": how long after the write, in mean gaps between two writes (0..2)
    damage: str = "none"
    cut: float = 0.5  # how much of the damaged file's tail goes (a fraction)

    def describe(self) -> str:
        name, n = self.write
        when = (f"killed inside write {n} of {name}" if self.kill == "inside"
                else f"killed {self.delay:.2f} gaps after write {n} of {name}")
        return f"{when}, damage: {self.damage}"


@dataclass
class Reference:
    """An uninterrupted run: its directory, how long it trained, and how often it wrote each file."""

    directory: Path
    train_seconds: float
    counts: dict[str, int]

    @property
    def gap(self) -> float:
        """Mean seconds between two of the watched writes."""
        return self.train_seconds / max(1, sum(self.counts.get(n, 0) for n in WRITES))


@dataclass
class Outcome:
    plan: Plan
    killed: bool  # False: the run finished before the moment came
    rerun_rc: int
    differences: list[str] = field(default_factory=list)
    said: list[str] = field(default_factory=list)  # the re-run's warnings

    @property
    def identical(self) -> bool:
        return self.rerun_rc == 0 and not self.differences


def augbench_args(config: str, out: Path) -> list[str]:
    bench, method, own = CONFIGS[config]
    sets = [a for k, v in {**COMMON, **own}.items() for a in ("--set", f"{k}={v}")]
    return ["run", bench, "--method", method, "--out", str(out), *sets]


def _env(work: Path) -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", AUGBENCH_CACHE=str(work / "cache"))
    here = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (here, env.get("PYTHONPATH", "")) if p)
    return env


def _start(args: list[str], work: Path, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=_env(work), start_new_session=True)


def _wait_for(predicate: Callable[[], bool], proc: subprocess.Popen[bytes], timeout: float) -> bool:
    """Poll until `predicate` holds (True) or the process ended first (False)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            return predicate()
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing happened in {timeout:.0f} s")
        time.sleep(0.005)
    return True


def _kill(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the run and anything it started (data loader workers)
    except ProcessLookupError:
        pass
    proc.wait()


def run_reference(config: str, work: Path) -> Reference:
    """The uninterrupted run, through the hooks only to count its writes."""
    out, counts = work / config / "reference", work / config / "reference.counts.json"
    if (out / "status.json").exists() and counts.exists():  # already made in this work folder
        meta = json.loads((work / config / "reference.json").read_text())
        return Reference(out, meta["train_seconds"], json.loads(counts.read_text()))
    out.parent.mkdir(parents=True, exist_ok=True)
    proc = _start([sys.executable, __file__, "_child", str(counts), "--", *augbench_args(config, out)], work,
                  work / config / "reference.log")
    try:
        _wait_for(lambda: (out / "config.json").exists(), proc, TIMEOUT)
        started = time.monotonic()
        if proc.wait(timeout=TIMEOUT) != 0:
            raise RuntimeError(f"{config}: the uninterrupted run failed; see {work / config / 'reference.log'}")
        train_seconds = time.monotonic() - started
    finally:
        _kill(proc)
    (work / config / "reference.json").write_text(json.dumps({"train_seconds": train_seconds}))
    return Reference(out, train_seconds, json.loads(counts.read_text()))


def make_plan(config: str, trial: int, seed: int, ref: Reference) -> Plan:
    """The trial's moment and damage, from (seed, configuration, trial) alone."""
    rng = random.Random(f"{seed}/{config}/{trial}")
    damage, cut = rng.choice(DAMAGES), rng.uniform(0.05, 0.95)
    names = [n for n in WRITES if ref.counts.get(n)]
    name = rng.choices(names, weights=[WRITES[n] for n in names])[0]
    write = (name, rng.randint(1, ref.counts[name]))
    if rng.random() < 0.4:
        return Plan(config, trial, "after", write, delay=rng.uniform(0.0, 2.0), damage=damage, cut=cut)
    return Plan(config, trial, "inside", write, damage=damage, cut=cut)


def damage(run: Path, plan: Plan) -> str:
    """Apply the plan's damage to what the killed run left; what was done, in words."""
    if plan.damage == "truncate checkpoint.pt":
        path = run / "checkpoint.pt"
        if not path.exists():
            return "no checkpoint.pt to truncate"
        size = path.stat().st_size
        keep = int(size * (1 - plan.cut))
        os.truncate(path, keep)
        return f"checkpoint.pt truncated from {size} to {keep} bytes"
    if plan.damage == "tear records.jsonl":
        path = run / "records.jsonl"
        data = path.read_bytes() if path.exists() else b""
        if not data:
            return "no records to tear"
        start = data.rstrip(b"\n").rfind(b"\n") + 1  # the last line
        cut = max(1, int((len(data) - start) * plan.cut))
        os.truncate(path, len(data) - cut)
        return f"records.jsonl's last line lost its last {cut} bytes"
    if plan.damage == "delete config.json":
        path = run / "config.json"
        if not path.exists():
            return "no config.json to delete"
        path.unlink()
        return "config.json deleted"
    return "none"


def run_trial(plan: Plan, ref: Reference, work: Path) -> Outcome:
    """Start, kill as planned, damage, run again, compare with the reference."""
    folder = work / plan.config / f"trial-{plan.trial}"
    run, marker = folder / "run", folder / "paused"
    folder.mkdir(parents=True, exist_ok=True)
    hook = [plan.kill, f"{plan.write[0]}:{plan.write[1]}", str(marker)]
    args = [sys.executable, __file__, "_child", str(folder / "counts.json"), *hook, "--",
            *augbench_args(plan.config, run)]
    proc = _start(args, work, folder / "killed.log")
    try:
        killed = _wait_for(marker.exists, proc, TIMEOUT)
        if killed and plan.kill == "after":
            deadline = time.monotonic() + plan.delay * ref.gap
            while proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.001)
            killed = proc.poll() is None
    finally:
        _kill(proc)  # also when this script is stopped: the run has a session of its own
    done = damage(run, plan)
    again = subprocess.run([sys.executable, "-m", "augbench", *augbench_args(plan.config, run)], env=_env(work),
                           capture_output=True, text=True, timeout=TIMEOUT)
    (folder / "rerun.log").write_text(again.stdout + again.stderr)
    said = [line for line in again.stderr.splitlines() if "warning" in line.lower() or "error" in line.lower()]
    outcome = Outcome(plan, killed, again.returncode, said=[f"damage: {done}", *said])
    if again.returncode == 0:
        outcome.differences = compare(ref.directory, run)
    return outcome


# --------------------------------------------------------------------------------- comparison
def _records(run: Path) -> list[str]:
    lines = (run / "records.jsonl").read_text().splitlines()
    out = []
    for line in lines:
        rec = json.loads(line)
        rec.pop("time", None)
        out.append(json.dumps(rec, sort_keys=True))  # NaN compares equal as text
    return out


def _tensors(path: Path) -> dict[str, Any]:
    import torch  # to compare finished runs only: planning and killing need no torch

    def flat(value: Any, prefix: str = "") -> dict[str, Any]:
        if isinstance(value, dict):
            return {k: v for key, sub in value.items() for k, v in flat(sub, f"{prefix}{key}.").items()}
        return {prefix.rstrip("."): value}

    return flat(torch.load(path, map_location="cpu", weights_only=True)) if path.exists() else {}


def compare(reference: Path, run: Path) -> list[str]:
    """Every difference between two finished runs (empty: bit-identical results)."""
    import torch  # to compare finished runs only

    diffs = []
    ref_status, status = (json.loads((d / "status.json").read_text()) for d in (reference, run))
    if status.get("state") != "done":
        return [f"status is {status.get('state')!r}: {status.get('reason')}"]
    if json.dumps(ref_status["metrics"], sort_keys=True) != json.dumps(status["metrics"], sort_keys=True):
        keys = sorted(k for k in ref_status["metrics"] if ref_status["metrics"].get(k) != status["metrics"].get(k))
        diffs.append(f"status metrics differ: {', '.join(keys) or 'keys'}")
    a, b = _records(reference), _records(run)
    if a != b:
        first = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        diffs.append(f"records differ from line {first + 1} ({len(a)} reference lines, {len(b)} here)")
    for name in ("final_weights.pt", "inspect.pt"):
        x, y = _tensors(reference / name), _tensors(run / name)
        if x.keys() != y.keys():
            diffs.append(f"{name}: entries differ")
            continue
        bad = [k for k in x if not (torch.is_tensor(x[k]) and torch.is_tensor(y[k]) and x[k].dtype == y[k].dtype
                                    and x[k].shape == y[k].shape and torch.equal(x[k], y[k]))
               and not (not torch.is_tensor(x[k]) and x[k] == y[k])]
        if bad:
            diffs.append(f"{name}: {len(bad)} tensors differ, e.g. {bad[0]}")
    return diffs


# --------------------------------------------------------------------------------- the matrix
def run_matrix(configs: Sequence[str], trials: int, seed: int, work: Path, only: Sequence[str] = (),
               plans: Sequence[Plan] = (), say: Callable[[str], None] = print) -> list[Outcome]:
    """Every trial of `configs` (or the given `plans`, or the `only` CONFIG:TRIAL ones); one report line each."""
    refs: dict[str, Reference] = {}
    todo = list(plans)
    if not todo:
        wanted = {tuple(o.rsplit(":", 1)) for o in only}
        for config in configs:
            for t in range(1, trials + 1):
                if not wanted or (config, str(t)) in wanted:
                    todo.append(Plan(config, t, "planned below"))
    outcomes = []
    for plan in todo:
        if plan.config not in refs:
            t0 = time.monotonic()
            refs[plan.config] = run_reference(plan.config, work)
            say(f"{plan.config}: uninterrupted run in {time.monotonic() - t0:.0f} s, writes "
                + ", ".join(f"{n} {refs[plan.config].counts.get(n, 0)}" for n in WRITES))
        ref = refs[plan.config]
        if plan.kill == "planned below":
            plan = make_plan(plan.config, plan.trial, seed, ref)
        outcome = run_trial(plan, ref, work)
        verdict = ("identical" if outcome.identical
                   else f"re-run exited {outcome.rerun_rc}" if outcome.rerun_rc else "; ".join(outcome.differences))
        moment = plan.describe() + ("" if outcome.killed else " (finished before the kill)")
        say(f"{plan.config} trial {plan.trial}: {moment} -> {verdict}")
        for line in outcome.said:
            say(f"    {line}")
        outcomes.append(outcome)
    return outcomes


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["_child"]:
        return child(argv[1:])
    parser = argparse.ArgumentParser(prog="scripts/chaos.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=3, help="trials per configuration (default 3)")
    parser.add_argument("--configs", default=",".join(CONFIGS), help=f"comma list of {', '.join(CONFIGS)}")
    parser.add_argument("--seed", type=int, default=0, help="chooses every trial's moment and damage (default 0)")
    parser.add_argument("--only", action="append", default=[], metavar="CONFIG:TRIAL", help="run only these trials")
    parser.add_argument("--work", help="folder for the runs (default: a new temporary folder, kept)")
    args = parser.parse_args(argv)
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        parser.error(f"unknown configuration {unknown[0]!r}; valid: {', '.join(CONFIGS)}")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind, so each trial's run is killed too
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="augbench-chaos-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"chaos: {len(configs)} configurations x {args.trials} trials, seed {args.seed}, runs in {work}")
    t0 = time.monotonic()
    outcomes = run_matrix(configs, args.trials, args.seed, work, args.only, say=lambda line: print(line, flush=True))
    good = sum(o.identical for o in outcomes)
    print(f"chaos: {good} of {len(outcomes)} trials identical to the uninterrupted run "
          f"({time.monotonic() - t0:.0f} s)")
    return 0 if good == len(outcomes) else 1


if __name__ == "__main__":
    raise SystemExit(main())
