"""Did a learned augmentation learn? Flags computed from a run's validation records.

A learned distribution can fail silently: its optimiser's learning rate stays 0 for the whole
run (a pretraining phase as long as the run), it never leaves its initialisation, it collapses
(entropy far below the band the entropy controller aims for: ranges of width ~0) or it
saturates (entropy pinned at the family's maximum: the widest distribution the
parameterization can express). The method states its band (`AugmentationMethod.entropy_band`);
the trainer writes the flags into the test record as `diagnosis` and `augbench run` prints them.
A method without a band and without a `phi_lr_factor` log gets no flags.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

FLAGS = ("phi_frozen", "never_moved", "collapsed", "saturated")
#: entropy changes (nats) below this count as "did not move"; also the tolerance at the maximum
MOVE_TOL = 0.05
#: "collapsed": more than max(FAR_BELOW, band width) nats below h_min and below the initial entropy
FAR_BELOW = 1.0

EXPLAIN = {
    "phi_frozen": "phi's learning rate was 0 for the whole run (pretraining covers every epoch)",
    "never_moved": "the distribution never moved from its initialisation (entropy within {tol} nats of {h0:.2f})",
    "collapsed": "the distribution collapsed (entropy {h:.2f} nats, far below the band [{lo:.2f}, {hi:.2f}])",
    "saturated": "the distribution saturated (entropy {h:.2f} nats, at the family's maximum {top:.2f})",
}


def _finite(values: Sequence[object]) -> list[float]:
    return [float(v) for v in values if isinstance(v, (int, float)) and math.isfinite(float(v))]


def diagnose(val: Sequence[Mapping[str, object]], band: Mapping[str, float]) -> list[str]:
    """Flags (subset of `FLAGS`, in that order) for validation metrics `val` (one dict per epoch).

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
    if top is not None and math.isfinite(top) and top > hi and final >= top - MOVE_TOL:
        flags.append("saturated")
    return flags


def explain(flags: Sequence[str], val: Sequence[Mapping[str, object]], band: Mapping[str, float]) -> str:
    """One human line for `flags` ("" for none)."""
    h = _finite([m.get("entropy") for m in val])
    values = {"tol": MOVE_TOL, "h0": float(band.get("h_init", h[0] if h else math.nan)),
              "h": h[-1] if h else math.nan, "lo": band.get("h_min", math.nan), "hi": band.get("h_max", math.nan),
              "top": band.get("h_top", math.nan)}
    return "; ".join(EXPLAIN[f].format(**values) for f in flags)
