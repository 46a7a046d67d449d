"""InstaAug's hyperparameters on each benchmark (`InstaAug.recipes`), applied before the user's overrides.

Why each value is what it is, with the paper's and the public code's, is in docs/recipes.md.
Phi's learning rate, lambda0 and [Hmin, Hmax] that a recipe leaves at None are derived by the
method (by conditioning and input size, `augbench.methods.instaaug.method`).
"""

from __future__ import annotations

from typing import Any

from augbench.methods.instaaug.schedule_rule import folder_rule

#: The paper's schedule for crops: LRP, 10 pretraining epochs, phi by SGD warmed up over 10
#: epochs. phi's lr and lambda0 are the method's by conditioning (phi(x): 1e-5 and 0.2, the
#: paper's; class table: 0.1 and 0.5, the public class-specific config's); [Hmin, Hmax] by input
#: size (64 px: 3.0/3.5, class-specific 3.0/4.0; 32 px: 2.5/3.0).
CROP_PAPER: dict[str, Any] = {"parameterization": "lrp", "pretrain_epochs": 10, "warmup_epochs": 10}

#: The controller on the embedded stand-ins' short CPU schedules: lambda doubles or halves at
#: each check outside the band, and holds while the entropy already moves toward it by more than
#: 0.01 nats per check (the public scheduler's hold, per check). The paper benchmarks keep the
#: public scheduler's rule (x1.2 after two epochs, hold 0.005, cap 50), InstaAug's default.
STAND_IN: dict[str, Any] = {"optimizer": "adam", "lr": 1e-3, "lambda_factor": 2.0, "lambda_patience": 1,
                            "lambda_hold": 0.01}

#: The paper's order on the uniform stand-ins' short schedules, as on the folder benchmarks: the
#: classifier first, phi after the first tenth of the epochs (the paper pretrains 10 of 150). phi
#: starts from the public code's He initialisation, whose wider initial outputs, stepped by Adam
#: at 1e-3 against a classifier at chance, carry the rotation ranges to the whole circle (where
#: the sigmoid map's flat top holds them) within the first epoch: 3 of 4 glyph seeds ended that
#: epoch with 10-34% of their ranges outside the label-preserving interval, none with pretraining.
STAND_IN_ORDER: dict[str, Any] = {"pretrain_fraction": 0.1}

#: LRP crops; layers, prior and [Hmin, Hmax] follow instaaug's defaults for the input size (the
#: embedded stand-in, 32 px).
LRP: dict[str, Any] = {"parameterization": "lrp"}

#: ImageNet (224 px): the public ImageNet config as last committed (config_crop_supervised_imagenet
#: .yaml at 628a6e6; lr 1e-3 since 1054103, prior [0, 7, 0] since 6d2e338, replacing [3, 3, 0] of
#: 01522b0 and [0, 1, 3] of the first commit): phi's lr 1e-3, layers [4, 5, global] with prior
#: [0, 7, 0] (almost all initial mass on layer 5's cells); [Hmin, Hmax] 2.5/3.0 by size. The paper
#: gives neither. It trains phi on 10 crops per image (`train_copies`), their log-probabilities
#: averaged before the loss. Its 10-epoch warm-up is left out: augbench's run has 5 epochs.
IMAGENET_TTA: dict[str, Any] = {"parameterization": "lrp", "lr": 1e-3, "lrp_layers": [4, 5, -1],
                                "lrp_prior": [0.0, 7.0, 0.0], "train_views": 10}

#: The public contrastive run (its config with the README command's --target_entropy 3.7): LRP on
#: layers [3, global] (K = 65 at 64 px) with prior [1, 1]; instead of the dynamic lambda, a penalty
#: 0.3 (mean H - H_target(t))^2 whose target ramps from the initial entropy to 3.7 over the first
#: 100 epochs; phi by plain SGD (no momentum, no weight decay) at 1e-4, frozen (lr 0, crops from
#: its initial distribution) for the first 50 epochs.
CONTRASTIVE_64: dict[str, Any] = {
    "parameterization": "lrp", "lrp_layers": [3, -1], "lrp_prior": [1.0, 1.0], "lambda_rule": "target",
    "target_end": 3.7, "target_epochs": 100.0, "target_weight": 0.3, "lr": 1e-4, "momentum": 0.0,
    "weight_decay": 0.0, "freeze_epochs": 50,
}
#: The same rule at 32 px with instaaug's size defaults, the ramp scaled to the shorter schedule.
CONTRASTIVE_32: dict[str, Any] = {
    "parameterization": "lrp", "lambda_rule": "target", "target_epochs": 6.0, "target_weight": 0.3, "lr": 1e-4,
    "momentum": 0.0, "weight_decay": 0.0,
}

RECIPES: dict[str, dict[str, Any]] = {
    # cropping, the paper's protocol (Table 1) and the same on CIFAR
    "tinyimagenet-crop": CROP_PAPER,
    "cifar10-crop": CROP_PAPER,
    "cifar100-crop": CROP_PAPER,
    # real images nobody tuned InstaAug for: one rule relative to the schedule (`schedule_rule`)
    "imagefolder-crop": folder_rule("lrp"),
    "fashion-mnist-crop": folder_rule("lrp"),
    # the stand-ins' controller, two epochs without augmentation first, about 8 of the 17
    # candidate crops in play (the band [6.4, 10] effective crops)
    "clutter-crop": {"parameterization": "lrp", **STAND_IN, "pretrain_epochs": 2, "target_spread": [8.0]},
    # test-time augmentation for a frozen classifier (Table 2)
    "imagenet-tta": IMAGENET_TTA,
    "clutter-tta": LRP,
    # contrastive learning (Table 5)
    "tinyimagenet-contrastive": CONTRASTIVE_64,
    "clutter-contrastive": CONTRASTIVE_32,
    # rotation: phi by Adam, which learns within the glyphs' 15-epoch CPU schedule, after the
    # classifier's first tenth of the epochs (STAND_IN_ORDER)
    "glyphs-rotation": {"parameterization": "rotation", "optimizer": "adam", "lr": 1e-3, "lambda0": 0.3,
                        "h_min": 1.0, "h_max": 1.15, **STAND_IN_ORDER},
    "imagefolder-rotation": folder_rule("rotation"),
    # colour (Tables 3, 4)
    "rawfoot-color": {"parameterization": "color", "warmup_epochs": 10},  # the public colour config's warm-up
    "imagefolder-color": folder_rule("color"),
    # the stand-ins' controller and a target per HSV dimension, each with its own lambda: ranges
    # 0.3 wide (geometric mean over inputs) in hue turns and in saturation and value fractions. One
    # band on the sum let saturation and value take all of it, leaving hue at its initial width.
    "texture-color": {"parameterization": "color", **STAND_IN, **STAND_IN_ORDER, "target_spread": [0.3]},
}
