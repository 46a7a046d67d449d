"""What a run shows while it works (augbench.progress, augbench.log): the time left counts the
evaluation, an epoch leaves a line, the metrics read with units, and output never fails a run."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest

from augbench import progress as progress_mod
from augbench.cli import format_metrics, main
from augbench.log import STDERR, Format
from augbench.progress import VIEW_COST, RunPlan, RunProgress, advance, duration
from augbench.runs import execute, resolve

REPO = Path(__file__).resolve().parents[1]
PLAN = RunPlan(epochs=2, steps_per_epoch=10, batch_size=12, val_images=20, checks_per_epoch=1, test_images=100,
               test_views=9)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    c = Clock()
    monkeypatch.setattr(progress_mod.time, "monotonic", c)
    return c


def test_the_time_left_counts_validation_and_the_final_evaluation(clock):
    p = RunProgress(PLAN, show=False)
    assert p.remaining() is None  # nothing timed yet
    p.start_epoch(0, 0)
    for _ in range(5):
        clock.now += 1.0
        p.step(1.0, {"loss": 1.0})
    assert p.remaining() == (pytest.approx(15 * 1.0), True)  # the training alone: a lower bound, said so
    assert p._left() == "run >15s left (evaluation not timed yet)"
    with p.evaluation("validation check", 20):  # timed: 20 images in 2 s, 0.1 s per image
        advance(10)
        clock.now += 2.0
        advance(10)
    assert p.checks_done == 1
    steps = 15 * 1.0
    validation = (2 + 1) * 20 * 0.1  # 2 epoch-end passes and the other check, of 20 images
    final = 100 * (1 + VIEW_COST * 9) * 0.1  # the test split, plain and through 9 views each
    assert p.remaining() == (pytest.approx(steps + validation + final), False)
    assert final > steps  # the evaluation outweighs the training left: the time left must count it
    assert p._left() == f"run ~{duration(steps + validation + final)} left"


def test_the_final_evaluation_counts_at_its_own_pace_once_begun(clock):
    p = RunProgress(PLAN, show=False, epoch=2, step=20, checks_done=2)
    with p.evaluation("validation", 20):
        clock.now += 2.0  # 0.1 s per image
    p.vals_done = 2
    assert p.remaining() == (pytest.approx(100 * (1 + VIEW_COST * 9) * 0.1), False)
    with p.final_evaluation():
        advance(50)
        clock.now += 100.0  # 2 s per test image, slower than estimated: the rest is counted at that pace
        assert p.remaining() == (pytest.approx(50 * 2.0), False)
    p.finish(123.0)
    assert p.remaining() == (0.0, False)


def test_without_a_validation_split_the_final_evaluation_times_itself(clock):
    p = RunProgress(RunPlan(epochs=1, steps_per_epoch=4, batch_size=8, val_images=0, checks_per_epoch=0,
                            test_images=40, test_views=4), show=False, epoch=1, step=4)
    with p.final_evaluation():
        assert p.remaining() is None
        advance(10)
        clock.now += 5.0
        assert p.remaining() == (pytest.approx(30 * 0.5), False)


def test_advance_outside_an_evaluation_is_a_no_op():
    advance(10)  # evaluation code run by a script, a test, or a benchmark: nothing to move


def test_durations_read_as_people_write_them():
    assert [duration(s) for s in (0.4, 45, 190, 3900)] == ["0s", "45s", "3m10s", "1h05m"]


def test_one_format_for_every_line():
    fmt = Format()
    info = logging.LogRecord("augbench", logging.INFO, "", 0, "epoch %d", (1,), None)
    warning = logging.LogRecord("augbench", logging.WARNING, "", 0, "resuming", None, None)
    assert fmt.format(info) == "augbench: epoch 1" and fmt.format(warning) == "augbench: warning: resuming"


def test_library_code_never_writes_to_stderr_itself():
    """Every line goes through augbench.log; only it touches sys.stderr."""
    offenders = []
    for path in (REPO / "augbench").rglob("*.py"):
        if path.name == "log.py":
            continue
        text = path.read_text()
        if "file=sys.stderr" in text or "sys.stderr.write" in text or "warnings.warn(" in text:
            offenders.append(str(path.relative_to(REPO)))
    assert offenders == []


# ------------------------------------------------------------------------------------------- a real run
def _tiny_sets(tiny: dict, **extra) -> list[str]:
    merged = {**tiny, "run.progress": True, **extra}
    return [a for k, v in merged.items() for a in ("--set", f"{k}={v}")]


def test_a_run_leaves_a_line_per_epoch_and_says_how_long_each_phase_took(tmp_path, tiny, capsys):
    assert main(["run", "glyphs-rotation", "--method", "random-rotation", "--out", str(tmp_path / "r"),
                 *_tiny_sets(tiny, **{"train.epochs": 2})]) == 0
    captured = capsys.readouterr()
    err = captured.err.splitlines()
    epochs = [line for line in err if line.startswith("augbench: epoch ")]
    assert [line.split(" in ")[0] for line in epochs] == ["augbench: epoch 1/2", "augbench: epoch 2/2"]
    assert all("train loss" in line and "validation acc" in line and "left" in line for line in epochs)
    assert any(line.startswith("augbench: final evaluation: 32 test images, 2 test-time views each") for line in err)
    assert any(line.startswith("augbench: run took") and "final evaluation" in line for line in err)
    out = captured.out
    assert "tta_views_evaluated" in out and " 2 views" in out and "." not in out.split("best_epoch")[1].split("\n")[0]
    assert "%" in out.split("\nacc")[1].split("\n")[0]


def test_the_metrics_table_has_units_integers_and_arrows():
    table = format_metrics({"acc": 0.9731, "loss": 0.0812, "tta_views_evaluated": 10.0, "best_epoch": 4,
                            "coverage": 0.5323, "diagnosis": ""})
    rows = {line.split()[0]: line.split()[1:] for line in table.splitlines() if not line.startswith("(")}
    assert rows["acc"] == ["97.31", "%", "\u2191"] and rows["loss"] == ["0.0812", "\u2193"]
    assert rows["tta_views_evaluated"] == ["10", "views"] and rows["best_epoch"] == ["4"]
    assert rows["coverage"] == ["53.23", "%", "\u2191"] and "diagnosis" not in rows
    assert "higher is better" in table
    assert "\u2191" not in format_metrics({"acc": 0.5}, arrows=False)


def test_a_bar_on_a_terminal_covers_the_final_evaluation(tmp_path, tiny, monkeypatch, capsys):
    monkeypatch.setattr(type(STDERR), "isatty", lambda self: True)
    cfg = resolve("glyphs-rotation", "random-rotation", 0, {**tiny, "run.progress": True})
    execute(cfg, tmp_path / "r")
    err = capsys.readouterr().err
    bars = err.replace("\r", "\n").splitlines()
    final = [line for line in bars if re.match(r"final evaluation: +\d+%\|", line)]
    assert final and all("/32 images" in line and "run ~" in line for line in final)  # its phase and the run's ETA
    assert any(re.match(r"epoch 1/1: +\d+%\|.*/5 steps.*run", line) for line in bars)  # the training bar


class _Gone:
    """A stderr whose reader went away: every write and flush raises, as a closed pipe does."""

    def __init__(self, tty: bool) -> None:
        self.tty = tty

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self) -> None:
        raise BrokenPipeError(32, "Broken pipe")

    def isatty(self) -> bool:
        return self.tty


@pytest.mark.parametrize("tty", [True, False])
def test_a_broken_stderr_never_fails_the_run(tmp_path, tiny, monkeypatch, tty):
    monkeypatch.setattr(sys, "stderr", _Gone(tty))
    cfg = resolve("glyphs-rotation", "random-rotation", 0, {**tiny, "run.progress": True, "train.epochs": 2})
    metrics = execute(cfg, tmp_path / "r")
    assert json.loads((tmp_path / "r" / "status.json").read_text())["state"] == "done"
    assert metrics["acc"] >= 0


def _cli(tmp_path: Path, tiny: dict) -> list[str]:
    return [sys.executable, "-m", "augbench", "run", "glyphs-rotation", "--method", "random-rotation", "--out",
            str(tmp_path / "r"), *_tiny_sets(tiny, **{"train.epochs": 3})]


@pytest.mark.slow
def test_a_run_piped_into_head_finishes_done(tmp_path, tiny):
    """`augbench run ... 2>&1 | head -n 1`: the reader leaves after one line; the run goes on, exit 0."""
    command = " ".join(f"'{a}'" for a in _cli(tmp_path, tiny))
    done = subprocess.run(["bash", "-c", f"set -o pipefail; {command} 2>&1 | head -n 1"], capture_output=True,
                          text=True, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("augbench: run ") and len(done.stdout.splitlines()) == 1
    assert json.loads((tmp_path / "r" / "status.json").read_text())["state"] == "done"


@pytest.mark.slow
def test_a_run_whose_reader_dies_finishes_done(tmp_path, tiny):
    """A parent that reads the first line of stderr and closes its end of the pipe (as if it died)."""
    proc = subprocess.Popen(_cli(tmp_path, tiny), stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
    assert proc.stderr is not None and proc.stdout is not None
    assert proc.stderr.readline().startswith(b"augbench: run ")
    proc.stderr.close()
    proc.stdout.close()
    assert proc.wait(timeout=600) == 0
    assert json.loads((tmp_path / "r" / "status.json").read_text())["state"] == "done"
