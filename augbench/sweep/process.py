"""Which process runs a sweep's run on this host: pid plus start time, so a reused pid never counts."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any


def process_start(pid: Any) -> int | None:
    """The start time of process `pid` on this host (clock ticks since boot), or None if unknown.

    Together with the pid it names one process: a pid reused by a later process has another start.
    """
    try:
        stat = Path(f"/proc/{int(pid)}/stat").read_text()
        return int(stat.rsplit(")", 1)[-1].split()[19])
    except (TypeError, ValueError, OSError, IndexError):
        return None


def pid_alive(pid: Any, host: str | None = None, start: int | None = None, needle: str = "augbench") -> bool | None:
    """Is `pid` (started at `start`, when known) a live augbench process? None when it runs on another host."""
    if host is not None and host != socket.gethostname():
        return None
    try:
        pid = int(pid)
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except (TypeError, ValueError, OSError):
        return False
    fields = stat.rsplit(")", 1)[-1].split()
    if fields[0] == "Z":  # zombie: exited, not yet reaped
        return False
    if start is not None and process_start(pid) != start:
        return False  # the pid was reused
    return needle in cmdline  # guards against a reused pid when the start time is unknown
