"""Measuring one callable on any device: wall time, peak memory and the number of kernels it launches.

Asynchronous devices (CUDA, MPS) only finish work at a synchronisation, so every timed block
starts and ends with one; otherwise a timer measures kernel launches, not kernels.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import torch

from augbench.errors import ConfigError


def synchronize(device: torch.device) -> None:
    """Wait for every kernel queued on `device` (a no-op on the CPU, which runs eagerly)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


#: What a timing counts. "wall": elapsed time (what a user waits). "process": CPU time of this
#: process, all its threads (time.process_time): on a machine other jobs share, it leaves out the
#: time they take, so 1-thread CPU figures stay comparable; with several threads it sums their
#: work. GPU kernels run outside the process: "process" is refused there.
CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "process": time.process_time}


def clock_for(name: str, device: torch.device) -> Callable[[], float]:
    """The timer of clock `name` (`CLOCKS`) for measurements on `device`."""
    if name not in CLOCKS:
        raise ConfigError(f"bench: unknown clock {name!r}; valid: {', '.join(CLOCKS)}")
    if name == "process" and device.type != "cpu":
        raise ConfigError(f"bench: clock process counts CPU time only; use wall on {device.type}")
    return CLOCKS[name]


def time_calls(fn: Callable[[], Any], n: int, device: torch.device,
               clock: Callable[[], float] = time.perf_counter) -> float:
    """Seconds per call of `fn`, over `n` back-to-back calls between two synchronisations."""
    synchronize(device)
    start = clock()
    for _ in range(n):
        fn()
    synchronize(device)
    return (clock() - start) / n


def calls_for(seconds_per_call: float, min_time: float, max_calls: int = 100) -> int:
    """Calls per timed block so that a block lasts at least `min_time` (timeit's autorange).

    Short calls are repeated so that timer resolution and launch jitter do not dominate.
    """
    if seconds_per_call <= 0 or not math.isfinite(seconds_per_call):
        return 1
    return max(1, min(max_calls, math.ceil(min_time / seconds_per_call)))


# ---------------------------------------------------------------------- peak memory
_MARK = "augbench::peak_memory_restart"


def peak_of_allocations(events: list[tuple[int, int]], since: int | None = None) -> int:
    """Highest running total of (time, signed bytes) allocation events, above the total at time `since`."""
    started = since is None
    total = base = peak = 0
    for t, nbytes in sorted(events):
        if not started and since is not None and t >= since:
            started, base, peak = True, total, total
        total += nbytes
        if started:
            peak = max(peak, total)
    return peak - base if started else 0


class PeakMemory:
    """Peak bytes allocated inside a `with` block (after its last `restart()`) above what was allocated then.

    CUDA: `torch.cuda.max_memory_allocated` (the caching allocator's own count). CPU: every
    allocation and free of torch's allocator recorded by `torch.profiler` (profile_memory),
    summed in time order: exact, including peaks that last microseconds. The profiler cannot
    size a block allocated before it started, so freeing one goes unseen: run the work once,
    `restart()`, and run it again, so that what the second run frees was seen being allocated.
    Recording slows the block down: time and memory are never measured in the same call.
    Elsewhere `peak_bytes` stays NaN; `source` says which applies.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.peak_bytes = math.nan
        self.source = {"cuda": "cuda: torch.cuda.max_memory_allocated",
                       "cpu": "cpu: torch.profiler allocation events"}.get(device.type, f"{device.type}: unavailable")
        self._base = 0
        self._prof: torch.profiler.profile | None = None
        self._restarted = False

    def __enter__(self) -> PeakMemory:
        synchronize(self.device)
        self._restarted = False
        if self.device.type == "cuda":
            self._base = torch.cuda.memory_allocated(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        elif self.device.type == "cpu":
            self._prof = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True)
            self._prof.__enter__()
        return self

    def restart(self) -> None:
        """Count the peak from here on, above what is allocated now."""
        synchronize(self.device)
        if self.device.type == "cuda":
            self._base = torch.cuda.memory_allocated(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        elif self._prof is not None:
            with torch.profiler.record_function(_MARK):
                self._restarted = True

    def __exit__(self, *exc: object) -> None:
        synchronize(self.device)
        if self.device.type == "cuda":
            self.peak_bytes = float(torch.cuda.max_memory_allocated(self.device) - self._base)
        elif self._prof is not None:
            self._prof.__exit__(None, None, None)
            try:
                events = self._prof.profiler.kineto_results.events()  # type: ignore[union-attr]
                cpu = torch.profiler.DeviceType.CPU
                allocs = [(e.start_ns(), e.nbytes()) for e in events  # type: ignore[union-attr]
                          if e.name() == "[memory]" and e.device_type() == cpu]
                marks = [e.start_ns() for e in events if e.name() == _MARK]
                if self._restarted and not marks:
                    raise AttributeError("restart mark not recorded")
                self.peak_bytes = float(peak_of_allocations(allocs, marks[-1] if marks else None))
            except AttributeError:  # the profiler's result layout changed: say so, never guess
                self.source = "cpu: unavailable (torch.profiler memory events not readable)"
            self._prof = None


# ---------------------------------------------------------------------- kernel counts
def count_ops(fn: Callable[[], Any]) -> int:
    """Number of ATen operator calls (nested ones included) that one call of `fn` makes.

    A per-sample Python loop shows as a count that grows with the batch size; a batched
    implementation's count does not (torch.profiler, CPU activity: dispatches are recorded
    on the host for every device).
    """
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        fn()
    return sum(1 for event in prof.events() if event.name.startswith("aten::"))
