"""The run directory (augbench.rundir) and what `execute` guarantees about it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
import torch

from augbench import rundir
from augbench.errors import ConfigError
from augbench.rundir import RecordWriter, RunConfig, RunLock
from augbench.runs import RunBusy, execute, resolve


def _config(tiny, **extra):
    return resolve("glyphs-rotation", "random-rotation", 0, {**tiny, **extra})


def test_run_state_has_one_vocabulary(tmp_path):
    now = time.time()
    absent = tmp_path / "absent"
    assert rundir.RunDir(absent).state(now).state == "absent"
    started = tmp_path / "started"
    started.mkdir()
    (started / rundir.CONFIG).write_text(json.dumps({"run_id": "x", "benchmark": "b", "method": "m"}))
    run = rundir.RunDir(started)
    assert run.state(now).state == "stalled"  # a config alone is not a sign of life
    run.touch_heartbeat()
    assert run.state(time.time()).state == "running"
    assert run.state(time.time() + rundir.ALIVE_SECONDS + 1).state == "stalled"
    run.write_status(rundir.RunState.FAILED, reason="ValueError: x")
    assert run.state().state == "failed"
    (started / rundir.STATUS).write_text("{not json")
    st = run.state(time.time() + 3600)
    assert st.state == "stalled" and st.problems == (f"{started / rundir.STATUS}: unreadable, run treated as "
                                                     f"unfinished",)
    assert set(rundir.STATES) >= {"absent", "pending", "running", "done", "failed", "stalled", "cancelled"}


def test_failure_reason_is_one_line():
    assert rundir.failure_reason(ValueError("bad\nsecond line")) == "ValueError: bad"


def test_run_config_round_trips_through_json(tiny):
    cfg = _config(tiny)
    back = RunConfig.from_json(json.loads(json.dumps(cfg.to_json())), expect_id=cfg.run_id)
    assert back == cfg and back.run_id == cfg.run_id
    with pytest.raises(ConfigError, match="now hashes to"):
        RunConfig.from_json(cfg.to_json(), expect_id="0" * 16)
    assert RunConfig(cfg.benchmark, "none", 0, cfg.settings, {}, task="classification").to_json()["task"] \
        == "classification"


def test_lock_names_its_holder(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from augbench.rundir import RunLock; "
        f"lock = RunLock({str(tmp_path)!r}); assert lock.acquire(); print('held', flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        lock = RunLock(tmp_path)
        assert not lock.acquire()
        assert lock.holder().endswith(f":{holder.pid}")
    finally:
        holder.kill()
        holder.wait()
    assert RunLock(tmp_path).acquire()  # the lock died with its process


def test_a_second_process_on_a_busy_run_is_refused_with_its_holder(tmp_path, tiny):
    cfg = _config(tiny)
    held = RunLock(tmp_path / "run")
    assert held.acquire()
    try:
        with pytest.raises(RunBusy, match=f"being trained by .*:{os.getpid()}"):
            execute(cfg, tmp_path / "run")
    finally:
        held.release()
    assert not (tmp_path / "run" / rundir.RECORDS).exists()


def test_a_finished_run_of_another_identity_is_refused(tmp_path, tiny):
    done = execute(_config(tiny), tmp_path / "run")
    other = resolve("glyphs-rotation", "none", 0, tiny)
    with pytest.raises(ConfigError, match="holds another run .*random-rotation"):
        execute(other, tmp_path / "run")
    assert rundir.RunDir(tmp_path / "run").status()["metrics"] == done


def test_a_finished_run_whose_config_was_deleted_gets_it_back(tmp_path, tiny):
    cfg = _config(tiny)
    metrics = execute(cfg, tmp_path / "run")
    (tmp_path / "run" / rundir.CONFIG).unlink()
    assert execute(cfg, tmp_path / "run") == metrics
    assert rundir.RunDir(tmp_path / "run").config()["run_id"] == cfg.run_id


def test_records_shorter_than_the_checkpoint_are_refused_never_padded(tmp_path):
    w = RecordWriter(tmp_path, {"run_id": "x"})
    w.write(step=1, epoch=0, split="train", metrics={"loss": 1.0})
    size = w.offset()
    w.write(step=2, epoch=0, split="train", metrics={"loss": 0.5})
    w.truncate(size)
    assert w.offset() == size  # longer: rewound
    with pytest.raises(ConfigError, match="records were lost"):
        w.truncate(size + 10)
    assert b"\0" not in w.path.read_bytes() and w.offset() == size


@pytest.mark.parametrize("damage", ["truncate", "hostile"])
def test_a_damaged_checkpoint_resumes_from_the_previous_one(tmp_path, tiny, damage, capfd):
    cfg = _config(tiny, **{"train.epochs": 2})
    reference = execute(cfg, tmp_path / "ref")
    run = tmp_path / "run"
    execute(cfg, run)
    assert (run / rundir.CHECKPOINT_PREVIOUS).exists()
    (run / rundir.STATUS).unlink()  # as if killed after the last checkpoint
    ck = run / rundir.CHECKPOINT
    if damage == "truncate":
        ck.write_bytes(ck.read_bytes()[:100])
    else:  # a pickle that weights_only refuses (it would call os.system on a plain torch.load)
        torch.save({"payload": os.system}, ck)
    (run / ".checkpoint.pt.abc.tmp").write_bytes(b"half-written")
    assert execute(cfg, run) == reference
    err = capfd.readouterr().err
    assert err.count("augbench: warning:") == 1 and "resuming from checkpoint.prev.pt" in err
    assert "Traceback" not in err and not list(run.glob(".*.tmp"))


def test_no_readable_checkpoint_restarts_from_scratch(tmp_path, tiny, capfd):
    cfg = _config(tiny)
    reference = execute(cfg, tmp_path / "ref")
    run = tmp_path / "run"
    execute(cfg, run)
    (run / rundir.STATUS).unlink()
    (run / rundir.CHECKPOINT).write_bytes(b"garbage")
    assert execute(cfg, run) == reference
    assert "no other checkpoint: restarting the run from scratch" in capfd.readouterr().err
    ref_records = [r["split"] for r in rundir.read_records(tmp_path / "ref" / rundir.RECORDS).records]
    assert [r["split"] for r in rundir.read_records(run / rundir.RECORDS).records] == ref_records


# ------------------------------------------------------------------ whose run a directory holds, torn records
def _sets(tiny):
    return [arg for k, v in tiny.items() for arg in ("--set", f"{k}={v}")]


def _strip_times(path):
    return [{k: v for k, v in r.items() if k != "time"} for r in rundir.read_records(path).records]


def test_a_directory_whose_config_was_deleted_is_not_taken_over_by_another_run(tmp_path, tiny, capsys):
    """Identity comes from every file that carries it: status, records, checkpoints, not config.json alone."""
    from augbench.cli import main

    run = tmp_path / "run"
    done = execute(_config(tiny), run)
    (run / rundir.CONFIG).unlink()
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != rundir.LOCK}
    other = resolve("glyphs-rotation", "none", 0, tiny)
    with pytest.raises(ConfigError, match=r"holds another run \(.*named by its"):
        execute(other, run)
    assert main(["run", "glyphs-rotation", "--method", "none", *_sets(tiny), "--out", str(run)]) == 2
    assert "holds another run" in capsys.readouterr().err
    after = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != rundir.LOCK}
    assert after == before and json.loads(after[rundir.STATUS])["metrics"] == done  # nothing written over it

    (run / rundir.STATUS).unlink()  # interrupted, config and records lost: its checkpoints still name it
    (run / rundir.RECORDS).unlink()
    with pytest.raises(ConfigError, match=r"holds another run \(.*named by its checkpoint"):
        execute(other, run)
    assert not (run / rundir.CONFIG).exists() and not (run / rundir.RECORDS).exists()


def test_a_finished_run_without_its_config_is_reported_and_a_rerun_restores_it(tmp_path, tiny, capsys):
    from augbench.cli import main
    from augbench.results.collect import collect

    root = tmp_path / "runs"
    kept, lost = _config(tiny), resolve("glyphs-rotation", "none", 0, tiny)
    execute(kept, root / kept.run_id)
    execute(lost, root / lost.run_id)
    (root / lost.run_id / rundir.CONFIG).unlink()
    problems: list[str] = []
    frame = collect(root, report=problems.append)
    assert set(frame["run_id"]) == {kept.run_id}
    (line,) = [p for p in problems if lost.run_id in p]
    assert f"run {lost.run_id}: glyphs-rotation / none / seed 0" in line and "without config.json" in line
    assert main(["table", str(root), "--table", "auto"]) == 0
    assert f"run {lost.run_id}: glyphs-rotation / none / seed 0" in capsys.readouterr().err

    assert main(["run", "glyphs-rotation", "--method", "none", *_sets(tiny), "--out", str(root / lost.run_id)]) == 0
    assert json.loads((root / lost.run_id / rundir.CONFIG).read_text())["run_id"] == lost.run_id
    assert set(collect(root, report=problems.append)["run_id"]) == {kept.run_id, lost.run_id}


def test_records_are_fsynced_before_the_checkpoint_that_points_at_them(tmp_path, tiny, monkeypatch):
    synced: list[str] = []
    real = os.fsync

    def fsync(fd):
        synced.append(os.path.basename(os.readlink(f"/proc/self/fd/{fd}")))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    execute(_config(tiny, **{"train.epochs": 2}), tmp_path / "run")
    checkpoints = [i for i, name in enumerate(synced) if name.startswith(f".{rundir.CHECKPOINT}.")]
    assert len(checkpoints) == 2
    assert all(synced[i - 1] == rundir.RECORDS for i in checkpoints), synced


def test_a_torn_last_record_resumes_from_the_newest_checkpoint_the_records_cover(tmp_path, tiny, capfd):
    """A power loss tears records.jsonl: the run falls back to checkpoint.prev.pt and ends bit-identical."""
    cfg = _config(tiny, **{"train.epochs": 2})
    reference = execute(cfg, tmp_path / "ref")
    run = tmp_path / "run"
    execute(cfg, run)
    (run / rundir.STATUS).unlink()
    offset = torch.load(run / rundir.CHECKPOINT, weights_only=True)["records_offset"]
    records = run / rundir.RECORDS
    records.write_bytes(records.read_bytes()[:offset - 17])  # 17 bytes of the last record checkpoint.pt counts on
    assert execute(cfg, run) == reference
    err = capfd.readouterr().err
    assert "resuming from checkpoint.prev.pt" in err and "records were lost" not in err
    assert _strip_times(records) == _strip_times(tmp_path / "ref" / rundir.RECORDS)
    got, want = (torch.load(d / rundir.FINAL_WEIGHTS, weights_only=True) for d in (run, tmp_path / "ref"))
    assert all(torch.equal(got[part][k], t) for part in ("model", "method") for k, t in want[part].items())


def test_config_json_records_what_readers_need_and_its_identity_needs_no_registry(tmp_path, tiny):
    cfg = resolve("glyphs-rotation", "instaaug", 0, tiny)
    rundir.RunDir(tmp_path).write_config(cfg, {})
    written = json.loads((tmp_path / rundir.CONFIG).read_text())
    assert (written["family"], written["benchmark_task"], written["variant"]) == ("rotation", "classification",
                                                                                  "uniform")
    code = ("import json, sys; from augbench.rundir import RunConfig; "
            f"cfg = RunConfig.from_json(json.load(open({str(tmp_path / rundir.CONFIG)!r}))); print(cfg.run_id); "
            "print(sorted(m for m in ('torch', 'augbench.methods', 'augbench.benchmarks', 'augbench.tasks') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[:2] == [cfg.run_id, "[]"]
