"""How InstaAug weighs its entropy term: the dynamic lambda of Section 3.2 and the contrastive target rule.

Eq. 2 minimises E[L(f(tau(x)), y) - lambda H[p(tau; phi(x))]]. A fixed lambda either lets the
entropy collapse (small lambda) or explode while the classifier is weak (large lambda) (paper,
Appendix B and E.2), so lambda is adapted once per epoch from the mean entropy on the
VALIDATION split (the public code used the test set):

- below Hmin for `patience` consecutive epochs: lambda *= factor;
- above Hmax for `patience` consecutive epochs: lambda /= factor;
- inside [Hmin, Hmax]: both counters reset.

As in the public scheduler, once the condition has held for `patience` epochs lambda moves at
every further epoch the condition still holds. State lives in buffers, so checkpoints carry it.

Two rules of the public scheduler that the paper does not state are options, off by default:
`hold` skips a change while the entropy already moves toward the band by more than `hold`
nats since the previous epoch (public: 0.005), and `max_steps` caps lambda at that many net
factor steps above or below lambda0 (public: 50).

The public contrastive runs use another rule instead: a penalty
0.3 * (mean H - H_target(t))^2 whose target is ramped linearly over the first N epochs.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from augbench.errors import ConfigError


class DynamicLambda(nn.Module):
    """lambda with the paper's multiplicative, patience-gated updates (buffers: lam, below, above)."""

    lam: Tensor
    below: Tensor
    above: Tensor
    last: Tensor  # only with `hold`
    steps: Tensor  # only with `max_steps`

    def __init__(self, lam0: float, factor: float = 1.2, patience: int = 2, h_min: float = 3.0,
                 h_max: float = 3.5, hold: float | None = None, max_steps: int | None = None) -> None:
        super().__init__()
        if h_min > h_max:
            raise ConfigError(f"entropy bounds: h_min={h_min} exceeds h_max={h_max}")
        if factor < 1.0 or patience < 1:
            raise ConfigError(f"dynamic lambda needs factor >= 1 and patience >= 1, got {factor}, {patience}")
        self.factor, self.patience, self.h_min, self.h_max = float(factor), int(patience), float(h_min), float(h_max)
        self.register_buffer("lam", torch.tensor(float(lam0)))
        self.register_buffer("below", torch.tensor(0, dtype=torch.long))
        self.register_buffer("above", torch.tensor(0, dtype=torch.long))
        # the options' state only when they are on, so default checkpoints keep their keys
        self.hold, self.max_steps = hold, max_steps
        if hold is not None:
            self.register_buffer("last", torch.tensor(float("nan")))  # previous epoch's entropy
        if max_steps is not None:
            self.register_buffer("steps", torch.tensor(0, dtype=torch.long))  # net factor steps taken

    @property
    def value(self) -> float:
        return float(self.lam)

    @torch.no_grad()
    def update(self, entropy: float) -> dict[str, float]:
        """One epoch's step from the epoch's mean validation entropy; returns what to log."""
        if entropy < self.h_min:
            self.below += 1
            self.above.zero_()
            if int(self.below) >= self.patience:
                self._move(1, entropy)
        elif entropy > self.h_max:
            self.above += 1
            self.below.zero_()
            if int(self.above) >= self.patience:
                self._move(-1, entropy)
        else:
            self.below.zero_()
            self.above.zero_()
        if self.hold is not None:
            self.last.fill_(entropy)
        return {"lambda": self.value}

    def _move(self, direction: int, entropy: float) -> None:
        """lambda * factor^direction, unless an option holds it (entropy already moving back, or the cap)."""
        if self.hold is not None and direction * (entropy - float(self.last)) > self.hold:
            return  # e.g. below the band but risen by more than `hold` since the last epoch (NaN: never)
        if self.max_steps is not None:
            if direction * int(self.steps) >= self.max_steps:
                return
            self.steps += direction
        if direction > 0:
            self.lam.mul_(self.factor)
        else:
            self.lam.div_(self.factor)


class EntropyTarget:
    """Contrastive rule: penalty weight * (mean H - H_target(t))^2, target ramped over `epochs`.

    H_target(t) = start + (end - start) * min(1, t / epochs), t in (fractional) epochs since
    InstaAug started (after any pretraining). Stateless: t comes from the step counter.
    """

    def __init__(self, start: float, end: float, epochs: float, weight: float = 0.3) -> None:
        if epochs < 0:
            raise ConfigError(f"entropy target ramp: epochs must be >= 0, got {epochs}")
        self.start, self.end, self.epochs, self.weight = float(start), float(end), float(epochs), float(weight)

    def target(self, t: float) -> float:
        """H_target at `t` epochs."""
        frac = 1.0 if self.epochs == 0 else min(max(t / self.epochs, 0.0), 1.0)
        return self.start + (self.end - self.start) * frac

    def penalty(self, mean_entropy: Tensor, t: float) -> Tensor:
        """weight * (mean H - H_target(t))^2, differentiable in the mean entropy."""
        return self.weight * (mean_entropy - self.target(t)) ** 2
