"""Sweeps without a cluster: grid files, shipped paper grids, inline launches, relaunches, status.

The local executor (processes) is in test_sweep_local.py, the SLURM executor in
test_sweep_slurm.py.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from augbench import rundir as rec
from augbench.cli import main
from augbench.errors import ConfigError
from augbench.rundir import ATTEMPTS
from augbench.sweep import collect_status, launch_sweep, list_grids, load_grid
from augbench.sweep.cli import parse_seeds
from augbench.sweep.grid import Resources, parse_grid, parse_time_minutes
from augbench.sweep.status import format_status
from augbench.sweeproot import MANIFEST, run_dir

TINY_SETTINGS = {"data.n_train": 64, "data.n_test": 32, "train.epochs": 1, "train.batch_size": 16,
                 "eval.tta_views": 2}


def tiny_grid(runs: list[dict[str, Any]], **top: Any) -> dict[str, Any]:
    return {"benchmark": "glyphs-rotation", "seeds": 1, "settings": dict(TINY_SETTINGS), "runs": runs, **top}


def write_toml(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def metrics_by_split(directory: Path) -> list[tuple[str, int, int, dict[str, Any]]]:
    """Every record's (split, epoch, step, metrics): what must match between two runs."""
    res = rec.read_records(directory / rec.RECORDS)
    assert not res.problems, res.problems
    return [(r["split"], r["epoch"], r["step"], r["metrics"]) for r in res.records]


# ------------------------------------------------------------------------------ grid files
def test_parse_time_minutes_accepts_every_slurm_form() -> None:
    assert parse_time_minutes(90) == 90
    assert parse_time_minutes("90") == 90
    assert parse_time_minutes("30:30") == 31  # MM:SS rounds up
    assert parse_time_minutes("02:00:00") == 120
    assert parse_time_minutes("1-00") == 1440
    assert parse_time_minutes("1-02:03") == 1440 + 123
    assert parse_time_minutes("2-00:00:01") == 2 * 1440 + 1
    for bad in ("soon", "0", "1:2:3:4", 0, True):
        with pytest.raises(ConfigError, match="resources.time"):
            parse_time_minutes(bad)


def test_resources_validate_merge_and_map_to_submitit() -> None:
    grid = parse_grid(tiny_grid([{"method": "none"}], resources={
        "partition": "gpu", "time": "01:00:00", "gpus": 1, "extra": {"exclusive": True},
        "glyphs-rotation": {"mem": "8g", "time": 30, "qos": "high"}}), "g")
    res = grid.resources_for("glyphs-rotation")
    assert (res.partition, res.gpus, res.mem, res.time_min, res.qos) == ("gpu", 1, "8G", 30, "high")
    assert grid.resources_for("other").time_min == 60  # the shared table only
    res = res.merged(Resources.parse({"partition": "debug", "cpus": 4}))
    assert res.submitit_parameters() == {
        "slurm_partition": "debug", "gpus_per_node": 1, "cpus_per_task": 4, "slurm_mem": "8G", "timeout_min": 30,
        "slurm_qos": "high", "slurm_additional_parameters": {"exclusive": True}}
    with pytest.raises(ConfigError, match=r"unknown SLURM option 'gpu'; valid: partition, gpus"):
        Resources.parse({"gpu": 1})
    with pytest.raises(ConfigError, match="mem"):
        Resources.parse({"mem": "lots"})


def test_expansion_is_product_times_cases_seed_major_with_variants() -> None:
    grid = parse_grid(tiny_grid([
        {"method": "random-rotation", "hparams": {"max_angle": [10.0, 20.0]},
         "cases": [{"data.seed": 0, "train.lr": 0.1}, {"data.seed": 1, "train.lr": 0.2}]},
        {"method": "none", "settings": {"data.seed": "{seed}"}},
    ], seeds=[3, 5]), "g")
    runs = grid.expand().runs
    assert len(runs) == 2 * 2 * 2 + 2
    assert [r.config.seed for r in runs] == [3] * 5 + [5] * 5  # seed-major: seed 3's table completes first
    first = runs[:4]
    assert [(r.config.hparams["max_angle"], r.config.settings["data.seed"], r.config.settings["train.lr"])
            for r in first] == [(10.0, 0, 0.1), (10.0, 1, 0.2), (20.0, 0, 0.1), (20.0, 1, 0.2)]
    assert first[1].variant == "max_angle=10.0 data.seed=1 train.lr=0.2"
    none_runs = [r for r in runs if r.config.method == "none"]
    assert [r.config.settings["data.seed"] for r in none_runs] == [3, 5]  # "{seed}" follows the run seed
    assert all(r.config.settings["train.epochs"] == 1 for r in runs)  # top-level settings reach every entry
    assert len({r.run_id for r in runs}) == len(runs)


def test_identical_points_run_once() -> None:
    grid = parse_grid(tiny_grid([{"method": "random-rotation", "hparams": {"max_angle": [30.0, 45.0]}},
                                 {"method": "random-rotation"}]), "g")  # the default max_angle is 45
    exp = grid.expand()
    assert len(exp.runs) == 2 and exp.duplicates == 1


def test_command_line_overrides_reach_the_runs_that_declare_them() -> None:
    grid = parse_grid(tiny_grid([{"method": "none"}, {"method": "random-rotation"}]), "g")
    runs = grid.expand({"train.epochs": "2", "max_angle": "10", "method.flip": "true"}).runs
    assert all(r.config.settings["train.epochs"] == 2 for r in runs)
    by_method = {r.config.method: r.config.hparams for r in runs}
    assert by_method == {"none": {"flip": True}, "random-rotation": {"max_angle": 10.0}}
    with pytest.raises(ConfigError, match="no method of grid g declares it; valid: flip, max_angle"):
        grid.expand({"scale_min": "0.2"})
    with pytest.raises(ConfigError, match="unknown setting 'train.epoch'"):
        grid.expand({"train.epoch": "2"})


@pytest.mark.parametrize("data, message", [
    ({"runs": [{"method": "none"}], "benchmark": "glyphs-rotation", "seed": 1}, "unknown key 'seed'; valid: name"),
    ({"benchmark": "glyphs-rotation"}, "no \\[\\[runs\\]\\] entries"),
    ({"benchmark": "glyphs-rotation", "runs": [{"hparams": {}}]}, "'method' .* is required"),
    ({"runs": [{"method": "none"}]}, "no benchmark"),
    ({"benchmark": "glyphs-rotation", "runs": [{"method": "none", "hparams": {"train.epochs": 2}}]},
     "looks like a benchmark setting; put it under settings"),
    ({"benchmark": "glyphs-rotation", "runs": [{"method": "none", "settings": {"flip": True}}]},
     "not a benchmark setting"),
    ({"benchmark": "glyphs-rotation", "runs": [{"method": "none", "hparams": {"flip": []}}]}, "empty list"),
    ({"benchmark": "glyphs-rotation", "seeds": 0, "runs": [{"method": "none"}]}, "at least 1"),
    ({"benchmark": "glyphs-rotation", "runs": [{"method": "random-rotation", "hparams": {"max_angle": [1.0, 2.0]},
                                                "cases": [{"max_angle": 3.0}]}]}, "both in cases and"),
])
def test_structural_mistakes_are_one_line_errors(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        parse_grid(data, "g")
    assert "\n" not in str(info.value)


def test_unregistered_method_fails_expansion_in_one_line_or_is_listed_when_skipping() -> None:
    grid = parse_grid(tiny_grid([{"method": "none"}, {"method": "not-a-method", "label": "Future"}]), "g")
    with pytest.raises(ConfigError, match=r"g: runs\[1\] \(Future\) on glyphs-rotation: unknown method "
                                          r"'not-a-method'; valid: .*none") as info:
        grid.expand()
    assert "\n" not in str(info.value)
    exp = grid.expand(skip_unregistered=True)
    assert [r.config.method for r in exp.runs] == ["none"]
    assert exp.skipped == ["g: runs[1] (Future) on glyphs-rotation: method 'not-a-method' not registered"]


def test_bad_values_name_the_entry() -> None:
    grid = parse_grid(tiny_grid([{"method": "random-rotation", "hparams": {"max_angle": 500.0}}]), "g")
    with pytest.raises(ConfigError, match=r"runs\[0\] .*max_angle: 500.0 is above the maximum 180"):
        grid.expand()


def test_grid_files_by_path_or_shipped_name(tmp_path: Path) -> None:
    path = write_toml(tmp_path / "mine.toml", 'benchmark = "glyphs-rotation"\n[[runs]]\nmethod = "none"\n')
    assert load_grid(path).name == "mine"
    assert load_grid("table1").paper == "Table 1"
    with pytest.raises(ConfigError, match="no grid file 'tabel1'; shipped grids: .*table1"):
        load_grid("tabel1")
    bad = write_toml(tmp_path / "bad.toml", "runs = [\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_grid(bad)


def test_parse_seeds() -> None:
    assert parse_seeds("0-2,7") == [0, 1, 2, 7]
    assert parse_seeds(None) is None
    for bad in ("a", "1,1", ""):
        with pytest.raises(ConfigError):
            parse_seeds(bad)


# ------------------------------------------------------------------------------ shipped grids
SHIPPED = [(name, i) for name in list_grids() for i in range(len(load_grid(name).entries))]


def test_every_paper_table_and_figure_has_a_grid() -> None:
    assert {"table1", "table1_crop_scale", "tableE1", "figureE1", "table2", "table3", "table4", "table5",
            "figure7_random_color", "figure5"} <= set(list_grids())


@pytest.mark.parametrize("name, index", SHIPPED, ids=[f"{n}-runs{i}" for n, i in SHIPPED])
def test_shipped_grid_entry_validates_against_the_registry(name: str, index: int) -> None:
    """Every registered entry resolves (names, hyperparameters, families); others are listed as skips."""
    grid = load_grid(name)
    entry = grid.entries[index]
    exp = dataclasses.replace(grid, entries=(entry,)).expand(skip_unregistered=True)
    if exp.skipped:
        pytest.skip("; ".join(exp.skipped) + " yet")
    assert exp.runs
    for bench in entry.benchmarks:
        assert grid.resources_for(bench).time_min, f"{name}: no SLURM time limit for {bench}"


def _paper_csv() -> list[dict[str, str]]:
    for path in (Path(__file__).resolve().parents[1] / "augbench" / "data" / "paper_results.csv",
                 Path("/work/shared/reference/paper_results.csv")):
        if path.exists():
            with open(path, newline="") as fh:
                return list(csv.DictReader(fh))
    pytest.skip("paper_results.csv not available")


def test_paper_grids_use_the_paper_names_and_settings() -> None:
    rows = _paper_csv()
    benchmarks = {r["benchmark"] for r in rows}
    for name in list_grids():
        grid = load_grid(name)
        if not grid.paper or name == "figure5":
            continue  # not one of the paper's tables, or its embedded glyphs for the Mario-Iggy sprites
        for entry in grid.entries:
            assert set(entry.benchmarks) <= benchmarks, (name, entry.benchmarks)
    # Table E.1: exactly the paper's 15 intervals (with 3.5-4.0 for the misprinted row)
    settings = [dict(kv.split("=") for kv in r["setting"].split(";")) for r in rows if r["table"] == "E.1"]
    paper = {(float(s["hmin"]), float(s["hmax"])) for s in settings}
    grid_e1 = {(c["h_min"], c["h_max"]) for e in load_grid("tableE1").entries for c in e.cases}
    assert grid_e1 == paper and len(grid_e1) == 15
    t1 = load_grid("table1")
    assert all(len(e.seeds) == 10 for e in t1.entries)
    paper_t1 = {(r["method"], r["variant"]) for r in rows if r["table"] == "1" and r["n_runs"] == "10"}
    assert {e.method for e in t1.entries} == {m for m, _ in paper_t1}
    f7 = load_grid("figure7_random_color").expand(skip_unregistered=True)
    if not f7.skipped:
        assert len(f7.runs) == 216
        assert any(r.config.hparams == {"hue": 0.0, "saturation": 0.2, "value": 0.8} for r in f7.runs)
    t4 = load_grid("table4")
    assert dict(t4.entries[0].axes)["data.random_lightings"] == (1, 2, 4, 8)


# ------------------------------------------------------------------------------ inline launches
@pytest.fixture
def grid_two(tmp_path: Path) -> Any:
    return parse_grid(tiny_grid([{"method": "none"}, {"method": "random-rotation", "hparams": {"max_angle": 30.0}}]),
                      "two", None)


def test_inline_sweep_runs_everything_once_and_relaunch_submits_nothing(tmp_path: Path, grid_two: Any) -> None:
    root = tmp_path / "sweep"
    rep = launch_sweep(grid_two, root, executor="inline", log=lambda m: None)
    assert len(rep.submitted) == 2
    assert rep.final is not None and [r.state for r in rep.final.runs] == ["done", "done"]
    for run in rep.runs:
        d = run_dir(root, run.run_id)
        assert rec.read_json(d / rec.STATUS)["state"] == "done"
        assert len((d / ATTEMPTS).read_text().splitlines()) == 1
        splits = [s for s, *_ in metrics_by_split(d)]
        assert splits.count("test") == 1 and splits.count("val") == 1
    manifest = (root / MANIFEST).read_bytes()
    again = launch_sweep(grid_two, root, executor="inline", log=lambda m: None)
    assert again.submitted == [] and sorted(again.done) == sorted(r.run_id for r in rep.runs)
    assert (root / MANIFEST).read_bytes() == manifest  # nothing launched, nothing written
    # the same runs reached from another grid file are found by identity
    other = parse_grid(tiny_grid([{"method": "none"}]), "other")
    assert launch_sweep(other, root, executor="inline", log=lambda m: None).submitted == []


def test_a_run_held_by_another_process_is_not_run_twice(tmp_path: Path, grid_two: Any) -> None:
    import fcntl

    from augbench.rundir import LOCK
    from augbench.sweep.job import SweepJob

    root = tmp_path / "sweep"
    run = grid_two.expand().runs[0]
    d = run_dir(root, run.run_id)
    d.mkdir(parents=True)
    with open(d / LOCK, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # what a live worker holds
        assert SweepJob(root)(run.config) == {"skipped": "already running in another process"}
    assert not (d / rec.CONFIG).exists() and not (d / ATTEMPTS).exists()
    (skip,) = [json.loads(line) for line in (root / MANIFEST).read_text().splitlines()]
    assert skip["event"] == "skip" and skip["run_id"] == run.run_id
    metrics = SweepJob(root)(run.config)  # lock released: runs
    assert SweepJob(root)(run.config) == metrics  # done: returns at once, no new attempt
    assert len((d / ATTEMPTS).read_text().splitlines()) == 1


def test_failed_run_keeps_its_traceback_and_is_retried_only_on_request(tmp_path: Path, grid_two: Any,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from augbench.train.trainer import Trainer

    root = tmp_path / "sweep"
    original = Trainer.fit

    def boom(self: Trainer) -> Any:
        raise RuntimeError("boom in the trainer")

    monkeypatch.setattr(Trainer, "fit", boom)
    launch_sweep(grid_two, root, executor="inline", log=lambda m: None)
    st = collect_status(root)
    assert [r.state for r in st.runs] == ["failed", "failed"]
    assert all(r.detail == "RuntimeError: boom in the trainer" for r in st.runs)
    status = rec.read_json(Path(st.runs[0].run_dir) / rec.STATUS)
    assert "raise RuntimeError" in status["traceback"]
    assert "failed:" in format_status(st) and "traceback:" in format_status(st)

    monkeypatch.setattr(Trainer, "fit", original)
    rep = launch_sweep(grid_two, root, executor="inline", log=lambda m: None)
    assert rep.submitted == [] and len(rep.failed) == 2
    rep = launch_sweep(grid_two, root, executor="inline", retry_failed=True, log=lambda m: None)
    assert len(rep.submitted) == 2
    assert [r.state for r in collect_status(root).runs] == ["done", "done"]


def test_interrupted_run_resumes_to_the_numbers_of_an_uninterrupted_run(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A run killed right after a mid-epoch checkpoint (and mid-way through a record line) resumes exactly."""
    from augbench.train.trainer import Trainer

    grid = parse_grid(tiny_grid([{"method": "random-rotation"}], settings={
        **TINY_SETTINGS, "train.epochs": 3, "data.n_train": 96, "run.checkpoint_every_steps": 2}), "resume")
    ref_root, root = tmp_path / "reference", tmp_path / "sweep"
    launch_sweep(grid, ref_root, executor="inline", log=lambda m: None)

    original, saves = Trainer.save, []

    def save_then_die(self: Trainer) -> None:
        original(self)
        saves.append(self.global_step)
        if len(saves) == 4:  # steps 2, 4 (mid-epoch), 5 (epoch end), 6: dies inside epoch 1
            with open(self.run_dir / rec.RECORDS, "a") as fh:
                fh.write('{"run_id": "torn wri')  # a writer killed mid-line
            raise SystemExit(137)

    monkeypatch.setattr(Trainer, "save", save_then_die)
    with pytest.raises(SystemExit):
        launch_sweep(grid, root, executor="inline", log=lambda m: None)
    monkeypatch.setattr(Trainer, "save", original)
    (run,) = collect_status(root).runs
    assert (run.state, run.detail) == ("stalled", "interrupted at epoch 1/3; a relaunch resumes it")
    assert any("truncated last line" in p for p in run.problems)

    rep = launch_sweep(grid, root, executor="inline", log=lambda m: None)
    assert len(rep.submitted) == 1
    d, ref = run_dir(root, run.run_id), run_dir(ref_root, run.run_id)
    attempts = [json.loads(line) for line in (d / ATTEMPTS).read_text().splitlines()]
    assert [a["resumed_from"] is None for a in attempts] == [True, False]
    assert attempts[1]["resumed_from"]["step"] == saves[-1] > 0
    assert rec.read_json(d / rec.STATUS)["metrics"] == rec.read_json(ref / rec.STATUS)["metrics"]
    assert metrics_by_split(d) == metrics_by_split(ref)


# ------------------------------------------------------------------------------ status from disk
def test_status_reports_damaged_files_and_never_fails(tmp_path: Path, grid_two: Any,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from augbench.cli import main

    root = tmp_path / "sweep"
    rep = launch_sweep(grid_two, root, executor="inline", log=lambda m: None)
    a, b = (run_dir(root, r.run_id) for r in rep.runs)
    with open(a / rec.RECORDS, "a") as fh:
        fh.write('{"truncated": ')
    text = (b / rec.RECORDS).read_text().splitlines()
    (b / rec.RECORDS).write_text("\n".join([text[0], "not json at all", *text[1:]]) + "\n")
    (b / rec.STATUS).write_text("{broken")
    with open(root / MANIFEST, "a") as fh:
        fh.write("garbage line\n")
    junk = root / "runs" / "0123456789abcdef"
    junk.mkdir()
    (junk / rec.CONFIG).write_text("[1, 2")

    st = collect_status(root)
    states = {r.run_id: r.state for r in st.runs}
    assert states[a.name] == "done" and states[b.name] == "stalled" and states[junk.name] == "stalled"
    problems = "\n".join(st.problems)
    assert "truncated last line" in problems and "unreadable line" in problems
    assert f"{b / rec.STATUS}: unreadable" in problems and f"{junk / rec.CONFIG}: unreadable" in problems
    assert "unreadable manifest line" in problems
    assert main(["sweep", "status", str(root)]) == 0
    out = capsys.readouterr().out
    assert "problems (5, skipped, never fatal)" in out
    assert main(["sweep", "status", str(root), "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["runs"]) == 3


def _fake_worker() -> subprocess.Popen[bytes]:
    """A live process whose command line names augbench (what pid checks look for)."""
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "augbench-test"])


def test_status_tells_pending_running_stalled_and_cancelled_apart(tmp_path: Path, grid_two: Any) -> None:
    from augbench.rundir import append_jsonl

    root = tmp_path / "sweep"
    runs = grid_two.expand().runs
    worker = _fake_worker()
    try:
        for r in runs:
            append_jsonl(root / MANIFEST, {"event": "submit", "time": time.time(), "run_id": r.run_id,
                                           "benchmark": "glyphs-rotation", "method": r.config.method, "seed": 0,
                                           "label": r.label, "executor": "local", "host": socket.gethostname(),
                                           "supervisor_pid": worker.pid})
        first, second = (r.run_id for r in runs)
        assert {r.state for r in collect_status(root).runs} == {"pending"}  # the supervisor lives
        d = run_dir(root, first)
        d.mkdir(parents=True)
        rec.RunDir(d).touch_heartbeat()
        append_jsonl(root / MANIFEST, {"event": "start", "time": time.time(), "run_id": first})
        assert collect_status(root).by_id()[first].state == "running"
        (d / rec.CONFIG).write_text(json.dumps({"run_id": first, "benchmark": "glyphs-rotation",
                                                "method": "none", "seed": 0, "settings": {"train.epochs": 4}}))
        old = time.time() - 600
        os.utime(d / rec.HEARTBEAT, (old, old))
        append_jsonl(root / MANIFEST, {"event": "exit", "time": time.time(), "run_id": first, "rc": -9})
        st = collect_status(root).by_id()
        assert (st[first].state, st[first].detail) == ("stalled", "interrupted at epoch 0/4; a relaunch resumes it")
        assert st[second].state == "pending"
    finally:
        worker.kill()
        worker.wait()
    st = collect_status(root).by_id()
    assert st[second].state == "stalled" and st[second].detail.startswith("never started")
    append_jsonl(root / MANIFEST, {"event": "cancel", "time": time.time(), "run_id": second})
    assert collect_status(root).by_id()[second].state == "cancelled"


# ------------------------------------------------------------------------------ slurm submission (faked)
class _FakeJob:
    def __init__(self, job_id: str) -> None:
        self.job_id = job_id


class _FakeExecutor:
    """Stands in for submitit.AutoExecutor: records parameters and array sizes."""

    arrays: list[tuple[dict[str, Any], int]] = []
    next_id = 100

    def __init__(self, folder: Any, cluster: str) -> None:
        assert cluster == "slurm"
        self.params: dict[str, Any] = {}

    def update_parameters(self, **params: Any) -> None:
        self.params.update(params)

    def map_array(self, fn: Any, configs: list[Any]) -> list[_FakeJob]:
        from augbench.sweep.job import SweepJob

        assert isinstance(fn, SweepJob)
        _FakeExecutor.arrays.append((dict(self.params), len(configs)))
        _FakeExecutor.next_id += 1
        return [_FakeJob(f"{_FakeExecutor.next_id}_{i}") for i in range(len(configs))]


def test_slurm_arrays_split_below_max_array_size_one_per_resource_group(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import submitit

    import augbench.sweep.executors as executors_mod
    import augbench.sweep.launch as launch_mod

    monkeypatch.setattr(submitit, "AutoExecutor", _FakeExecutor)
    monkeypatch.setattr(executors_mod, "max_array_size", lambda default=1001: 2)
    monkeypatch.setattr(launch_mod, "collect_status",
                        lambda root, scheduler=True: collect_status(root, scheduler=False))
    _FakeExecutor.arrays = []
    grid = parse_grid({
        "seeds": 3, "settings": {"train.epochs": 1},
        "resources": {"partition": "p", "time": "00:41:30", "clutter-crop": {"gpus": 1, "time": 600}},
        "runs": [{"method": "none", "benchmark": "glyphs-rotation"},
                 {"method": "none", "benchmark": "clutter-crop"}]}, "arrays")
    rep = launch_sweep(grid, tmp_path / "s", executor="slurm", max_parallel=3, log=lambda m: None)
    sizes = sorted((p.get("gpus_per_node", 0), n) for p, n in _FakeExecutor.arrays)
    assert sizes == [(0, 1), (0, 2), (1, 1), (1, 2)]  # 3 runs per benchmark -> arrays of 2 + 1
    for params, _ in _FakeExecutor.arrays:
        assert params["slurm_partition"] == "p" and params["slurm_array_parallelism"] == 3
        assert params["timeout_min"] in (42, 600) and params["name"] == "augbench-arrays"
    subs = [json.loads(line) for line in (tmp_path / "s" / MANIFEST).read_text().splitlines()]
    job_of = {e["run_id"]: e["job_id"] for e in subs if e["event"] == "submit"}
    assert job_of == rep.job_ids and len(set(job_of.values())) == 6
    minutes = {r.config.benchmark: r.config.settings["run.checkpoint_minutes"] for r in rep.runs}
    assert minutes == {"glyphs-rotation": 5.0, "clutter-crop": 5.0}  # default 5 min is below both caps
    short = parse_grid({**tiny_grid([{"method": "none"}]), "resources": {"time": 9}}, "short")
    rep = launch_sweep(short, tmp_path / "s2", executor="slurm", log=lambda m: None)
    assert rep.runs[0].config.settings["run.checkpoint_minutes"] == 1.88  # (9 - 1.5) / 4
    assert rep.runs[0].config.settings["run.progress"] is False
    assert rep.runs[0].run_id == short.expand().runs[0].run_id  # bookkeeping never changes the identity


def test_cli_dry_run_plans_and_bad_grids_exit_2_in_one_line(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    from augbench.cli import main

    good = write_toml(tmp_path / "g.toml",
                      'benchmark = "glyphs-rotation"\nseeds = 2\n'
                      '[[runs]]\nmethod = "random-rotation"\nhparams = { max_angle = [10.0, 20.0] }\n')
    assert main(["sweep", "launch", str(good), "--root", str(tmp_path / "r"), "--dry-run", "--executor", "local"]) == 0
    out = capsys.readouterr().out
    assert "grid g: 4 runs" in out and "dry run: nothing submitted" in out
    assert not (tmp_path / "r").exists()
    bad = write_toml(tmp_path / "b.toml", 'benchmark = "glyphs-rotation"\n[[runs]]\nmethod = "instaaug-9000"\n')
    assert main(["sweep", "launch", str(bad), "--dry-run", "--executor", "local"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("augbench: error: b: runs[0] (instaaug-9000) on glyphs-rotation: unknown method")
    assert len(err.splitlines()) == 1
    assert main(["sweep", "status", str(tmp_path / "nowhere")]) == 2


@pytest.mark.parametrize("name", ["../../escaped", "/abs/root", "bad\nname", ".hidden", ""])
def test_hostile_grid_names_are_refused(name):
    with pytest.raises(ConfigError, match="grid name"):
        parse_grid({"name": name, "benchmark": "glyphs-rotation", "runs": [{"method": "none"}]}, "g")


def test_a_grid_file_that_is_not_utf8_is_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b'name = "g"\nbenchmark = "glyphs-rotation"\n# \xff\xfe\n[[runs]]\nmethod = "none"\n')
    assert main(["sweep", "launch", str(bad), "--root", str(tmp_path / "r"), "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert "not UTF-8" in err and len(err.splitlines()) == 1


# ------------------------------------------------------------------------------ executors
def test_a_new_executor_is_one_class_that_launch_status_and_cancel_ask(tmp_path: Path, grid_two: Any,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from augbench.rundir import append_jsonl
    from augbench.sweep import executors
    from augbench.sweep.launch import cancel

    cancelled: list[str] = []

    class Queue(executors.Executor):
        name = "queue"

        def submit(self, runs, launch):  # type: ignore[no-untyped-def]
            for i, run in enumerate(runs):
                append_jsonl(launch.manifest, self.submit_event(run, launch, job_id=f"q{i}"))
            return executors.Submitted({r.run_id: f"q{i}" for i, r in enumerate(runs)})

        def poll(self, subs):  # type: ignore[no-untyped-def]
            return {s["job_id"]: "CANCELLED" if s["job_id"] in cancelled else "WAITING" for s in subs}

        def alive(self, sub, worker, polled):  # type: ignore[no-untyped-def]
            state = polled[sub["job_id"]]
            return executors.Liveness(alive=state == "WAITING", running=False, note=f"queue: {state}",
                                      cancelled=state == "CANCELLED")

        def cancel(self, subs, log):  # type: ignore[no-untyped-def]
            cancelled.extend(s["job_id"] for s in subs)
            return len(subs)

    monkeypatch.setitem(executors.EXECUTORS, "queue", Queue)
    root = tmp_path / "sweep"
    rep = launch_sweep(grid_two, root, executor="queue", log=lambda m: None)
    assert rep.job_ids == {r.run_id: f"q{i}" for i, r in enumerate(rep.runs)}
    st = collect_status(root)
    assert [(r.state, r.detail, r.executor) for r in st.runs] == [("pending", "queue: WAITING", "queue")] * 2
    assert launch_sweep(grid_two, root, executor="queue", log=lambda m: None).submitted == []  # alive: skipped
    assert sorted(cancel(root, log=lambda m: None)) == sorted(r.run_id for r in rep.runs)
    assert sorted(cancelled) == ["q0", "q1"]
    assert [r.state for r in collect_status(root).runs] == ["cancelled"] * 2
