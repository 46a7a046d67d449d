"""InstaAug (Miao et al., ICML 2023): a parameterization, a conditioner, and the method composing them.

- `method`: the registered `instaaug` method: Eq. 2's objective, REINFORCE for discrete
  crops, pretraining and warm-up, test-time augmentation.
- `parameterization`: the interface of p(tau; theta) (sample, entropy, inspect, test views).
- `lrp`: location-related crops (candidate geometry, phi's CNN, `LRPParameterization`).
- `uniform`: uniform ranges for crops, rotation and colour (`UniformRanges`: one class per kind).
- `conditioning`: where theta comes from: phi(x), a learned vector, or a per-class table.
- `entropy_schedule`: the dynamic lambda of Sec. 3.2 and the contrastive target rule.
- `schedule_rule`: the defaults on data nobody tuned for (the folder benchmarks), stated
  relative to the schedule.
"""

from augbench.methods.instaaug.method import (
    FAMILY,
    PARAMETERIZATIONS,
    InstaAug,
    build_parameterization,
    choose_parameterization,
)
from augbench.methods.instaaug.parameterization import INSPECT_SAMPLES, Parameterization

__all__ = ["FAMILY", "INSPECT_SAMPLES", "InstaAug", "PARAMETERIZATIONS", "Parameterization",
           "build_parameterization", "choose_parameterization"]
