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
    assert rundir.run_state(absent, now).state == "absent"
    started = tmp_path / "started"
    started.mkdir()
    (started / rundir.CONFIG).write_text(json.dumps({"run_id": "x", "benchmark": "b", "method": "m"}))
    assert rundir.run_state(started, now).state == "stalled"  # a config alone is not a sign of life
    rundir.touch_heartbeat(started)
    assert rundir.run_state(started, time.time()).state == "running"
    assert rundir.run_state(started, time.time() + rundir.ALIVE_SECONDS + 1).state == "stalled"
    rundir.write_status(started, "failed", reason="ValueError: x")
    assert rundir.run_state(started).state == "failed"
    (started / rundir.STATUS).write_text("{not json")
    st = rundir.run_state(started, time.time() + 3600)
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
    assert rundir.read_status(tmp_path / "run")["metrics"] == done


def test_a_finished_run_whose_config_was_deleted_gets_it_back(tmp_path, tiny):
    cfg = _config(tiny)
    metrics = execute(cfg, tmp_path / "run")
    (tmp_path / "run" / rundir.CONFIG).unlink()
    assert execute(cfg, tmp_path / "run") == metrics
    assert rundir.read_config(tmp_path / "run")["run_id"] == cfg.run_id


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
