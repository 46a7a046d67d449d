"""What a run shows while it works: a bar over its current phase, one line per epoch that stays
in the scroll-back, and the time left for the whole run, evaluation included.

A run's phases: training steps; validation passes (at each epoch's end, and the
`train.val_checks` - 1 checks inside an epoch); the final evaluation, which puts every test
image through the model once plain and once per test-time view. The final evaluation can take
as long as the training (1000 test images x 10 views), so the time left sums every remaining
phase at its measured rate: seconds per training step, and seconds per image of a validation
pass. A test image costs 1 + VIEW_COST x views such images until the final evaluation has
begun; from its first batch on, its own rate counts. Until a validation pass is timed, the time
left counts the training alone and says it is a lower bound.

Evaluation loops call `advance(images)` after each batch: it moves the bar of the run evaluating
in this thread, and does nothing otherwise, so tasks need not know who evaluates them.

On a terminal the bar is transient (tqdm, redrawn in place); elsewhere (log files) a status line
at most every STATUS_SECONDS. Every line goes through `augbench.log`, whose stream never raises.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from augbench.log import STDERR, logger

STATUS_SECONDS = 60.0  # off a terminal, a status line at most this often
# Measured on the embedded benchmarks (2-core CPU, default settings, 6 method/benchmark pairs): a
# test-time view costs 0.2-0.7 of an image's validation pass (the views go through the model in
# large batches, the method's inspect runs once).
VIEW_COST = 0.6


def duration(seconds: float) -> str:
    """A time span as people read it: 45s, 3m10s, 1h05m."""
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


@dataclass(frozen=True)
class RunPlan:
    """The work of one run, in the units its rates are measured in."""

    epochs: int
    steps_per_epoch: int
    batch_size: int
    val_images: int  # 0 without a validation split
    checks_per_epoch: int  # validation checks inside an epoch (`train.val_checks` - 1)
    test_images: int
    test_views: int  # views per test image evaluated besides the plain pass (`tta_views_evaluated`)

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch


@dataclass
class _Phase:
    name: str  # "epoch 2/5", "validation", "validation check", "final evaluation"
    total: int
    n: int
    unit: str  # "steps" or "images"
    cost: float  # per image, in validation passes of one image (`VIEW_COST`); 0 for training steps
    start: float

    def own_rate(self) -> float | None:
        """Seconds per image of this evaluation, once it has finished some."""
        return (time.monotonic() - self.start) / self.n if self.cost and self.n else None


def _width() -> dict[str, Any]:
    """tqdm's width: the terminal's, followed as it changes; 100 columns where it reports none (a bare pty)."""
    try:
        columns = os.get_terminal_size(STDERR.fileno()).columns
    except (OSError, ValueError):
        columns = 0
    return {"dynamic_ncols": True} if columns > 0 else {"ncols": 100}


_CURRENT: contextvars.ContextVar[RunProgress | None] = contextvars.ContextVar("augbench_progress", default=None)


def advance(images: int) -> None:
    """An evaluation loop finished `images` more images (a no-op unless a run's evaluation is shown)."""
    progress = _CURRENT.get()
    if progress is not None:
        progress.tick(images)


class RunProgress:
    """The bar, the per-epoch lines and the time left of one run (the trainer drives it)."""

    def __init__(self, plan: RunPlan, show: bool, *, epoch: int = 0, step: int = 0, checks_done: int = 0) -> None:
        self.plan, self.show = plan, show
        self.epoch, self.steps_done = epoch, step  # where a resumed run starts
        self.checks_done = checks_done  # over the whole run, including those before a resume
        self.vals_done = epoch if plan.val_images else 0
        self.final_done = False
        self.spent = {"training": 0.0, "validation": 0.0, "final evaluation": 0.0}  # this attempt
        self._steps_timed = 0  # training steps timed in this attempt
        self._images_validated = 0  # images of the validation passes timed in this attempt
        self._phase: _Phase | None = None
        self._bar: Any = None
        self._last_line = time.monotonic()
        self._epoch_sums: dict[str, float] = {}
        self._epoch_steps = 0
        self._epoch_start = time.monotonic()
        self._postfix = ""

    # ------------------------------------------------------------------ rates and the time left
    def rates(self) -> tuple[float | None, float | None]:
        """(seconds per training step, seconds per image of a validation pass), as measured in this
        attempt; None where nothing was timed yet."""
        step = self.spent["training"] / self._steps_timed if self._steps_timed else None
        image = self.spent["validation"] / self._images_validated if self._images_validated else None
        return step, image

    def remaining(self) -> tuple[float, bool] | None:
        """(seconds the run still needs, whether that is only a lower bound); None before anything is timed.

        The training steps, validation passes and checks and the final evaluation left, each at its
        measured rate. Until a validation pass is timed the evaluations have no rate: the seconds
        are the training's alone, a lower bound (an image's evaluation costs 1/14 to 1/2 of its
        share of a training step, depending on the method: no guess from the steps is close enough)."""
        step, image = self.rates()
        phase = self._phase
        current = phase.own_rate() if phase is not None else None
        p = self.plan
        steps = p.total_steps - self.steps_done
        if (steps and step is None) or (step is None and image is None and current is None):
            return None
        left = steps * (step or 0.0)
        if image is None:  # the evaluations are not timed yet, but for the one under way
            if current is not None:
                left += (phase.total - min(phase.n, phase.total)) * current  # type: ignore[union-attr]
            bound = phase is None or phase.name != "final evaluation" or current is None
            return max(0.0, left), bound
        passes = (p.epochs - self.vals_done if p.val_images else 0) + p.checks_per_epoch * p.epochs - self.checks_done
        left += passes * p.val_images * image
        if not self.final_done:
            left += p.test_images * (1 + VIEW_COST * p.test_views) * image
        if phase is not None and phase.cost:  # the evaluation under way: what it has done is done
            done = min(phase.n, phase.total)
            left -= done * phase.cost * image
            if current is not None:  # and what it still has to do, at its own pace
                left += (phase.total - done) * (current - phase.cost * image)
        return max(0.0, left), False

    def _left(self) -> str:
        estimate = self.remaining()
        if estimate is None:
            return "run's time left: after the first steps"
        left, bound = estimate
        return f"run >{duration(left)} left (evaluation not timed yet)" if bound else f"run ~{duration(left)} left"

    def _postfix_text(self) -> str:
        """The training step's loss and accuracy (training phases only), then the run's time left."""
        shown = self._postfix if self._phase is not None and not self._phase.cost else ""
        return f"{shown} | {self._left()}" if shown else self._left()

    # ------------------------------------------------------------------ the display
    def _open(self, phase: _Phase) -> None:
        """Show `phase`: a new transient bar on a terminal (the last phase's is erased)."""
        self._close_bar()
        self._phase = phase
        if self.show and STDERR.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=phase.total, initial=phase.n, desc=phase.name, unit=phase.unit, leave=False,
                             file=STDERR, postfix=self._postfix_text(), **_width(),
                             bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} {unit}{postfix}")

    def _close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def _refresh(self) -> None:
        phase = self._phase
        if phase is None or not self.show:
            return
        if self._bar is not None:
            self._bar.set_postfix_str(self._postfix_text(), refresh=False)
            self._bar.n = min(phase.n, phase.total)
            self._bar.update(0)  # redraws at tqdm's own pace (mininterval)
        elif time.monotonic() - self._last_line >= STATUS_SECONDS:
            self._status_line()

    def _status_line(self) -> None:
        phase = self._phase
        if phase is None:
            return
        self._last_line = time.monotonic()
        took = duration(time.monotonic() - phase.start)
        shown = f", {self._postfix}" if self._postfix and not phase.cost else ""
        logger.info(f"{phase.name}: {phase.n}/{phase.total} {phase.unit}{shown} ({took}; {self._left()})")

    def close(self) -> None:
        """Remove the bar (the per-epoch lines stay)."""
        self._close_bar()
        self._phase = None

    # ------------------------------------------------------------------ training
    def start_epoch(self, epoch: int, step_in_epoch: int) -> None:
        self.epoch = epoch
        self._epoch_sums, self._epoch_steps = {}, 0
        self._epoch_start = time.monotonic()
        self._resume_training(step_in_epoch)

    def _resume_training(self, step_in_epoch: int) -> None:
        self._open(_Phase(f"epoch {self.epoch + 1}/{self.plan.epochs}", self.plan.steps_per_epoch, step_in_epoch,
                          "steps", 0.0, time.monotonic()))

    def step(self, seconds: float, stats: Mapping[str, float]) -> None:
        """One training step took `seconds`; `stats` are its scalars (the epoch's line shows their means)."""
        self.steps_done += 1
        self._steps_timed += 1
        self.spent["training"] += seconds
        self._epoch_steps += 1
        for key in ("loss", "acc"):
            if key in stats:
                self._epoch_sums[key] = self._epoch_sums.get(key, 0.0) + float(stats[key])
        if self._phase is not None:
            self._phase.n += 1
        if "loss" in stats:
            acc = f", acc {stats['acc']:.1%}" if "acc" in stats else ""
            self._postfix = f"loss {stats['loss']:.3f}{acc}"
        self._refresh()

    def end_epoch(self, val: Mapping[str, float], score_key: str, best: bool, lr: float | None) -> None:
        """The epoch's line, kept in the scroll-back: its time, training means, validation, the time left."""
        self.vals_done = self.epoch + 1 if self.plan.val_images else 0
        steps = self._epoch_steps
        parts = [f"epoch {self.epoch + 1}/{self.plan.epochs} in {duration(time.monotonic() - self._epoch_start)}"]
        if steps:
            train = f"train loss {self._epoch_sums['loss'] / steps:.3f}" if "loss" in self._epoch_sums else "train"
            if "acc" in self._epoch_sums:
                train += f" acc {self._epoch_sums['acc'] / steps:.1%}"
            parts.append(train)
        if score_key in val:
            value = val[score_key]
            shown = f"{value:.1%}" if "acc" in score_key else f"{value:.4g}"
            parts.append(f"validation {score_key} {shown}" + (" (best so far)" if best else ""))
        if lr is not None:
            parts.append(f"lr {lr:.3g}")
        self._postfix = ""
        if self.show:
            logger.info(", ".join(parts) + f"; {self._left()}")
            self._last_line = time.monotonic()

    # ------------------------------------------------------------------ evaluation
    @contextlib.contextmanager
    def evaluation(self, name: str, images: int, cost: float = 1.0) -> Iterator[None]:
        """An evaluation pass of `images` images, each costing `cost` validation passes of an image;
        `advance` calls inside it move its bar."""
        was = self._phase
        training = was if was is not None and not was.cost and was.n < was.total else None
        phase = _Phase(name, max(1, images), 0, "images", cost, time.monotonic())
        self._open(phase)
        token = _CURRENT.set(self)
        try:
            yield
        finally:
            _CURRENT.reset(token)
            took = time.monotonic() - phase.start
            if name == "final evaluation":
                self.spent[name] += took
            else:
                self.spent["validation"] += took
                self._images_validated += images
            if name == "validation check":
                self.checks_done += 1
            if training is not None:  # back to the epoch's steps (time in the check is not a step's)
                self._resume_training(training.n)
                self._phase.start = training.start  # type: ignore[union-attr]
            else:
                self.close()

    def tick(self, images: int) -> None:
        phase = self._phase
        if phase is None or not phase.cost:
            return
        phase.n += images
        if phase.n > phase.total and self._bar is not None:
            phase.total = phase.n  # a task that evaluates more than the split (a probe's training set)
            self._bar.total = phase.total
        self._refresh()

    def final_evaluation(self) -> contextlib.AbstractContextManager[None]:
        """The test split, plain and through its test-time views."""
        p = self.plan
        if self.show:
            views = f", {p.test_views} test-time views each" if p.test_views else ""
            estimate = self.remaining()
            about = f" (about {duration(estimate[0])})" if estimate is not None and not estimate[1] else ""
            logger.info(f"final evaluation: {p.test_images} test images{views}{about}")
        return self.evaluation("final evaluation", p.test_images, 1 + VIEW_COST * p.test_views)

    def finish(self, total_seconds: float) -> None:
        """The run's last progress line: how long each phase of this attempt took."""
        self.final_done = True
        self.close()
        if self.show:
            phases = ", ".join(f"{name} {duration(sec)}" for name, sec in self.spent.items() if sec > 0)
            logger.info(f"run took {duration(total_seconds)} ({phases})")
