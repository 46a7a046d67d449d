"""Sweeps on a real SLURM cluster (scripts/slurm/cluster.sh): arrays, requeue, relaunch, cancel.

Skipped unless `sinfo` answers (conftest); CI starts the cluster first:
    bash scripts/slurm/cluster.sh install && eval "$(bash scripts/slurm/cluster.sh start)"
Jobs inherit this process's environment (SLURM_CONF, AUGBENCH_CACHE) through sbatch.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from augbench import rundir as rec
from augbench.cli import main
from augbench.rundir import ATTEMPTS
from augbench.sweep import collect_status, launch_sweep, parse_grid, wait_for
from augbench.sweep.executors import slurm_states
from augbench.sweep.launch import cancel
from augbench.sweeproot import MANIFEST, read_manifest, run_dir
from augbench.train.checkpoint import checkpoint_position

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

TINY = {"data.n_train": 64, "data.n_test": 32, "train.epochs": 1, "train.batch_size": 16, "eval.tta_views": 2}
RESOURCES = {"partition": "debug", "cpus": 1, "time": 15}  # 1 CPU: the job computes like this 1-thread process


def quiet(msg: str) -> None:
    pass


def grid_of(runs: list[dict[str, Any]], **settings: Any) -> Any:
    return parse_grid({"benchmark": "glyphs-rotation", "settings": {**TINY, **settings}, "resources": RESOURCES,
                       "runs": runs}, "slurmtest")


def wait_until(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.5)


def attempts(directory: Path) -> list[dict[str, Any]]:
    path = directory / ATTEMPTS
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def metrics_by_split(directory: Path) -> list[tuple[str, int, int, dict[str, Any]]]:
    res = rec.read_records(directory / rec.RECORDS)
    assert not res.problems, res.problems
    return [(r["split"], r["epoch"], r["step"], r["metrics"]) for r in res.records]


def finish(root: Path, rep: Any, timeout: float = 300) -> Any:
    st = wait_for(root, [r.run_id for r in rep.runs], log=quiet, poll_seconds=2.0, timeout=timeout)
    states = {r.run_id: (r.state, r.detail) for r in st.runs}
    assert all(s == "done" for s, _ in states.values()), states
    return st


def test_grid_through_job_arrays_runs_each_run_once_and_relaunch_submits_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import augbench.sweep.executors as executors_mod

    monkeypatch.setattr(executors_mod, "max_array_size", lambda default=1001: 2)  # 3 runs -> arrays of 2 + 1
    root = tmp_path / "sweep"
    grid = grid_of([{"method": "none"}, {"method": "random-rotation", "hparams": {"max_angle": [20.0, 40.0]}}])
    rep = launch_sweep(grid, root, executor="slurm", max_parallel=2, log=quiet)
    assert len(rep.submitted) == 3 and rep.final is None  # returns without waiting
    arrays = {job.split("_")[0] for job in rep.job_ids.values()}
    assert len(arrays) == 2
    finish(root, rep)

    for run in rep.runs:
        d = run_dir(root, run.run_id)
        (attempt,) = attempts(d)  # exactly one attempt
        assert attempt["job_id"] == rep.job_ids[run.run_id] and attempt["restart"] == 0
        assert attempt["resumed_from"] is None
        records = metrics_by_split(d)
        assert [s for s, *_ in records].count("test") == 1
        assert [(s, e) for s, e, *_ in records if s == "val"] == [("val", 0)]
        metrics = rec.read_json(d / rec.STATUS)["metrics"]
        assert records[-1][3] == metrics
    wait_until(lambda: set(slurm_states(rep.job_ids.values()).values()) == {"COMPLETED"}, 60,
               "sacct to record every array task as COMPLETED")

    manifest = (root / MANIFEST).read_bytes()
    again = launch_sweep(grid, root, executor="slurm", log=quiet)
    assert again.submitted == [] and sorted(again.done) == sorted(rep.job_ids)
    assert (root / MANIFEST).read_bytes() == manifest


def wait_for_progress(directory: Path, attempt: int) -> None:
    """Until the `attempt`-th attempt has started and checkpointed past the step it resumed from."""
    tries = wait_until(lambda: attempts(directory)[attempt - 1:], 300, f"attempt {attempt} to start")
    start = (tries[0].get("resumed_from") or {}).get("step", 0)
    wait_until(lambda: (checkpoint_position(directory) or {}).get("step", 0) > start, 300,
               f"attempt {attempt} to checkpoint past step {start}")


@pytest.mark.parametrize("how", ["requeue", "preempt"])
def test_requeued_run_resumes_from_its_checkpoint_with_the_numbers_of_an_uninterrupted_run(
        tmp_path: Path, how: str) -> None:
    """`scontrol requeue` (twice) kills and restarts the job; preemption (USR2, what submitit's
    `job._interrupt()` sends) makes submitit call `SweepJob.checkpoint()` and requeue it."""
    grid = grid_of([{"method": "random-rotation"}], **{"data.n_train": 384, "train.epochs": 16,
                                                       "run.checkpoint_every_steps": 2})
    root, ref_root = tmp_path / "sweep", tmp_path / "reference"
    rep = launch_sweep(grid, root, executor="slurm", log=quiet)
    (run,) = rep.runs
    job_id = rep.job_ids[run.run_id]
    d = run_dir(root, run.run_id)
    interruptions = 2 if how == "requeue" else 1
    for n in range(interruptions):
        wait_for_progress(d, n + 1)
        cmd = ["scontrol", "requeue", job_id] if how == "requeue" else ["scancel", job_id, "--signal", "USR2"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        if n == 0:
            launch_sweep(grid, ref_root, executor="inline", log=quiet)  # the uninterrupted reference, meanwhile

    finish(root, rep, timeout=600)
    tries = attempts(d)
    assert [a["job_id"] for a in tries] == [job_id] * (interruptions + 1)
    assert (tries[0]["restart"], tries[0]["resumed_from"]) == (0, None)
    steps = rec.read_json(d / rec.STATUS)["metrics"]["steps"]
    for before, after in zip(tries, tries[1:]):  # each attempt resumed where the one before checkpointed
        assert after["restart"] > before["restart"] and 0 < after["resumed_from"]["step"] < steps
        assert after["resumed_from"]["step"] > ((before["resumed_from"] or {}).get("step") or 0)
    ref = run_dir(ref_root, run.run_id)
    assert rec.read_json(d / rec.STATUS)["metrics"] == rec.read_json(ref / rec.STATUS)["metrics"]
    assert metrics_by_split(d) == metrics_by_split(ref)
    ends = [e["state"] for e in read_manifest(root).events if e["event"] == "end"]
    # preemption interrupts Python (SystemExit from submitit's handler); requeue sends SIGTERM before its
    # SIGKILL, on which the job checkpoints after its current step and stops: both leave an "interrupted" end
    assert ends == ["interrupted"] * interruptions + ["done"]
    assert launch_sweep(grid, root, executor="slurm", log=quiet).submitted == []


def test_relaunch_skips_the_running_jobs_and_scancel_shows_cancelled_in_sweep_status(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """One job cancelled by the user's own `scancel`, the other by `augbench sweep cancel`: `augbench
    sweep status` says cancelled for both, and neither is a failure."""
    root = tmp_path / "sweep"
    grid = grid_of([{"method": "random-rotation", "hparams": {"max_angle": [20.0, 40.0]}}],
                   **{"data.n_train": 384, "train.epochs": 50})
    rep = launch_sweep(grid, root, executor="slurm", max_parallel=2, log=quiet)
    first, second = rep.runs
    wait_until(lambda: all(attempts(run_dir(root, r.run_id)) for r in rep.runs), 180, "both jobs to start")
    assert {r.state for r in collect_status(root).runs} == {"running"}
    again = launch_sweep(grid, root, executor="slurm", log=quiet)  # the scheduler says they run
    assert again.submitted == [] and sorted(again.alive) == sorted(r.run_id for r in rep.runs)

    by_user = rep.job_ids[first.run_id]
    assert subprocess.run(["scancel", by_user], capture_output=True).returncode == 0
    wait_until(lambda: slurm_states([by_user]).get(by_user, "").startswith("CANCELLED"), 90, "SLURM to cancel it")
    states = {r.run_id: r.state for r in collect_status(root).runs}
    assert states == {first.run_id: "cancelled", second.run_id: "running"}

    assert cancel(root, log=quiet) == [second.run_id]
    other = rep.job_ids[second.run_id]
    wait_until(lambda: slurm_states([other]).get(other, "").startswith("CANCELLED"), 90, "SLURM to cancel the job")
    capsys.readouterr()
    assert main(["sweep", "status", str(root)]) == 0
    shown = capsys.readouterr().out
    for r in rep.runs:
        (st,) = [x for x in collect_status(root).runs if x.run_id == r.run_id]
        assert st.state == "cancelled" and st.job_id == rep.job_ids[r.run_id]
        assert not (run_dir(root, r.run_id) / rec.STATUS).exists()  # interrupted, not failed
    lines = {r.run_id: [line for line in shown.splitlines() if line.strip().startswith(r.run_id)] for r in rep.runs}
    assert all(len(found) == 1 and ": cancelled at epoch" in found[0] for found in lines.values()), shown
    assert "\nfailed:" not in shown and "\ncancelled:\n" in shown, shown


def test_retry_failed_reruns_only_the_failed_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root, grid = tmp_path / "sweep", tmp_path / "retry.toml"
    grid.write_text(f"""name = "retry"
benchmark = "glyphs-rotation"
[settings]
{chr(10).join(f'"{k}" = {v}' for k, v in TINY.items())}
[resources]
partition = "debug"
cpus = 1
time = 15
[[runs]]
method = "none"
[[runs]]
method = "random-rotation"
settings = {{ "train.lr" = 1e12 }}
""")  # the second diverges at its first step: failed
    launch = ["sweep", "launch", str(grid), "--executor", "slurm", "--root", str(root)]
    assert main([*launch, "--wait"]) == 1
    st = {r.label: r for r in collect_status(root).runs}
    ok, bad = st["none"], st["random-rotation"]
    assert (ok.state, bad.state) == ("done", "failed") and "TrainingDiverged" in bad.detail
    ok_dir, bad_dir = run_dir(root, ok.run_id), run_dir(root, bad.run_id)
    done_status = (ok_dir / rec.STATUS).read_bytes()
    capsys.readouterr()

    assert main(launch) == 0  # without --retry-failed: nothing to submit, and the failure is named
    out = capsys.readouterr().out
    assert "nothing to submit" in out and "1 failed runs not retried" in out
    assert main([*launch, "--retry-failed", "--wait"]) == 1  # it fails again: the same configuration
    submitted = [e["run_id"] for e in read_manifest(root).events if e["event"] == "submit"]
    assert (submitted.count(ok.run_id), submitted.count(bad.run_id)) == (1, 2)
    assert len(attempts(ok_dir)) == 1 and len(attempts(bad_dir)) == 2
    assert (ok_dir / rec.STATUS).read_bytes() == done_status  # the finished run untouched
