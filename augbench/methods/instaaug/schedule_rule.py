"""InstaAug's defaults on data nobody tuned it for: one rule, stated relative to the schedule.

The paper's recipe (SGD at 1e-5 for phi, lambda x1.2 after two epochs outside the band, 10
pretraining epochs of 150) is a recipe for a 150-epoch Tiny-ImageNet run. On a user's own tree
and a short schedule it fails in two ways, measured on real digits (`imagefolder-rotation`,
15 epochs of 20 steps): with phi's Adam at 1e-3 and no pretraining, the entropy reward
outweighs the task loss while the classifier is at chance (mean gradient on phi's raw outputs
-1.4e-3 from lambda H against +1e-5..1e-4 from the loss), the rotation range widens from 43 to
316 degrees in the first epoch and reaches 360 by step 40; there the sigmoid's slope is 1e-4,
so neither term reaches phi again and the range stays at 360 degrees for the rest of the run
while lambda falls tenfold. With SGD at 1e-5, phi does not move at all (Fashion-MNIST).

The rule (the folder benchmarks' recipes, `folder_rule`; `derive` makes it concrete; the
benchmarks give the validation checks it counts in, `benchmarks.base.FOLDER_SCHEDULE`):

- `range_map="linear"`: uniform ranges whose gradient survives at their bounds when the task
  loss asks for a smaller range, and whose entropy reward stops at the group's bound
  (`uniform.RangeMap`). LRP crops are a softmax over candidates, whose gradient does not vanish
  at the uniform distribution; still, once the classifier has adapted to uniform crops the task
  loss gives REINFORCE little to say (one of two Fashion-MNIST seeds of the folder evidence stays
  at 2.77 of log 17 nats after the first epoch of phi: `saturated`).
- `pretrain_fraction=0.1`: the paper's order, the classifier first: phi starts after the
  first tenth of the epochs (at least one; the paper: 10 of 150), when the task loss already
  depends on the transformation, so the entropy reward no longer wins by default.
- phi by Adam at 1e-3: Adam moves each weight by about lr per step whatever the scale of its
  gradient, so phi crosses a range's map (raw +-4) in a number of steps that depends on
  neither the family's units nor the size of its gradients: hundreds of steps, what a short
  schedule has. SGD at 1e-5 scales with gradients that are 1e-3 or less (above): phi stays put.
- `band_fraction`: the entropy band relative to the widest distribution the family expresses,
  so it is reachable at any image size (the paper's 32 px band [2.5, 3.0] lies above the 2.30
  nats of the 10 candidate crops at 28 px: lambda would grow for ever; at 32 px it is the
  maximum of 17, uniform crops). LRP: 0.52-0.61 of log K, where the paper's 64 px optimum
  lies; uniform ranges: 0.1-0.2 of each dimension's widest range, one lambda each (rotation:
  36 to 72 degrees wide, around AutoAugment's widest rotation, +-30 degrees). A user's data
  has no known invariance: the band is a moderate preference, and the task loss narrows a range
  below it where the transformation costs accuracy (the linear map lets it).
- The lambda controller reacts within checks, not epochs: `train.val_checks=4` per epoch,
  lambda x2 or /2 at each check outside the band (patience 1), held while the entropy already
  moves toward the band by more than 0.01 nats per check (the public scheduler's rule), so over
  a 15-epoch run lambda can move by 2^60 and over any single epoch by 16x.

Nothing here is fitted to one dataset: the same values hold for every folder family and were
checked on two real datasets (scikit-learn's digits and Fashion-MNIST; results/folder-real/).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from augbench.errors import ConfigError

#: InstaAug's hyperparameters on the folder benchmarks, whatever the parameterization
FOLDER_RULE: dict[str, Any] = {"range_map": "linear", "pretrain_fraction": 0.1, "optimizer": "adam", "lr": 1e-3,
                               "lambda_factor": 2.0, "lambda_patience": 1, "lambda_hold": 0.01}
#: the entropy band relative to the widest distribution of the family (`band_fraction`): LRP, the
#: paper's 64 px optimum [3.0, 3.5] of log 321 = 5.77 nats (Table E.1); uniform ranges, 0.1 to 0.2
#: of each dimension's widest range, around the widest global range hand-designed policies use
#: (AutoAugment's rotation at its largest magnitude, +-30 degrees: 1/6 of the circle)
BAND_FRACTION: dict[str, list[float]] = {"lrp": [0.52, 0.61], "uniform": [0.1, 0.2]}


def folder_rule(parameterization: str) -> dict[str, Any]:
    """InstaAug's recipe on a folder benchmark of this parameterization (`--set` overrides any value)."""
    band = BAND_FRACTION["lrp" if parameterization == "lrp" else "uniform"]
    return {"parameterization": parameterization, **FOLDER_RULE, "band_fraction": band}



def pretrain_epochs(fraction: float, epochs: int) -> int:
    """Epochs without augmentation for a pretraining `fraction` of `epochs`: rounded up, at least one,
    and at least one epoch left for phi (a one-epoch run, a smoke test, has no pretraining)."""
    return max(0, min(max(1, math.ceil(fraction * epochs - 1e-9)), epochs - 1))


def derive(hp: Mapping[str, Any], settings: Mapping[str, Any]) -> dict[str, Any]:
    """`hp` with `pretrain_epochs` from `pretrain_fraction` of `train.epochs` (unchanged without a fraction)."""
    out = dict(hp)
    fraction = hp.get("pretrain_fraction")
    epochs = settings.get("train.epochs")
    if fraction is None or epochs is None:
        return out
    derived = pretrain_epochs(fraction, int(epochs))
    if hp["pretrain_epochs"] not in (0, derived):
        raise ConfigError(f"instaaug: pretrain_fraction={fraction} gives pretrain_epochs={derived} of "
                          f"train.epochs={epochs}, but pretrain_epochs={hp['pretrain_epochs']} is set too; set one "
                          f"(pretrain_fraction=none to give epochs)")
    out["pretrain_epochs"] = derived
    return out
