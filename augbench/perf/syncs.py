"""Counting the calls that make the host wait for the device, on any device (a CPU included).

On a GPU every one of these stalls the host until the queued kernels have run: reading a
value back (`.item()`, `.tolist()`, `bool(t)`, `int(t)`, `float(t)`), copying to the host
(`.cpu()`, `.numpy()`), and ops whose output size depends on the data (`nonzero`, boolean-mask
indexing, `masked_select`, `unique`, `repeat_interleave` without `output_size`, `bincount`).
A CPU never waits, so `torch.cuda.set_sync_debug_mode` sees nothing there; `SyncCounter`
recognises the calls themselves, so a CPU test catches a sync before it reaches a GPU:

    with SyncCounter() as syncs:
        method.sample(x, ctx)
    assert syncs.count == 0, syncs.report()

Two layers: a dispatch mode sees the ATen ops (also those that Python-level calls such as
`x[mask]` or `torch.where(mask)` turn into), a function mode the conversions that run no
ATen op on a CPU tensor (`.tolist()`, `.cpu()`, `.numpy()`). Events can be attributed to a
part of the code (`SyncCounter.part`), e.g. a method's hooks against the trainer around them.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import traceback
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

from augbench.log import configure, logger

if TYPE_CHECKING:
    from augbench.perf.harness import MethodHarness

#: ATen ops that read a value back or whose output shape depends on tensor values
SYNC_OPS: frozenset[str] = frozenset({
    "aten._local_scalar_dense",  # .item(), bool(t), int(t), float(t)
    "aten.is_nonzero", "aten.equal", "aten.allclose",  # return Python bools
    "aten.nonzero", "aten.argwhere", "aten.masked_select",
    "aten._unique", "aten._unique2", "aten.unique_dim", "aten.unique_consecutive", "aten.unique_dim_consecutive",
    "aten.bincount", "aten.histc",  # on CUDA both read the input's range back first
})
#: Tensor methods that copy to the host without an ATen op when the tensor is already there
SYNC_METHODS: frozenset[str] = frozenset({"tolist", "cpu", "numpy"})
#: functions whose read-backs are argument checks made on a CPU only (CUDA asserts on the device)
CPU_ONLY_CHECKS: frozenset[str] = frozenset({"one_hot"})


@dataclass(frozen=True)
class SyncEvent:
    """One synchronising call: what it was, the part of the code it happened in, and where."""

    call: str
    part: str
    where: str


def _location() -> str:
    """The innermost frame outside torch: file:line function (augbench's files relative to the package)."""
    frames = [f for f in traceback.extract_stack()[:-3]
              if "/torch/" not in f.filename and not f.filename.endswith(__file__.rsplit("/augbench/", 1)[-1])]
    f = frames[-1]
    where = f.filename.split("/augbench/")[-1] if "/augbench/" in f.filename else f.filename.rsplit("/", 1)[-1]
    return f"{where}:{f.lineno} {f.name}"


def _in_optimizer() -> bool:
    """True inside a `torch.optim` step: without `capturable` its step counters are host tensors on
    every device, so reading them is no device sync."""
    return any("/torch/optim/" in f.filename for f in traceback.extract_stack()[:-2])


def _bool_index(indices: Any) -> bool:
    return any(isinstance(i, torch.Tensor) and i.dtype in (torch.bool, torch.uint8) for i in indices or ())


class _Dispatch(TorchDispatchMode):
    def __init__(self, counter: SyncCounter) -> None:
        super().__init__()
        self.counter = counter

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        name = str(func.overloadpacket)  # e.g. "aten.nonzero"
        if name in SYNC_OPS:
            self.counter.record(name)
        elif name in ("aten.index", "aten.index_put", "aten.index_put_") and _bool_index(args[1]):
            self.counter.record(f"{name} with a boolean mask")
        elif name == "aten.repeat_interleave" and isinstance(args[0], torch.Tensor) and len(args) == 1 \
                and kwargs.get("output_size") is None:
            self.counter.record(f"{name} without output_size")
        return func(*args, **kwargs)


class _Function(TorchFunctionMode):
    def __init__(self, counter: SyncCounter) -> None:
        super().__init__()
        self.counter = counter

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        name = getattr(func, "__name__", "")
        if name in SYNC_METHODS and args and isinstance(args[0], torch.Tensor):
            self.counter.record(f"Tensor.{name}")
        if name in CPU_ONLY_CHECKS and args and isinstance(args[0], torch.Tensor):
            with self.counter.ignored():
                return func(*args, **(kwargs or {}))
        return func(*args, **(kwargs or {}))


class SyncCounter:
    """Context manager recording every host-synchronising call made inside it (`SyncEvent`)."""

    def __init__(self) -> None:
        self.events: list[SyncEvent] = []
        self._parts = ["step"]
        self._ignoring = 0
        self._modes: contextlib.ExitStack | None = None

    def __enter__(self) -> SyncCounter:
        self._modes = contextlib.ExitStack()
        self._modes.enter_context(_Function(self))
        self._modes.enter_context(_Dispatch(self))
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._modes is not None
        self._modes.close()
        self._modes = None

    def record(self, call: str) -> None:
        if self._ignoring or _in_optimizer():
            return
        self.events.append(SyncEvent(call, self._parts[-1], _location()))

    @contextlib.contextmanager
    def ignored(self) -> Iterator[None]:
        """Record nothing inside this block (`CPU_ONLY_CHECKS`)."""
        self._ignoring += 1
        try:
            yield
        finally:
            self._ignoring -= 1

    @contextlib.contextmanager
    def part(self, name: str) -> Iterator[None]:
        """Attribute the events inside this block to `name` (nested blocks: the innermost)."""
        self._parts.append(name)
        try:
            yield
        finally:
            self._parts.pop()

    @property
    def count(self) -> int:
        return len(self.events)

    def in_part(self, name: str) -> list[SyncEvent]:
        return [e for e in self.events if e.part == name]

    def report(self, part: str | None = None) -> str:
        """One line per distinct (call, place) with how often it happened."""
        events = self.events if part is None else self.in_part(part)
        counts = Counter((e.call, e.part, e.where) for e in events)
        return "; ".join(f"{n}x {call} [{p}] at {where}" for (call, p, where), n in counts.items()) or "none"


#: the method hooks a training step calls; `step_syncs` attributes events to them
HOOKS: tuple[str, ...] = ("sample", "objective", "explore")


def _attributed(counter: SyncCounter, part: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        with counter.part(part):
            return fn(*args, **kwargs)
    return wrapped


def step_syncs(harness: MethodHarness, idx: torch.Tensor) -> tuple[SyncCounter, int]:
    """One period of training steps (`harness.block`, the method's periodic work included) on batch
    `idx`, under a counter whose events inside the method's `HOOKS` carry the hook's name (the
    trainer's own: "step"). The first step is taken before, uncounted (lazy tables, caches)."""
    counter = SyncCounter()
    method = harness.trainer.method
    for hook in HOOKS:
        setattr(method, hook, _attributed(counter, hook, getattr(method, hook)))
    harness.step(idx)
    harness.rewind()
    with counter:
        for _ in range(harness.block):
            harness.step(idx)
    for hook in HOOKS:
        delattr(method, hook)
    return counter, harness.block


def cuda_syncs(fn: Callable[[], Any]) -> list[str]:
    """The synchronisations CUDA itself reports while `fn` runs (torch.cuda.set_sync_debug_mode), one
    message each: the check on a GPU that `SyncCounter` makes on any device."""
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return [str(w.message) for w in caught if "synchroniz" in str(w.message)]


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m augbench.perf.syncs`: syncs per training step of every method of a bench config."""
    from augbench.benchmarks import get_benchmark
    from augbench.methods import get_method, list_methods
    from augbench.perf.configs import get_config
    from augbench.perf.harness import MethodHarness, dataset_for, fixed_batches
    from augbench.runs import resolve

    p = argparse.ArgumentParser(prog="python -m augbench.perf.syncs", description=main.__doc__)
    p.add_argument("--config", default="paper")
    p.add_argument("--device", default="cpu")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="benchmark setting")
    p.add_argument("--out", help="CSV of the counts")
    args = p.parse_args(argv)
    configure()
    cfg = get_config(args.config)
    overrides: dict[str, Any] = {**cfg.settings, "run.device": args.device, "run.progress": False}
    overrides.update(item.split("=", 1) for item in args.set)
    s = resolve(cfg.benchmark, "none", 0, overrides).settings
    data = dataset_for(cfg, s["train.batch_size"], s["train.val_fraction"], 2, 2, 0)
    family = get_benchmark(cfg.benchmark).family
    rows, failed = [], False
    for name in list_methods():
        if get_method(name).families and family not in get_method(name).families:
            continue
        try:
            with tempfile.TemporaryDirectory() as tmp:
                h = MethodHarness(cfg.benchmark, name, overrides, data, Path(tmp), 0)
                idx = fixed_batches(len(h.trainer.train_split), s["train.batch_size"], 1, h.device)[0]
                counter, steps = step_syncs(h, idx)
                row = {"method": name, "steps": steps,
                       "method_calls_per_step": sum(e.part in HOOKS for e in counter.events) / steps,
                       "trainer_calls_per_step": len(counter.in_part("step")) / steps,
                       "where": counter.report()}
                if h.device.type == "cuda":
                    def period(h: MethodHarness = h, idx: torch.Tensor = idx, steps: int = steps) -> None:
                        for _ in range(steps):
                            h.step(idx)
                    row["cuda_syncs_per_step"] = len(cuda_syncs(period)) / steps
                rows.append(row)
        except Exception as exc:  # noqa: BLE001 - one failing method must not hide the others' counts
            failed = True
            logger.error(f"{name}: FAILED {type(exc).__name__}: {exc}")
    import pandas as pd

    df = pd.DataFrame(rows)
    if args.out:
        df.to_csv(args.out, index=False)
    print(df.drop(columns="where").to_string(index=False))
    for _, r in df.iterrows():
        if r["where"] != "none":
            print(f"{r['method']}: {r['where']}")
    return 1 if failed else 0


__all__ = ["CPU_ONLY_CHECKS", "HOOKS", "SYNC_METHODS", "SYNC_OPS", "SyncCounter", "SyncEvent", "cuda_syncs",
           "step_syncs"]


if __name__ == "__main__":
    raise SystemExit(main())
