"""Atomic file writes: readers (other jobs of a sweep, a resumed run) see no file or a whole one."""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any


def atomic_write(path: Path | str, write: Callable[[IO[bytes]], None],
                 before_replace: Callable[[], None] | None = None) -> None:
    """Call `write` on a temp file in `path`'s folder, fsync it, then rename it over `path`.

    `before_replace` runs once the new file is whole, just before the rename (a checkpoint keeps
    the file it replaces under a second name there, so the two stay distinct files meanwhile).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        if before_replace is not None:
            before_replace()
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_all(fh: IO[bytes], data: bytes) -> None:
    fh.write(data)


def atomic_write_text(path: Path | str, text: str) -> None:
    data = text.encode()
    atomic_write(path, lambda fh: _write_all(fh, data))


#: the signals that stop a job: Ctrl-C, SLURM's and the local executor's SIGTERM, and the USR
#: signals of preemption and time limits (submitit's handler raises SystemExit on USR2)
STOP_SIGNALS: tuple[int, ...] = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGUSR1", "SIGUSR2")
                                      if hasattr(signal, name))


@contextlib.contextmanager
def signals_deferred(signums: tuple[int, ...] = STOP_SIGNALS) -> Iterator[None]:
    """Hold these signals until the block ends, then deliver them to their own handlers in order.

    Python runs signal handlers in the main thread only; elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    previous: dict[int, Any] = {}
    for signum in signums:
        handler = signal.getsignal(signum)
        if handler is None or handler == signal.SIG_IGN:  # installed outside Python, or ignored
            continue
        previous[signum] = handler
        signal.signal(signum, lambda got, frame: pending.append(got))
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for signum in pending:
            signal.raise_signal(signum)


def atomic_torch_save(path: Path | str, obj: Any, before_replace: Callable[[], None] | None = None) -> None:
    """torch.save through `atomic_write`, with stop signals handled once the file is whole.

    A handler that raises inside torch.save's write callback (submitit's SystemExit on
    preemption) becomes a RuntimeError ("unexpected pos") in torch's zip writer: a preempted
    job would end "failed" instead of "interrupted".
    """
    import torch  # here, so that reading run directories never needs torch

    with signals_deferred():
        atomic_write(path, lambda fh: torch.save(obj, fh), before_replace)


def write_if_changed(path: Path | str, data: bytes | str) -> bool:
    """Write `data` atomically unless the file already holds exactly it; True if it wrote.

    Generated outputs (tables, figures, leaderboards) are committed: regenerating them from the
    same runs must leave the files, and their modification times, untouched.
    """
    path = Path(path)
    blob = data.encode() if isinstance(data, str) else data
    try:
        if path.read_bytes() == blob:
            return False
    except OSError:
        pass
    atomic_write(path, lambda fh: _write_all(fh, blob))
    return True
