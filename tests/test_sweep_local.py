"""The local executor: a detached supervisor running at most N worker processes.

Real processes (each imports torch), so these tests take tens of seconds: marked slow.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from augbench import rundir as rec
from augbench.rundir import ATTEMPTS
from augbench.sweep import collect_status, launch_sweep, parse_grid, wait_for
from augbench.sweep.launch import cancel
from augbench.sweep.process import pid_alive
from augbench.sweeproot import read_manifest, run_dir
from augbench.train.checkpoint import checkpoint_position

pytestmark = pytest.mark.slow

TINY = {"data.n_train": 64, "data.n_test": 32, "train.epochs": 1, "train.batch_size": 16, "eval.tta_views": 2}


def quiet(msg: str) -> None:
    pass


def grid_of(runs: list[dict[str, Any]], **settings: Any) -> Any:
    return parse_grid({"benchmark": "glyphs-rotation", "settings": {**TINY, **settings}, "runs": runs}, "local")


def wait_until(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.3)


def events(root: Path, kind: str) -> list[dict[str, Any]]:
    return [e for e in read_manifest(root).events if e["event"] == kind]


def metrics_by_split(directory: Path) -> list[tuple[str, int, int, dict[str, Any]]]:
    res = rec.read_records(directory / rec.RECORDS)
    assert not res.problems, res.problems
    return [(r["split"], r["epoch"], r["step"], r["metrics"]) for r in res.records]


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers compute like this process (1 thread), so their numbers match in-process references."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def test_local_launch_returns_at_once_and_runs_at_most_n_at_a_time(tmp_path: Path) -> None:
    root = tmp_path / "sweep"
    grid = grid_of([{"method": "none"}, {"method": "random-rotation", "hparams": {"max_angle": [20.0, 40.0]}}])
    rep = launch_sweep(grid, root, executor="local", max_parallel=2, log=quiet)
    assert len(rep.submitted) == 3 and rep.final is None
    assert {r.state for r in collect_status(root).runs} <= {"pending", "running"}  # did not block
    supervisor = rep.supervisor_pid
    assert pid_alive(supervisor)
    assert {e["supervisor_pid"] for e in events(root, "submit")} == {supervisor}

    final = wait_for(root, [r.run_id for r in rep.runs], log=quiet, poll_seconds=1.0, timeout=240)
    assert [r.state for r in final.runs] == ["done"] * 3, [(r.state, r.detail) for r in final.runs]
    wait_until(lambda: not pid_alive(supervisor), 30, "the supervisor to exit")

    starts = {e["run_id"]: e["time"] for e in events(root, "start")}
    exits = {e["run_id"]: e["time"] for e in events(root, "exit")}
    assert set(starts) == set(exits) == {r.run_id for r in rep.runs}
    assert all(e["rc"] == 0 for e in events(root, "exit"))
    moments = sorted([(t, 1) for t in starts.values()] + [(t, -1) for t in exits.values()])
    level, peak = 0, 0
    for _, step in moments:
        level += step
        peak = max(peak, level)
    assert peak == 2
    for r in rep.runs:
        assert len((run_dir(root, r.run_id) / ATTEMPTS).read_text().splitlines()) == 1
    again = launch_sweep(grid, root, executor="local", max_parallel=2, log=quiet)
    assert again.submitted == [] and again.supervisor_pid is None


def test_killed_worker_resumes_from_its_checkpoint_to_identical_numbers(tmp_path: Path) -> None:
    grid = grid_of([{"method": "random-rotation"}], **{"data.n_train": 384, "train.epochs": 4,
                                                       "run.checkpoint_every_steps": 2})
    ref_root, root = tmp_path / "reference", tmp_path / "sweep"
    rep = launch_sweep(grid, root, executor="local", log=quiet)
    (run,) = rep.runs
    d = run_dir(root, run.run_id)
    wait_until(lambda: (checkpoint_position(d) or {}).get("step", 0) >= 4, 120, "a mid-run checkpoint")
    (start,) = events(root, "start")
    assert pid_alive(start["pid"])
    os.kill(start["pid"], signal.SIGKILL)
    wait_until(lambda: events(root, "exit"), 30, "the supervisor to see its worker die")
    assert events(root, "exit")[0]["rc"] == -signal.SIGKILL
    st = wait_until(lambda: [r for r in collect_status(root).runs if r.state == "stalled"], 30, "a stalled run")
    assert st[0].detail.startswith("interrupted at epoch")

    launch_sweep(grid, ref_root, executor="inline", log=quiet)  # the uninterrupted reference, meanwhile
    rep = launch_sweep(grid, root, executor="local", wait=True, poll_seconds=1.0, log=quiet)
    assert rep.final is not None and rep.final.by_id()[run.run_id].state == "done"
    attempts = [json.loads(line) for line in (d / ATTEMPTS).read_text().splitlines()]
    assert len(attempts) == 2 and attempts[0]["resumed_from"] is None
    steps = rec.read_json(d / rec.STATUS)["metrics"]["steps"]
    assert 0 < attempts[1]["resumed_from"]["step"] < steps  # it really trained after the resume
    ref = run_dir(ref_root, run.run_id)
    assert rec.read_json(d / rec.STATUS)["metrics"] == rec.read_json(ref / rec.STATUS)["metrics"]
    assert metrics_by_split(d) == metrics_by_split(ref)


def test_sigterm_checkpoints_after_the_current_step_then_resumes_to_identical_numbers(tmp_path: Path) -> None:
    """SLURM's SIGTERM (scancel, preemption) is used: the work up to that step is saved, not lost."""
    grid = grid_of([{"method": "random-rotation"}], **{"data.n_train": 384, "train.epochs": 4})
    ref_root, root = tmp_path / "reference", tmp_path / "sweep"
    rep = launch_sweep(grid, root, executor="local", log=quiet)
    (run,) = rep.runs
    d = run_dir(root, run.run_id)
    before = wait_until(lambda: rec.RunDir(d).epochs_done() >= 1 and checkpoint_position(d), 120, "the first epoch")
    (start,) = events(root, "start")
    os.kill(start["pid"], signal.SIGTERM)
    wait_until(lambda: events(root, "exit"), 60, "the worker to stop")
    assert events(root, "exit")[0]["rc"] == 143  # an interruption, not a failure
    saved = checkpoint_position(d)
    assert saved is not None and saved["step"] > before["step"]  # saved when told to stop, not at an epoch end
    assert rec.RunDir(d).status() is None
    launch_sweep(grid, ref_root, executor="inline", log=quiet)
    rep = launch_sweep(grid, root, executor="inline", log=quiet)
    assert rec.read_json(d / rec.STATUS)["metrics"] == rec.read_json(run_dir(ref_root, run.run_id) / rec.STATUS)[
        "metrics"]


def test_relaunch_skips_alive_runs_and_cancel_stops_the_running_and_the_queued_run(tmp_path: Path) -> None:
    root = tmp_path / "sweep"
    grid = grid_of([{"method": "random-rotation", "hparams": {"max_angle": [20.0, 40.0]}}],
                   **{"data.n_train": 384, "train.epochs": 30})
    rep = launch_sweep(grid, root, executor="local", max_parallel=1, log=quiet)
    wait_until(lambda: events(root, "start"), 120, "the first worker to start")
    (start,) = events(root, "start")
    again = launch_sweep(grid, root, executor="local", max_parallel=1, log=quiet)  # one running, one queued
    assert again.submitted == [] and sorted(again.alive) == sorted(r.run_id for r in rep.runs)
    assert sorted(cancel(root, log=quiet)) == sorted(r.run_id for r in rep.runs)
    wait_until(lambda: not pid_alive(rep.supervisor_pid) and not pid_alive(start["pid"]), 30,
               "the supervisor and its worker to stop")
    st = collect_status(root)
    assert [r.state for r in st.runs] == ["cancelled", "cancelled"]
    assert [e["state"] for e in events(root, "end")] == ["interrupted"]  # stopped, not failed
    assert not (run_dir(root, start["run_id"]) / rec.STATUS).exists()
    plan = launch_sweep(grid, root, executor="local", dry_run=True, log=quiet)
    assert len(plan.submitted) == 2  # a relaunch resumes cancelled runs
