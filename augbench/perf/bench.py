"""`augbench bench`: what each method costs, measured in one process on the same batches.

For every method whose family fits the config: augmentation alone (`method.sample`), the
trainer's full training step, test-time augmentation with n views, and the peak memory of
each, as absolute figures and as ratios to `none` and `random-crop` measured in the same run.

Methods are measured in rounds (repetition 1 of every method, then repetition 2, ...), in
ABBA order (every other round reversed), and ratios are medians of per-round ratios: a
shared machine that slowly speeds up or slows down (other jobs, clocks) then biases no
method. A repetition repeats short calls until it lasts `min_time` (timeit's autorange).
Peak memory comes from untimed calls of each measure after the timed ones.

`compare_public` adds InstaAug's training step as the public code runs it (`perf.public`:
two classifier passes per batch) to the same rounds, as a row of system "public"; augbench's
InstaAug row then carries `step_x_public`. `clock="process"` times CPU time instead of wall
time (`measure.CLOCKS`), for 1-thread figures on a machine other jobs share.
"""

from __future__ import annotations

import fnmatch
import json
import math
import statistics
import tempfile
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from augbench.device import device_name, resolve_device
from augbench.errors import AugbenchError, ConfigError
from augbench.log import logger
from augbench.methods import get_method, list_methods
from augbench.overrides import Routed, check_hparams
from augbench.perf.configs import MEASURES, BenchConfig, get_config
from augbench.perf.harness import MethodHarness, dataset_for, fixed_batches
from augbench.perf.measure import PeakMemory, calls_for, clock_for, time_calls
from augbench.perf.public import AUGBENCH, PUBLIC, PublicInstaAugHarness
from augbench.rundir import failure_reason
from augbench.runs import resolve
from augbench.tasks.evaluate import to_float, views_evaluated

BASELINES: tuple[str, ...] = ("none", "random-crop")
N_BATCHES = 4  # distinct batches cycled through; every method sees the same ones


@dataclass(frozen=True)
class Target:
    """A performance target of the suite, checked on a result table (`column` and `column_noise`)."""

    label: str
    column: str
    limit: float
    methods: str = "*"  # fnmatch pattern of the methods it applies to
    config: str | None = "paper"  # the config it is defined on; None: any


TARGETS: tuple[Target, ...] = (
    Target("InstaAug training step / random-crop step (paper D.3: 0.25 s / 0.15 s = 1.67x)", "step_x_crop", 1.05,
           methods="instaaug*"),
    Target("augbench's InstaAug step / the public code's InstaAug step (--compare-public, same network and batches)",
           "step_x_public", 1.0, methods="instaaug*", config=None),
    Target("augmentation's own work, % of the none training step (required work shown apart)",
           "augment_own_pct", 10.0),
    Target("test-time augmentation's own work (feature passes a method requires shown apart) / the same views "
           "through plain forward passes", "tta_own_x_plain", 1.0, config=None),
)


@dataclass
class _Entry:
    """One method's state during a bench run."""

    method: str
    system: str = AUGBENCH  # whose training step is timed: augbench's, or the public code's sequence
    harness: MethodHarness | None = None
    status: str = "ok"  # ok | skipped | failed
    note: str = ""
    calls: dict[str, int] = field(default_factory=dict)  # calls per timed block, per measure
    seconds: dict[str, list[float]] = field(default_factory=dict)  # per call, one value per round
    required: list[float] = field(default_factory=list)  # seconds per augment call inside model.features
    tta_required: list[float] = field(default_factory=list)  # seconds per TTA call inside model.features
    peak: dict[str, float] = field(default_factory=dict)  # bytes, from the untimed memory call
    mem_source: str = ""  # how peak memory was measured (PeakMemory.source)

    def fail(self, exc: BaseException) -> None:
        """Record a failure; its traceback always reaches stderr (a failure is a bug to fix)."""
        self.status = "failed"
        self.note = failure_reason(exc)
        logger.error(f"bench: {self.method} FAILED\n{traceback.format_exc()}")
        self.harness = None


def select_methods(patterns: Sequence[str] | None) -> list[str]:
    """Registered methods named or matched (shell patterns, comma lists allowed), baselines first."""
    names: list[str] = []
    for item in patterns or ["*"]:
        for token in filter(None, (t.strip() for t in item.split(","))):
            if any(c in token for c in "*?["):
                found = list_methods(token)
                if not found:
                    raise ConfigError(f"no method matches {token!r}; valid: {', '.join(list_methods())}")
            else:
                get_method(token)  # one-line error naming the valid methods
                found = [token]
            names += [n for n in found if n not in names]
    baselines = [b for b in BASELINES if b in list_methods()]
    return baselines + [n for n in names if n not in baselines]


def run_bench(config: str | BenchConfig = "embedded", methods: Sequence[str] | None = None, *,
              device: str = "auto", benchmark: str | None = None, settings: Mapping[str, Any] | None = None,
              method_hparams: Mapping[str, Mapping[str, Any]] | None = None,
              hparams: Mapping[str, Any] | None = None, reps: int = 5, warmup: int = 2,
              tta_views: int | None = None, tta_batch: int | None = None, measures: Sequence[str] = MEASURES,
              min_time: float = 0.05, memory: bool = True, seed: int = 0, clock: str = "wall",
              compare_public: bool = False, log: Callable[[str], None] | None = None) -> pd.DataFrame:
    """Measure `methods` (default: all registered) on `config`; one row per method, see `COLUMNS`.

    `settings` override benchmark settings for every method (e.g. ``{"model.width": 0.5}``);
    `method_hparams` maps a method to hyperparameter overrides, `hparams` reach every measured
    method that declares them (`--set`'s rule, `overrides.check_hparams`). `none` and `random-crop` are
    always measured, as the references of the ratios. `memory=False` skips the two extra
    calls per measure that record peak memory. `clock`: "wall" or "process" (CPU time,
    `measure.CLOCKS`). `compare_public` adds InstaAug's training step as the public code runs
    it (`perf.public`), system "public", in the same rounds (`step_x_public`). Every timed
    block of training steps starts from the harness's start state (`MethodHarness.rewind`), so
    repetitions time the same steps and never a classifier diverged on the synthetic data.
    """
    log = log or logger.info
    cfg = get_config(config) if isinstance(config, str) else config
    bench_name = benchmark or cfg.benchmark
    for name, value, low in (("reps", reps, 1), ("warmup", warmup, 1), ("min_time", min_time, 0)):
        if value < low:
            raise ConfigError(f"bench: {name} must be at least {low}, got {value}")
    unknown = sorted(set(measures) - set(MEASURES))
    if unknown:
        raise ConfigError(f"bench: unknown measure {unknown[0]!r}; valid: {', '.join(MEASURES)}")
    dev = resolve_device(device)  # a GPU asked for that is not there is a one-line error
    timer = clock_for(clock, dev)
    names = select_methods(methods)
    if compare_public and "instaaug" not in names:
        names.append("instaaug")  # the public step is compared with augbench's own
    routed = Routed(hparams=dict(hparams or {}), per_method={m: dict(hp) for m, hp in (method_hparams or {}).items()})
    declared = {m: get_method(m).settable() for m in names}
    check_hparams(routed, declared, "bench")  # a misspelt name is an error, not a silently skipped method
    overrides = {**cfg.settings, **(settings or {}), "run.device": str(dev), "run.progress": False}

    # shared data, sized by the benchmark's resolved settings
    s = resolve(bench_name, "none", seed, overrides).settings
    batch_size = s["train.batch_size"]
    n_views = s["eval.tta_views"] if tta_views is None else tta_views
    n_tta = batch_size if tta_batch is None else tta_batch
    if n_views < 0 or n_tta < 1:
        raise ConfigError(f"bench: tta views must be >= 0 and tta batch >= 1, got {n_views} and {n_tta}")
    measures = [m for m in measures if m != "tta" or n_views > 0]
    dataset = dataset_for(cfg, batch_size, s["train.val_fraction"], N_BATCHES, n_tta, seed)

    entries = [_Entry(m) for m in names] + ([_Entry("instaaug", PUBLIC)] if compare_public else [])
    with tempfile.TemporaryDirectory(prefix="augbench-bench-") as tmp:
        for e in entries:
            try:
                cls = PublicInstaAugHarness if e.system == PUBLIC else MethodHarness
                e.harness = cls(bench_name, e.method, {**overrides, **routed.for_method(e.method, declared[e.method])},
                                dataset, Path(tmp) / f"{e.method}-{e.system}", seed)
                e.harness.clock = timer
            except AugbenchError as exc:  # not applicable here (family, channels): a note, not a failure
                e.status, e.note = "skipped", str(exc).splitlines()[0]
                log(f"{e.method}: skipped ({e.note})")
            except Exception as exc:  # noqa: BLE001 - one broken method must not hide the others' figures
                e.fail(exc)
        live = [e for e in entries if e.harness is not None]
        if not live:
            raise ConfigError(f"bench: no method could be built on {bench_name}; see the notes above")
        first = live[0].harness
        assert first is not None
        idx = fixed_batches(len(first.trainer.train_split), batch_size, N_BATCHES, dev, seed)
        xs = [(to_float(first.trainer.train_split.x[i]), first.trainer.train_split.y[i]) for i in idx]
        x_tta = to_float(dataset.test.x[:n_tta].to(dev))
        _measure_all(live, measures, idx, xs, x_tta, n_views, dev, reps, warmup, min_time, memory, log, timer)
        model = f"{s['model.name']}@{s['model.width']:g}"
        rows = [{**_row(e, cfg, bench_name, dev, batch_size, n_views, n_tta, reps, clock), "model": model}
                for e in entries]
        for e in entries:  # free model and optimizer memory now, not at the caller's next collection
            e.harness = None
    df = pd.DataFrame(rows)
    return add_ratios(df)[COLUMNS]


def _measure_all(live: list[_Entry], measures: list[str], idx: list[torch.Tensor],
                 xs: list[tuple[torch.Tensor, torch.Tensor]], x_tta: torch.Tensor, n_views: int, dev: torch.device,
                 reps: int, warmup: int, min_time: float, memory: bool, log: Callable[[str], None],
                 timer: Callable[[], float] = time.perf_counter) -> None:
    """Warm up and calibrate every (method, measure), time them in ABBA rounds, then record peak memory."""
    counters = {id(e): {"augment": 0, "step": 0} for e in live}

    def call(e: _Entry, what: str) -> Callable[[], Any]:
        h = e.harness
        assert h is not None
        c = counters[id(e)]
        if what == "augment":
            def fn() -> None:  # one block: `h.block` calls, one per step of the method's period
                for offset in range(h.block):
                    i = c["augment"] % len(xs)
                    x, y = xs[i]
                    c["augment"] += 1
                    h.augment(x, y, offset, idx[i])
        elif what == "step":
            def fn() -> None:  # one block: `h.block` consecutive steps on the cycled batches
                for _ in range(h.block):
                    h.step(idx[c["step"] % len(idx)])
                    c["step"] += 1
        elif what == "tta":
            def fn() -> None:
                h.tta(x_tta, n_views)
        else:  # "plain": the TTA floor, n_views copies through the method's own classifier
            def fn() -> None:
                h.plain_forward(x_tta, n_views)
        return fn

    def rewound(e: _Entry, what: str) -> Callable[[], Any]:
        """`call(e, what)`, with steps starting over from the harness's start state and first batch
        (untimed): every timed block of steps repeats the same work."""
        if what == "step":
            assert e.harness is not None
            e.harness.rewind()
            counters[id(e)]["step"] = 0
        return call(e, what)

    plan = {id(e): [m for m in measures if e.harness is not None and m in e.harness.measures] for e in live}
    for e in live:  # TTA's floor, right after TTA in the same round on the same classifier: a paired ratio
        if "tta" in plan[id(e)]:
            plan[id(e)].append("plain")
    for e in live:
        if not plan[id(e)]:
            e.status, e.note, e.harness = "skipped", f"measures {', '.join(measures)} not defined for it", None

    for e in live:
        if e.harness is None:
            continue
        try:
            for what in plan[id(e)]:
                for _ in range(warmup):
                    last = time_calls(rewound(e, what), 1, dev, timer)
                e.calls[what] = calls_for(last, min_time)
                e.seconds[what] = []
            blocks = ", ".join(f"{w} x{n}" for w, n in e.calls.items())
            log(f"{_label(e.method, e.system)}: warmed up ({blocks} per repetition)")
        except Exception as exc:  # noqa: BLE001
            e.fail(exc)
    for r in range(reps):
        # every other round reversed: a linear drift of the machine's speed cancels in per-round ratios
        for e in (live if r % 2 == 0 else live[::-1]):
            if e.harness is None:
                continue
            try:
                for what in plan[id(e)]:
                    n, fn = e.calls[what], rewound(e, what)
                    before = e.harness.required_seconds
                    per_call = e.harness.block if what in ("augment", "step") else 1
                    seconds = time_calls(fn, n, dev, timer)
                    e.seconds[what].append(seconds / per_call)
                    if what == "augment":
                        e.required.append((e.harness.required_seconds - before) / (n * per_call))
                    elif what == "tta":
                        e.tta_required.append((e.harness.required_seconds - before) / n)
                log(f"rep {r + 1}/{reps} {_label(e.method, e.system)}: " + ", ".join(
                    f"{w} {e.seconds[w][-1] * 1e3:.1f} ms" for w in plan[id(e)]))
            except Exception as exc:  # noqa: BLE001
                e.fail(exc)
    if not memory:
        return
    for e in live:  # two more calls of each, the second one's allocations count (see PeakMemory)
        if e.harness is None:
            continue
        try:
            for what in (w for w in plan[id(e)] if w != "plain"):
                fn = rewound(e, what)
                with PeakMemory(dev) as mem:
                    fn()
                    mem.restart()
                    fn()
                e.peak[what] = mem.peak_bytes
                e.mem_source = mem.source
            log(f"{_label(e.method, e.system)}: peak memory " + ", ".join(
                f"{w} {v / 2**20:.1f} MiB" for w, v in e.peak.items()))
        except Exception as exc:  # noqa: BLE001
            e.fail(exc)


def _label(method: str, system: str) -> str:
    """A row's name in logs, reports and figures: the method, and whose step it is if not augbench's."""
    return method if system == AUGBENCH else f"{method} [{system} code]"


def row_label(row: Mapping[str, Any]) -> str:
    """`_label` of a result row (rows of CSVs without a `system` column are augbench's)."""
    system = row.get("system", AUGBENCH)
    return _label(str(row["method"]), system if isinstance(system, str) and system else AUGBENCH)


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def _iqr(values: Sequence[float]) -> float:
    if len(values) < 2:
        return 0.0 if values else math.nan
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[2] - q[0]


def _row(e: _Entry, cfg: BenchConfig, bench_name: str, dev: torch.device, batch_size: int, n_views: int,
         n_tta: int, reps: int, clock: str = "wall") -> dict[str, Any]:
    ms = lambda what: _median(e.seconds.get(what, [])) * 1e3  # noqa: E731
    iqr = lambda what: _iqr(e.seconds.get(what, [])) * 1e3  # noqa: E731
    mb = lambda what: e.peak.get(what, math.nan) / 2**20  # noqa: E731
    augment_s = _median(e.seconds.get("augment", []))
    per_round = {k: [round(v * 1e3, 6) for v in vals]
                 for k, vals in {**e.seconds, "required": e.required, "tta_required": e.tta_required}.items()}
    return {
        "config": cfg.name, "benchmark": bench_name, "device": str(dev), "device_name": device_name(dev),
        "threads": torch.get_num_threads(), "clock": clock, "torch": torch.__version__, "method": e.method,
        "system": e.system, "status": e.status, "note": "" if e.status == "ok" else e.note,
        "batch_size": batch_size, "image_size": cfg.image_size, "tta_views": n_views,
        "tta_views_evaluated": views_evaluated(e.harness.trainer.method, n_views)
        if e.harness and "tta" in e.harness.measures else math.nan,
        "tta_batch": n_tta, "reps": reps,
        "augment_ms": ms("augment"), "augment_iqr_ms": iqr("augment"),
        "augment_required_ms": _median(e.required) * 1e3,
        "augment_img_s": batch_size / augment_s if augment_s > 0 else math.nan,
        "step_ms": ms("step"), "step_iqr_ms": iqr("step"), "tta_ms": ms("tta"), "tta_iqr_ms": iqr("tta"),
        "tta_plain_ms": ms("plain"), "tta_plain_iqr_ms": iqr("plain"), "tta_required_ms": _median(e.tta_required) * 1e3,
        "augment_mem_mb": mb("augment"), "step_mem_mb": mb("step"), "tta_mem_mb": mb("tta"),
        "mem_source": e.mem_source,
        "reps_ms": json.dumps({k: v for k, v in per_round.items() if v}),
        "hparams": json.dumps(e.harness.hparams if e.harness else {}, sort_keys=True, default=str),
    }


# ---------------------------------------------------------------------- ratios and targets
RATIOS: dict[str, str] = {"augment": "augment_ms", "step": "step_ms", "tta": "tta_ms", "mem": "step_mem_mb"}
NOISY: tuple[str, ...] = ("step_x_crop", "step_x_public", "augment_own_pct", "tta_x_plain", "tta_own_x_plain")

#: The CSV's columns. Times are per call and medians over rounds: augment_ms (`method.sample`
#: on one training batch, autograd on), augment_required_ms (its part inside the classifier's
#: `features`), step_ms (one `Trainer._step`, exploration amortised), tta_ms (`tta_logits` on
#: tta_batch images x tta_views), tta_plain_ms (the same number of images through plain
#: forward passes of the same classifier, timed right after TTA in each round; tta_x_plain is
#: the median of the per-round ratios), tta_required_ms (TTA's part inside the classifier's
#: `features`: AdaAug's and MADAug's policies read every view; tta_own_x_plain leaves it out);
#: *_iqr_ms their interquartile ranges; *_mem_mb peak MiB above the start of
#: an untimed call (mem_source says how). *_x_none / *_x_crop: time (or step memory) over the
#: same of none / random-crop. reps_ms: every per-round figure (JSON), so ratios can be redone.
#: system: "augbench", or "public" for the public code's InstaAug step (`perf.public`, step only);
#: step_x_public: an augbench row's step over the public row's of the same method. clock: what
#: the times count (`measure.CLOCKS`). tta_views_evaluated: views per image TTA put through the
#: classifier (1 when the method's test views are identical). model: the classifier, NAME@WIDTH.
COLUMNS: list[str] = [
    "config", "benchmark", "device", "device_name", "threads", "clock", "torch", "method", "system", "status",
    "note", "model", "batch_size", "image_size", "tta_views", "tta_views_evaluated", "tta_batch", "reps",
    "augment_ms", "augment_iqr_ms", "augment_required_ms", "augment_img_s", "step_ms", "step_iqr_ms",
    "tta_ms", "tta_iqr_ms", "tta_plain_ms", "tta_plain_iqr_ms", "tta_required_ms",
    "augment_mem_mb", "step_mem_mb", "tta_mem_mb", "mem_source",
    *[f"{k}_x_{ref}" for k in RATIOS for ref in ("none", "crop")],
    "step_x_public", "augment_own_pct", "augment_required_pct", "tta_x_plain", "tta_own_x_plain",
    *[f"{c}_noise" for c in NOISY],
    "reps_ms", "hparams",
]


def ratio(num: Sequence[float] | None, den: Sequence[float] | None, num_median: float,
          den_median: float) -> tuple[float, float]:
    """(value, noise) of num / den.

    Paired when both were measured in the same rounds: the median of per-round ratios, with
    half their interquartile range as noise (slow drift of the machine cancels). Otherwise
    the ratio of the medians, noise unknown (NaN).
    """
    if num and den and len(num) == len(den) and all(d > 0 for d in den):
        per_round = [a / b for a, b in zip(num, den)]
        return _median(per_round), _iqr(per_round) / 2
    if den_median and math.isfinite(den_median):
        return num_median / den_median, math.nan
    return math.nan, math.nan


def add_ratios(df: pd.DataFrame) -> pd.DataFrame:
    """Cost ratios (> 1: costlier) to `none` and `random-crop` of the same table, and the targets' columns.

    Uses the per-round figures in `reps_ms` when present (see `ratio`). `augment_own_pct`:
    augmentation time minus the required feature pass, as a percentage of the `none`
    training step; `augment_required_pct`: the feature pass alone; `step_x_public`: an
    augbench row's step over the public-code row's of the same method; `*_noise`: see `ratio`.
    """
    df = df.reset_index(drop=True).copy()
    rounds = [json.loads(r) if isinstance(r, str) and r else {} for r in df.get("reps_ms", [""] * len(df))]
    systems = list(df["system"]) if "system" in df else [AUGBENCH] * len(df)
    ok = [st == "ok" and sy == AUGBENCH for st, sy in zip(df["status"], systems)]
    ref = {m: i for i, (m, good) in enumerate(zip(df["method"], ok)) if good and m in BASELINES}
    public = {m: i for i, (m, st, sy) in enumerate(zip(df["method"], df["status"], systems))
              if st == "ok" and sy == PUBLIC}
    out: dict[str, list[float]] = {}

    def put(col: str, value_noise: tuple[float, float], scale: float = 1.0) -> None:
        out.setdefault(col, []).append(value_noise[0] * scale)
        if col in NOISY:
            out.setdefault(f"{col}_noise", []).append(value_noise[1] * scale)

    for i, row in df.iterrows():
        mine = rounds[i]
        for key, col in RATIOS.items():
            for method, tag in (("none", "none"), ("random-crop", "crop")):
                j = ref.get(method)
                put(f"{key}_x_{tag}", (math.nan, math.nan) if j is None else
                    ratio(mine.get(key), rounds[j].get(key), row[col], df.at[j, col]))
        j = ref.get("none")
        none_step = rounds[j].get("step") if j is not None else None
        none_median = df.at[j, "step_ms"] if j is not None else math.nan
        required = 0.0 if pd.isna(row["augment_required_ms"]) else row["augment_required_ms"]
        own = [a - r for a, r in zip(mine.get("augment", []), mine.get("required", []))]
        put("augment_own_pct", ratio(own, none_step, row["augment_ms"] - required, none_median), 100.0)
        put("augment_required_pct", ratio(mine.get("required"), none_step, row["augment_required_ms"],
                                          none_median), 100.0)
        put("tta_x_plain", ratio(mine.get("tta"), mine.get("plain"), row["tta_ms"], row["tta_plain_ms"]))
        tta_required = row.get("tta_required_ms", 0.0)
        tta_required = 0.0 if pd.isna(tta_required) else tta_required
        tta_own = [a - r for a, r in zip(mine.get("tta", []), mine.get("tta_required", []))] or mine.get("tta")
        put("tta_own_x_plain", ratio(tta_own, mine.get("plain"), row["tta_ms"] - tta_required, row["tta_plain_ms"]))
        j = public.get(row["method"]) if systems[i] == AUGBENCH else None
        put("step_x_public", (math.nan, math.nan) if j is None else
            ratio(mine.get("step"), rounds[j].get("step"), row["step_ms"], df.at[j, "step_ms"]))
    for col, values in out.items():
        df[col] = values
    return df


def check_targets(df: pd.DataFrame, targets: Sequence[Target] = TARGETS) -> pd.DataFrame:
    """One row per (target, method it applies to) with value, noise, limit and verdict.

    verdict: "met"; "noise" when over the limit by less than the value's noise; "missed";
    "n/a" when not measured. `binding` is False on configs other than the target's own.
    """
    rows = []
    ok = df[(df["status"] == "ok") & ((df["system"] == AUGBENCH) if "system" in df else True)]
    for t in targets:
        hit = ok[[fnmatch.fnmatch(m, t.methods) for m in ok["method"]]]
        if hit.empty:
            rows.append({"target": t.label, "method": t.methods, "value": math.nan, "noise": math.nan,
                         "limit": t.limit, "verdict": "n/a", "binding": False, "note": "not measured"})
        for _, r in hit.iterrows():
            value = float(r[t.column])
            noise = float(r.get(f"{t.column}_noise", math.nan))
            if not math.isfinite(value):
                verdict = "n/a"
            elif value <= t.limit:
                verdict = "met"
            elif math.isfinite(noise) and value - noise <= t.limit:
                verdict = "noise"
            else:
                verdict = "missed"
            binding = t.config is None or r["config"] == t.config
            rows.append({"target": t.label, "method": r["method"], "value": value, "noise": noise,
                         "limit": t.limit, "verdict": verdict, "binding": binding,
                         "note": "" if binding else f"defined on --config {t.config}; indicative here"})
    return pd.DataFrame(rows, columns=["target", "method", "value", "noise", "limit", "verdict", "binding", "note"])
