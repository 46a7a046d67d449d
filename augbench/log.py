"""augbench's one logger: every progress, info and warning line, in one format, on stderr.

Library code logs to `logger` (named "augbench") and never writes to stderr itself; each entry
point (the command line, a sweep's worker and supervisor processes, a SLURM job) calls
`configure()` once. Used as a library without it, augbench follows Python's convention:
warnings reach stderr through `logging.lastResort`, progress and info lines stay silent.

Output must never fail a run: `STDERR` is the stream every line and progress bar goes to, and
a stderr that went away (a closed pipe: `augbench run ... 2>&1 | head`, a reader that died, a
terminal that closed) is dropped for good instead of raising into training.

    from augbench.log import logger
    logger.info("final evaluation: %d test images", n)     # augbench: final evaluation: 1000 test images
    logger.warning("resuming from %s", name)               # augbench: warning: resuming from ...
"""

from __future__ import annotations

import io
import logging
import os
import sys
from typing import Any

logger = logging.getLogger("augbench")


class SafeStderr:
    """`sys.stderr` as it is at each write (so pytest's capture and redirections apply), never raising.

    A write that fails (BrokenPipeError, EIO of a vanished terminal, a closed file object) marks
    that stream broken: later writes to it are dropped, and its file descriptor is pointed at
    /dev/null so that nothing else (the interpreter's final flush, C libraries) fails on it either.
    """

    def __init__(self) -> None:
        self._broken: Any = None  # the stream object that failed

    def _stream(self) -> Any:
        stream = sys.stderr
        return None if stream is None or stream is self._broken else stream

    def write(self, text: str) -> int:
        stream = self._stream()
        if stream is not None:
            try:
                stream.write(text)
            except (OSError, ValueError):
                self._drop(stream)
        return len(text)

    def flush(self) -> None:
        stream = self._stream()
        if stream is not None:
            try:
                stream.flush()
            except (OSError, ValueError):
                self._drop(stream)

    def isatty(self) -> bool:
        stream = self._stream()
        try:
            return bool(stream is not None and stream.isatty())
        except (OSError, ValueError):
            return False

    def fileno(self) -> int:
        stream = self._stream()
        try:
            return int(stream.fileno())
        except (AttributeError, ValueError, OSError) as exc:  # gone, closed, or not backed by a descriptor
            raise io.UnsupportedOperation("stderr has no file descriptor") from exc

    @property
    def encoding(self) -> str:
        """The stream's encoding (tqdm draws a Unicode bar where it allows one)."""
        return str(getattr(self._stream(), "encoding", None) or "ascii")

    @property
    def broken(self) -> bool:
        """Whether the current stderr failed (its lines are dropped)."""
        return sys.stderr is not None and sys.stderr is self._broken

    def _drop(self, stream: Any) -> None:
        self._broken = stream
        try:
            fd = stream.fileno()
        except (OSError, ValueError, AttributeError):
            return  # not backed by a descriptor (a test's capture): dropping its lines is enough
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, fd)
            os.close(devnull)
        except OSError:
            pass


STDERR = SafeStderr()


class Format(logging.Formatter):
    """`augbench: MESSAGE` for progress and info, `augbench: warning: MESSAGE` (error: ...) above."""

    def format(self, record: logging.LogRecord) -> str:
        level = "" if record.levelno <= logging.INFO else f"{record.levelname.lower()}: "
        text = f"augbench: {level}{record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


class Handler(logging.Handler):
    """Writes each line to `STDERR`; above a live progress bar through tqdm, which redraws the bar below it."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:  # noqa: BLE001 - a bad format argument is the caller's bug, never the run's end
            self.handleError(record)
            return
        tqdm = sys.modules.get("tqdm")
        if tqdm is not None and getattr(tqdm.tqdm, "_instances", None):
            tqdm.tqdm.write(line, file=STDERR)
        else:
            STDERR.write(line + "\n")
        STDERR.flush()

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        """Never print logging's own traceback: the line is lost, the run goes on."""


def configure(level: int = logging.INFO) -> logging.Logger:
    """Attach the one handler and format to the "augbench" logger (idempotent); lines reach stderr."""
    if not any(isinstance(h, Handler) for h in logger.handlers):
        handler = Handler()
        handler.setFormatter(Format())
        logger.addHandler(handler)
    logger.setLevel(level)
    return logger


def showing_progress() -> bool:
    """Whether progress lines reach anyone: the logger was configured for INFO and stderr still works."""
    return logger.isEnabledFor(logging.INFO) and any(isinstance(h, Handler) for h in logger.handlers) \
        and not STDERR.broken
