"""Did a learned augmentation learn? Flags computed from a run's validation records.

A learned distribution can fail silently: its optimiser's learning rate stays 0 for the whole
run (a pretraining phase as long as the run), it never leaves its initialisation, it collapses
(entropy far below the band the entropy controller aims for: ranges of width ~0) or it
saturates (entropy pinned at the family's maximum: the widest distribution the
parameterization can express). The method states its band (`AugmentationMethod.entropy_band`);
the trainer writes the flags into the test record as `diagnosis` and `augbench run` prints them.
A method without a band and without a `phi_lr_factor` log gets no entropy flags.

Any run, learned or not, is flagged `diverged` when its loss became non-finite (a validation or
test loss: a non-finite training loss stops the run) or ended far above where it started (more
than DIVERGE_FACTOR times the first step's training loss): a classifier whose
learning rate is too high for its schedule can finish with a finite but meaningless loss
(Tiny-ImageNet's recipe without its pretraining on a small tree: train loss 1.5 -> 143, test
loss 8.5e14) and an accuracy that looks like a result.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

FLAGS = ("diverged", "phi_frozen", "never_moved", "collapsed", "saturated")
#: entropy changes (nats) below this count as "did not move"
MOVE_TOL = 0.05
#: "saturated": within this fraction of the way from the initial entropy to the family's maximum
#: of it (at least MOVE_TOL nats): LRP crops at 2.77 of log 17 = 2.83 nats are uniform in all
#: but name, and a fixed 0.05 nats let them through
SATURATED_WITHIN = 0.05
#: "collapsed": more than max(FAR_BELOW, band width) nats below h_min and below the initial entropy
FAR_BELOW = 1.0
#: "diverged": a last loss more than this many times the first step's
DIVERGE_FACTOR = 10.0

EXPLAIN = {
    "diverged": "the loss diverged ({loss_detail})",
    "phi_frozen": "phi's learning rate was 0 for the whole run (pretraining covers every epoch)",
    "never_moved": "the distribution never moved from its initialisation (entropy within {tol} nats of {h0:.2f})",
    "collapsed": "the distribution collapsed (entropy {h:.2f} nats, far below the band [{lo:.2f}, {hi:.2f}])",
    "saturated": "the distribution saturated (entropy {h:.2f} nats, at or near the family's maximum {top:.2f})",
}


def verdict(flags: Sequence[str]) -> str:
    """What the flags say about the run, for a warning line: "diverged", "did not learn" or both."""
    if "diverged" not in flags:
        return "did not learn"
    return "diverged" if list(flags) == ["diverged"] else "diverged and did not learn"


def _finite(values: Sequence[object]) -> list[float]:
    return [float(v) for v in values if isinstance(v, (int, float)) and math.isfinite(float(v))]


def _losses(records: Sequence[Mapping[str, object]], key: str = "loss") -> list[float]:
    """The `key` of each record that has one, NaN kept as inf (non-finite either way)."""
    out = []
    for m in records:
        v = m.get(key, m.get("loss"))
        if isinstance(v, (int, float)):
            out.append(math.inf if math.isnan(float(v)) else float(v))
    return out


def divergence(train: Sequence[Mapping[str, object]], val: Sequence[Mapping[str, object]],
               test: Mapping[str, object] | None = None, start: float | None = None) -> str:
    """Why the run's loss diverged, "" if it did not.

    A validation or test loss that is not finite, or a last training task loss, last validation
    loss or test loss above DIVERGE_FACTOR x `start` (the first step's training task loss: about
    chance level, log C for C classes; else the first training record's). Training records
    carry "task_loss" (their "loss" includes the entropy term, which can make it negative).
    """
    train_losses, val_losses = _losses(train, "task_loss"), _losses(val)
    test_losses = _losses([test]) if test else []
    for split, losses in (("validation", val_losses), ("test", test_losses)):
        if losses and not all(math.isfinite(v) for v in losses):
            return f"{split} loss not finite"
    reference = start if start is not None else (train_losses[0] if train_losses else None)
    if reference is None or not math.isfinite(reference) or reference <= 0:
        return ""
    for split, losses in (("training", train_losses), ("validation", val_losses), ("test", test_losses)):
        if losses and losses[-1] > DIVERGE_FACTOR * reference:
            return f"{split} loss {losses[-1]:.3g}, over {DIVERGE_FACTOR:g}x the first step's {reference:.3g}"
    return ""


def diagnose(val: Sequence[Mapping[str, object]], band: Mapping[str, float]) -> list[str]:
    """The learned distribution's flags (`FLAGS` but `diverged`, in that order) for validation
    metrics `val` (one dict per epoch); `divergence` says whether the loss diverged.

    `band`: "h_min", "h_max" (the controller's band), optionally "h_init" (entropy at
    initialisation; else the first validation entropy) and "h_top" (the family's maximum).
    """
    flags: list[str] = []
    lr = _finite([m.get("phi_lr_factor") for m in val])
    if lr and max(lr) == 0.0:
        flags.append("phi_frozen")
    h = _finite([m.get("entropy") for m in val])
    if not h or not band:
        return flags
    h0 = float(band.get("h_init", h[0]))
    if not flags and max(abs(x - h0) for x in h) < MOVE_TOL:
        flags.append("never_moved")
    final, lo, hi = h[-1], float(band["h_min"]), float(band["h_max"])
    if final < lo - max(FAR_BELOW, hi - lo) and final < h0 - MOVE_TOL:  # fell, not merely started, below
        flags.append("collapsed")
    top = band.get("h_top")
    if top is not None and math.isfinite(top) and top > hi \
            and final >= top - max(MOVE_TOL, SATURATED_WITHIN * (top - h0)):
        flags.append("saturated")
    return flags


def explain(flags: Sequence[str], val: Sequence[Mapping[str, object]], band: Mapping[str, float],
            divergence_reason: str = "") -> str:
    """One human line for `flags` ("" for none); `divergence_reason` (`divergence`'s) explains `diverged`."""
    h = _finite([m.get("entropy") for m in val])
    values = {"loss_detail": divergence_reason, "tol": MOVE_TOL,
              "h0": float(band.get("h_init", h[0] if h else math.nan)), "h": h[-1] if h else math.nan,
              "lo": band.get("h_min", math.nan), "hi": band.get("h_max", math.nan), "top": band.get("h_top", math.nan)}
    return "; ".join(EXPLAIN[f].format(**values) for f in flags)
