"""torch files (checkpoints, final weights, inspect.pt) survive the signals that stop a job."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any

import pytest
import torch

from augbench.atomic import signals_deferred
from augbench.train.checkpoint import load_checkpoint, save_checkpoint

PAYLOAD = {f"t{i}": torch.arange(200.0) + i for i in range(20)}


class _SignalsOnWrite:
    """A file whose third write raises SIGUSR2 at the process, as a preemption can at any time."""

    def __init__(self, fh: Any) -> None:
        self.fh, self.writes = fh, 0

    def write(self, data: bytes) -> int:
        self.writes += 1
        if self.writes == 3:
            signal.raise_signal(signal.SIGUSR2)
        return self.fh.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.fh, name)


@pytest.fixture
def preemption_handler(monkeypatch: pytest.MonkeyPatch):
    """submitit's USR2 handler: it ends the job by raising SystemExit from the handler."""

    def handler(signum: int, frame: Any) -> None:
        raise SystemExit(-1)

    previous = signal.signal(signal.SIGUSR2, handler)
    original = torch.save
    monkeypatch.setattr(torch, "save", lambda obj, fh: original(obj, _SignalsOnWrite(fh)))
    yield handler
    signal.signal(signal.SIGUSR2, previous)


def test_a_signal_during_the_write_is_handled_once_the_checkpoint_is_whole(tmp_path: Path, preemption_handler):
    path = tmp_path / "ck.pt"
    # without the deferral, SystemExit inside torch's writer surfaces as RuntimeError("unexpected pos")
    with pytest.raises(SystemExit):
        save_checkpoint(path, PAYLOAD)
    loaded = load_checkpoint(path)
    assert loaded is not None and all(torch.equal(loaded[k], v) for k, v in PAYLOAD.items())
    assert signal.getsignal(signal.SIGUSR2) is preemption_handler  # the job's own handler is back
    assert not list(tmp_path.glob(".*.tmp"))


def test_deferral_keeps_ignored_signals_ignored_and_order_of_arrival():
    got: list[int] = []
    before = {s: signal.signal(s, lambda n, f: got.append(n)) for s in (signal.SIGUSR1, signal.SIGUSR2)}
    ignored = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with signals_deferred():
            signal.raise_signal(signal.SIGUSR2)
            signal.raise_signal(signal.SIGUSR1)
            signal.raise_signal(signal.SIGINT)  # ignored: stays ignored, never delivered
            assert got == []
        assert got == [signal.SIGUSR2, signal.SIGUSR1]
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, ignored)
        for s, h in before.items():
            signal.signal(s, h)


def test_outside_the_main_thread_deferral_does_nothing_and_saves(tmp_path: Path):
    errors: list[BaseException] = []

    def save() -> None:
        try:
            with signals_deferred():  # signal.signal would raise ValueError in this thread
                save_checkpoint(tmp_path / "ck.pt", PAYLOAD)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    t = threading.Thread(target=save)
    t.start()
    t.join()
    assert errors == [] and load_checkpoint(tmp_path / "ck.pt") is not None


def test_while_a_checkpoint_is_written_the_last_two_stay_two_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Killed half-way through writing generation 3, the run keeps generations 2 and 1 as two files:
    damage to one (a truncation, a bad block) leaves the other to resume from."""
    latest, previous = tmp_path / "checkpoint.pt", tmp_path / "checkpoint.prev.pt"
    save_checkpoint(latest, {"gen": 1}, previous=previous)
    save_checkpoint(latest, {"gen": 2}, previous=previous)

    def dies_half_way(obj: Any, fh: Any) -> None:
        fh.write(b"PK\x03\x04 half a checkpoint")
        raise KeyboardInterrupt  # stands for the SIGKILL that ends the process here

    monkeypatch.setattr(torch, "save", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(latest, {"gen": 3}, previous=previous)
    monkeypatch.undo()
    assert load_checkpoint(latest) == {"gen": 2} and load_checkpoint(previous) == {"gen": 1}
    assert not latest.samefile(previous)
    save_checkpoint(latest, {"gen": 3}, previous=previous)  # once whole, the two move on by one
    assert load_checkpoint(latest) == {"gen": 3} and load_checkpoint(previous) == {"gen": 2}
