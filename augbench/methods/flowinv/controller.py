"""The entropy controller of FlowInv's public rotation experiments (Mario-Iggy, MNIST): alpha by a PID loop.

Each training step the step's entropy estimate -mean log g is smoothed by a moving average
(smoothing 0.9), smoothed again inside the controller, and compared with the middle of the
target band [h_min, h_max]; alpha = clip(kp err + ki sum(err) + kd d(err), alpha_min,
alpha_max), itself smoothed (0.9), with the error sum starting at 10, as in the public code.
The value used at a step is the one computed after the previous step; before the first update
alpha is alpha_min. All state lives in buffers, so checkpoints resume it exactly.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

SMOOTHING = 0.9  # every moving average: new = (1 - s) value + s old
INTEGRAL_INIT = 10.0


class EntropyController(nn.Module):
    """alpha from the entropy of recent steps; `update` after each step, `alpha` for the next."""

    state: Tensor  # (entropy EMA, controller input EMA, output EMA, error sum, last error, alpha)
    ready: Tensor  # (entropy EMA, input EMA, output EMA, last error) have a value

    def __init__(self, h_min: float, h_max: float, gains: tuple[float, float, float],
                 alpha_min: float, alpha_max: float) -> None:
        super().__init__()
        self.target = (h_min + h_max) / 2
        self.kp, self.ki, self.kd = gains
        self.alpha_min, self.alpha_max = alpha_min, alpha_max
        self.register_buffer("state", torch.tensor([0.0, 0.0, 0.0, INTEGRAL_INIT, 0.0, alpha_min], dtype=torch.float64))
        self.register_buffer("ready", torch.zeros(4, dtype=torch.bool))

    @property
    def alpha(self) -> float:
        return float(self.state[5])

    def _ema(self, slot: int, value: float) -> float:
        if bool(self.ready[slot]):
            value = (1 - SMOOTHING) * value + SMOOTHING * float(self.state[slot])
        self.state[slot] = value
        self.ready[slot] = True
        return value

    @torch.no_grad()
    def update(self, entropy: float) -> float:
        """One step of the loop from this step's entropy estimate; returns the new alpha."""
        value = self._ema(1, self._ema(0, entropy))
        error = self.target - value
        self.state[3] += error
        derivative = error - float(self.state[4]) if bool(self.ready[3]) else 0.0
        self.state[4] = error
        self.ready[3] = True
        out = self.kp * error + self.ki * float(self.state[3]) + self.kd * derivative
        out = min(max(out, self.alpha_min), self.alpha_max)
        self.state[5] = min(max(self._ema(2, out), self.alpha_min), self.alpha_max)
        return self.alpha
