"""How InstaAug weighs its entropy term: the dynamic lambda of Section 3.2 and the contrastive target rule.

Eq. 2 minimises E[L(f(tau(x)), y) - lambda H[p(tau; phi(x))]]. A fixed lambda either lets the
entropy collapse (small lambda) or explode while the classifier is weak (large lambda) (paper,
Appendix B and E.2), so lambda is adapted at each validation check from the mean entropy on
the VALIDATION split (the public code used the test set). The paper checks once per epoch;
`train.val_checks` checks more often, so that patience and factor, counted in checks, give a
5-epoch run the same reaction time as a 150-epoch one:

- below Hmin for `patience` consecutive checks: lambda *= factor;
- above Hmax for `patience` consecutive checks: lambda /= factor;
- inside [Hmin, Hmax]: both counters reset.

As in the public scheduler, once the condition has held for `patience` checks lambda moves at
every further check the condition still holds. State lives in buffers, so checkpoints carry it.

Two rules of the public scheduler (the rule behind the paper's numbers) that the paper does not
state are on by default, with the public values: `hold` skips a change while the entropy already
moves toward the band by more than `hold` nats since the previous check (0.005 per epoch: it
keeps lambda from winding up while phi is still catching up with it; without it an entropy that
rises 0.01 per epoch from 1.0 toward [3.0, 3.5] drives lambda from 0.2 to ~1e11 in 150 epochs),
and `max_steps` caps lambda at that many net factor steps above or below lambda0 (50). With
the defaults lambda makes the public code's decision at every check of any entropy sequence (the
comparison `h > last + hold` is the code's, in float64; lambda itself is kept in float32); None
turns either rule off.

The public contrastive runs use another rule instead: a penalty
0.3 * (mean H - H_target(t))^2 whose target is ramped linearly over the first N epochs.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from augbench.errors import ConfigError

#: The public scheduler's hold (nats per check) and cap (net factor steps): DynamicLambda's defaults.
PUBLIC_HOLD = 0.005
PUBLIC_MAX_STEPS = 50


class DynamicLambda(nn.Module):
    """lambda with the paper's multiplicative, patience-gated updates (buffers: lam, below, above).

    Scalar bounds give one lambda on the total entropy (the paper). Sequences of bounds give one
    lambda per additive part of the entropy (one per transformation dimension of a product of
    uniform ranges), each kept inside its own band by the same rule: a target per dimension
    (`target_spread`) then holds even when one dimension is cheaper to widen than another.
    Each update is one validation check: once per epoch in the paper; `train.val_checks` per
    epoch lets a short schedule react in time with the same patience and factor.
    """

    lam: Tensor
    below: Tensor
    above: Tensor
    last: Tensor  # only with `hold` (float64: the hold compares entropies as the public code does)
    steps: Tensor  # only with `max_steps`

    def __init__(self, lam0: float, factor: float = 1.2, patience: int = 2, h_min: float | Sequence[float] = 3.0,
                 h_max: float | Sequence[float] = 3.5, hold: float | None = PUBLIC_HOLD,
                 max_steps: int | None = PUBLIC_MAX_STEPS) -> None:
        super().__init__()
        lo, hi = torch.as_tensor(h_min, dtype=torch.float64), torch.as_tensor(h_max, dtype=torch.float64)
        if lo.shape != hi.shape or lo.dim() > 1:
            raise ConfigError(f"entropy bounds: h_min {lo.tolist()} and h_max {hi.tolist()} differ in shape")
        if bool((lo > hi).any()):
            raise ConfigError(f"entropy bounds: h_min={lo.tolist()} exceeds h_max={hi.tolist()}")
        if factor < 1.0 or patience < 1:
            raise ConfigError(f"dynamic lambda needs factor >= 1 and patience >= 1, got {factor}, {patience}")
        self.factor, self.patience = float(factor), int(patience)
        self.h_min, self.h_max = lo, hi  # () or (D,): the shape of every buffer
        shape = lo.shape
        self.register_buffer("lam", torch.full(shape, float(lam0)))
        self.register_buffer("below", torch.zeros(shape, dtype=torch.long))
        self.register_buffer("above", torch.zeros(shape, dtype=torch.long))
        # the options' state only when they are on, so default checkpoints keep their keys
        self.hold, self.max_steps = hold, max_steps
        if hold is not None:
            self.register_buffer("last", torch.full(shape, float("nan"), dtype=torch.float64))  # previous check
        if max_steps is not None:
            self.register_buffer("steps", torch.zeros(shape, dtype=torch.long))  # net factor steps taken

    @property
    def value(self) -> float:
        """lambda (the mean over parts when there is one per part)."""
        return float(self.lam.float().mean())

    @torch.no_grad()
    def update(self, entropy: float | Tensor) -> dict[str, float]:
        """One check's step from the mean validation entropy (one per part); returns what to log."""
        # the decision on the CPU (a few numbers), the buffers updated in place wherever they live
        h = torch.as_tensor(entropy, dtype=torch.float64).cpu().reshape(self.h_min.shape)
        below, above = h < self.h_min, h > self.h_max
        n_below = torch.where(below, self.below.cpu() + 1, 0)
        n_above = torch.where(above, self.above.cpu() + 1, 0)
        self.below.copy_(n_below)
        self.above.copy_(n_above)
        up = below & (n_below >= self.patience)
        down = above & (n_above >= self.patience)
        if self.hold is not None:  # e.g. below the band but risen by more than `hold` since the last check
            last = self.last.cpu().double()  # NaN at the first check: never holds
            up &= ~(h > last + self.hold)
            down &= ~(h < last - self.hold)
            self.last.copy_(h)
        if self.max_steps is not None:
            steps = self.steps.cpu()
            up &= steps < self.max_steps
            down &= -steps < self.max_steps
            self.steps.add_((up.long() - down.long()).to(self.steps.device))
        direction = (up.double() - down.double()).to(self.lam.device)
        self.lam.mul_(torch.pow(self.factor, direction).to(self.lam.dtype))
        return {"lambda": self.value}


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
