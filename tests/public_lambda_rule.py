"""The public InstaAug code's dynamic-lambda rule, transcribed as a test oracle.

The rule of its scheduler and training loop (repository and commit: augbench/data/
public_configs/instaaug.json): after every epoch, each entropy weight is multiplied by its
scheduler's `step(entropy)`. Its behaviour is kept exactly, its arithmetic included (Python
floats, `value > last + 0.005`), so that augbench's `DynamicLambda` can be compared with it
decision by decision:

- state: `mode` (-1 below the band at the previous check, +1 above, 0 inside), the previous
  value `last` (0 at the start) and `status`, the net number of factor steps taken;
- below Hmin: the first check only sets mode -1; at a later consecutive check below, lambda
  grows by `alpha` unless the value rose by more than 0.005 since the previous check, and only
  while status < 50; above Hmax symmetrically; inside the band mode resets to 0;
- `last` is updated at every check.
"""

from __future__ import annotations

from collections.abc import Iterable


class PublicScheduler:
    """One entropy weight's scheduler; `step` returns the factor lambda is multiplied by."""

    def __init__(self, h_min: float, h_max: float, alpha: float = 1.2, max_abs_status: int = 50,
                 hold: float = 0.005) -> None:
        self.h_min, self.h_max = h_min, h_max
        self.alpha, self.max_abs_status, self.hold = alpha, max_abs_status, hold
        self.status = 0
        self.last = 0.0
        self.mode = 0

    def step(self, value: float) -> float:
        action = None
        if value < self.h_min:
            if self.mode != -1:
                self.mode = -1
            elif not value > self.last + self.hold:
                action = "increase"
        elif value > self.h_max:
            if self.mode != 1:
                self.mode = 1
            elif not value < self.last - self.hold:
                action = "decrease"
        else:
            self.mode = 0
        self.last = value
        if action == "increase" and self.status < self.max_abs_status:
            self.status += 1
            return self.alpha
        if action == "decrease" and self.status > -self.max_abs_status:
            self.status -= 1
            return 1.0 / self.alpha
        return 1.0


def public_lambdas(entropies: Iterable[float], lam0: float, h_min: float, h_max: float) -> list[float]:
    """lambda after each epoch's update, as the public training loop computes it."""
    scheduler, lam, out = PublicScheduler(h_min, h_max), lam0, []
    for h in entropies:
        lam *= scheduler.step(float(h))
        out.append(lam)
    return out
