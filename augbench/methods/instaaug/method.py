"""`instaaug`: instance-specific augmentations by capturing local invariances (Miao et al., ICML 2023).

A conditioner gives each input the raw parameters theta of a parameterization p(tau; theta)
(Section 3.1: theta = phi(x)); one classifier forward/backward per step minimises Eq. 2,

    mean_i [ L(f(tau_i(x_i)), y_i) - lambda H[p(tau; theta_i)] ]   (+ REINFORCE for discrete crops)

with lambda adapted from the VALIDATION entropy (Sec. 3.2, `entropy_schedule`).
Parameterizations (`parameterization`, default from the benchmark's family; Sec. 3.3):

- "lrp": location-related crops (`lrp`). A candidate is drawn from the true categorical; the
  gradient reaching theta is the score-function estimator (L_i - b_i) grad log p(k_i | x_i)
  on the DETACHED per-sample losses of the same step, with a baseline b: leave-one-out over
  the views of an input, or an exponential moving average. Where views share a loss
  (contrastive), L_i is the task's credit (`Views.credit`: every loss crop i changes) and b the
  moving average, since the other view's loss depends on crop i. Entropy is exact.
- "crop-uniform" (Table 1 "w/o LRP"), "rotation", "color": uniform ranges (`uniform`) with
  reparameterised samples: the task loss reaches theta through the differentiable transform;
  entropy in closed form.

Conditioning (`conditioning`, Table 1's ablations): "input" (phi(x)), "input-free" (a
learned vector), "class" (a per-class table, with a label-free fallback at test time). Any
conditioning works with any parameterization.

Test-time augmentation (`tta`): "sample" draws n transformations from p(tau; theta) and the
trainer averages logits (Appendix C.2); "topk" (LRP only) takes the n most probable crops (the
public code's rule; its probability averaging with the top crop weighted 0.2 is `combine_views`).

Training copies (`train_views`, the public ImageNet config's `train_copies: 10`): n crops per
training image, their log-probabilities averaged into one prediction before the loss (the code's
rule); each crop is credited with that shared loss (moving-average baseline).

phi's optimizer is SGD with momentum 0.9, weight decay 1e-4 and Nesterov momentum: in the public
code phi is a parameter group of the classifier's Nesterov SGD (the paper gives SGD and phi's lr).

Entropy bounds Hmin/Hmax default by parameterization and input size (None: the
parameterization's `default_entropy_bounds`). `target_spread` states the band in the family's
own units instead (LRP: the effective number of candidate crops exp(H); ranges: the width of
each dimension's range, rotation in degrees), converted to nats by the parameterization; with
one target per dimension of a product of ranges, each dimension gets its own lambda, since a
single band on the sum lets the cheapest dimension (colour: saturation and value) take all of
it while the others stay at their initial width.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from augbench.errors import ConfigError
from augbench.hparams import HParam
from augbench.methods import (
    AugmentationMethod,
    MethodContext,
    StepContext,
    Views,
    build_param_optimizer,
    register_method,
    repeat_views,
)
from augbench.methods.instaaug.conditioning import CONDITIONINGS, build_conditioner
from augbench.methods.instaaug.entropy_schedule import PUBLIC_HOLD, PUBLIC_MAX_STEPS, DynamicLambda, EntropyTarget
from augbench.methods.instaaug.lrp import LRPParameterization
from augbench.methods.instaaug.parameterization import Parameterization
from augbench.methods.instaaug.recipes import RECIPES
from augbench.methods.instaaug.schedule_rule import derive as derive_schedule
from augbench.methods.instaaug.uniform import RANGE_MAPS, uniform_parameterization

#: phi's learning rate and the initial lambda where `lr` / `lambda0` are None, by conditioning. The
#: paper's values are for phi(x) (the input-free vector shares them). A row of the class table gets
#: the gradient of its own class's samples only, about B/C of a batch (1/200 of what a shared
#: parameter gets at Tiny-ImageNet's B = 100, C = 200): at 1e-5 no logit moves by more than ~1e-4
#: in an epoch. The public class-specific config trains the table at 0.1 with lambda0 0.5, which
#: keeps its entropy from collapsing onto the global crop at that speed.
PHI_DEFAULTS = {"lr": 1e-5, "lambda0": 0.2}
CONDITIONING_DEFAULTS = {"class": {"lr": 0.1, "lambda0": 0.5}}


def effective_hparam(hp: Mapping[str, Any], name: str) -> Any:
    """`hp[name]`, or for None the default of `hp["conditioning"]` ("lr", "lambda0")."""
    if hp[name] is not None:
        return hp[name]
    return CONDITIONING_DEFAULTS.get(hp["conditioning"], PHI_DEFAULTS)[name]


FAMILY = {"lrp": "crop", "crop-uniform": "crop", "rotation": "rotation", "color": "color"}  # what each transforms
PARAMETERIZATIONS = tuple(FAMILY)


def build_parameterization(name: str, image_shape: tuple[int, int, int], hp: Mapping[str, Any]) -> Parameterization:
    """The parameterization `name` for images of `image_shape` (C, H, W), from InstaAug's hyperparameters."""
    channels, h, w = image_shape
    if name == "lrp":
        return LRPParameterization((h, w), hp["lrp_layers"], hp["lrp_prior"], hp["lrp_max_outside"], hp["sampler"])
    if name == "color" and channels != 3:
        raise ConfigError(f"instaaug: parameterization=color needs RGB images, got {channels} channels")
    kind = FAMILY[name]  # uniform kinds are named by family
    extra = {"color_max": (hp["hue_max"], hp["saturation_max"], hp["value_max"])} if kind == "color" else {}
    return uniform_parameterization(kind, range_map=hp["range_map"], entropy=hp["entropy"], image_hw=(h, w), **extra)


def choose_parameterization(families: frozenset[str], name: str | None) -> str:
    """`name`, checked against the benchmark's families, or the family's default (crop -> lrp)."""
    if name is None:
        for family, default in (("crop", "lrp"), ("rotation", "rotation"), ("color", "color")):
            if family in families:
                return default
        raise ConfigError(f"instaaug: set parameterization (one of {', '.join(PARAMETERIZATIONS)}); "
                          f"the benchmark family {sorted(families)} has no default")
    if families and FAMILY[name] not in families:
        raise ConfigError(f"instaaug: parameterization={name} transforms {FAMILY[name]!r}, but the benchmark's "
                          f"family is {', '.join(sorted(families))}")
    return name


@register_method("instaaug")
class InstaAug(AugmentationMethod):
    """A conditioner (`self.conditioner`) feeding a parameterization (`self.distribution`), Eq. 2's objective."""

    baseline_ema: Tensor  # buffers, registered in __init__
    baseline_ready: Tensor
    train_entropy_sum: Tensor
    train_entropy_n: Tensor

    families = frozenset({"crop", "rotation", "color"})
    recipes = RECIPES
    #: The paper's configurations by the names its tables give them (Table 1: "InstaAug" is lrp,
    #: "w/o LRP" uniform crops, "w/o input" input-free; Tables 3, 4: uniform colour ranges, the
    #: colour benchmarks' recipe). Choosing one keeps the benchmark's recipe for everything else.
    variants = {
        "input-free": {"conditioning": "input-free"},
        "class-specific": {"conditioning": "class"},
        "lrp": {"parameterization": "lrp"},
        "uniform": {"parameterization": "crop-uniform"},
    }

    hparams = {
        "parameterization": HParam(None, str, choices=PARAMETERIZATIONS, nullable=True,
                                   help="lrp | crop-uniform (w/o LRP) | rotation | color; None: from the "
                                        "benchmark family (crop -> lrp)"),
        "conditioning": HParam("input", str, choices=CONDITIONINGS,
                               help="phi(x), a learned input-free distribution, or a per-class table "
                                    "(Table 1 ablations)"),
        "lrp_layers": HParam(None, int, is_list=True, nullable=True,
                             help="phi layers giving candidates, -1 = whole image; None: by input size "
                                  "([2,3,-1] at 64 px)"),
        "lrp_prior": HParam(None, float, is_list=True, nullable=True,
                            help="initial log-mass per LRP layer; None: by input size ([0,1,3] at 64 px), or 3 on "
                                 "global and 0 elsewhere for custom lrp_layers"),
        "lrp_max_outside": HParam(None, float, low=0.0, high=1.0, nullable=True,
                                  help="drop candidates with more than this fraction outside the image; None: by size"),
        "sampler": HParam("multinomial", str, choices=("multinomial", "gumbel"),
                          help="exact categorical sampler for LRP crops"),
        "baseline": HParam("auto", str, choices=("auto", "loo", "ema", "none"),
                           help="REINFORCE baseline: leave-one-out over views, moving average, none (public code); "
                                "auto: loo when n_views > 1 and each view's loss is its own (supervised), else "
                                "ema (one view, or views sharing a loss: contrastive)"),
        "baseline_decay": HParam(0.9, float, low=0.0, high=1.0, help="decay of the moving-average baseline"),
        "range_map": HParam("sigmoid", str, choices=RANGE_MAPS,
                            help="uniform ranges: raw output -> fraction of the bound; sigmoid (public code) or "
                                 "linear (clamped, its gradient kept at the bounds when it points back inside: a "
                                 "saturated range can come back)"),
        "entropy": HParam("closed", str, choices=("closed", "width"),
                          help="uniform ranges: closed-form entropy (sum log width) or the public code's width proxy"),
        "lambda_rule": HParam("dynamic", str, choices=("dynamic", "fixed", "target"),
                              help="dynamic lambda (Sec. 3.2), fixed lambda0, or the contrastive target penalty"),
        "lambda0": HParam(None, float, low=0.0, nullable=True,
                          help="initial entropy weight; None: 0.2 (paper, cropping), 0.5 with conditioning=class "
                               "(public class-specific config)"),
        "lambda_factor": HParam(1.2, float, low=1.0,
                                help="lambda is multiplied/divided by this when entropy leaves [h_min, h_max]"),
        "lambda_patience": HParam(2, int, low=1, help="consecutive validation checks (train.val_checks per epoch) "
                                                      "outside the bounds before lambda moves"),
        "lambda_hold": HParam(PUBLIC_HOLD, float, low=0.0, nullable=True,
                              help="skip a lambda change while the entropy already moves toward [h_min, h_max] by "
                                   "more than this per check (the public scheduler's 0.005); None: never"),
        "lambda_max_steps": HParam(PUBLIC_MAX_STEPS, int, low=0, nullable=True,
                                   help="cap lambda at this many net factor steps above/below lambda0 (the public "
                                        "scheduler's 50); None: no cap"),
        "h_min": HParam(None, float, nullable=True, help="lower entropy bound (nats); None: by parameterization/size"),
        "h_max": HParam(None, float, nullable=True, help="upper entropy bound (nats); None: by parameterization/size"),
        "target_spread": HParam(None, float, is_list=True, nullable=True,
                                help="the entropy band in the family's own units instead of h_min/h_max: lrp, the "
                                     "effective number of candidate crops exp(H); uniform ranges, the (geometric mean) "
                                     "width of each dimension's range (rotation degrees; hue turns, saturation and "
                                     "value fractions; crop side and centre fractions), one value or one per "
                                     "dimension, each dimension then with its own lambda"),
        "band_fraction": HParam(None, float, is_list=True, nullable=True,
                                help="the entropy band [lo, hi] as fractions of the widest distribution the "
                                     "family expresses: lrp, of log K nats; uniform ranges, of each dimension's "
                                     "widest range (one lambda per dimension); instead of h_min/h_max"),
        "target_tolerance": HParam(1.25, float, low=1.0,
                                   help="target_spread: the band is [spread / tolerance, spread * tolerance]"),
        "target_start": HParam(None, float, nullable=True,
                               help="target rule: initial target entropy; None: entropy of the initial distribution"),
        "target_end": HParam(None, float, nullable=True, help="target rule: final target; None: (h_min + h_max) / 2"),
        "target_epochs": HParam(100.0, float, low=0.0, help="target rule: epochs of the linear ramp"),
        "target_weight": HParam(0.3, float, low=0.0, help="target rule: weight of the squared deviation"),
        "pretrain_epochs": HParam(0, int, low=0, help="epochs without augmentation first (paper, Tiny-ImageNet: 10)"),
        "pretrain_fraction": HParam(None, float, low=0.0, high=1.0, nullable=True,
                                    help="pretraining as a fraction of train.epochs (at least one epoch, rounded "
                                         "up): sets pretrain_epochs at resolve time; None: pretrain_epochs as given"),
        "freeze_epochs": HParam(0, int, low=0,
                                help="epochs after pretraining with phi's lr 0 while views are drawn from its "
                                     "initial distribution (public contrastive code: no_train_period 50)"),
        "warmup_epochs": HParam(0, int, low=0, help="linear warm-up of phi's lr after pretraining and freezing "
                                                    "(public code: 10)"),
        "allow_frozen_phi": HParam(False, bool, identity=False,
                                   help="accept train.epochs <= pretrain_epochs (phi's lr 0 all run: the prior)"),
        "optimizer": HParam("sgd", str, choices=("sgd", "adam"), help="phi's optimizer (paper: SGD)"),
        "lr": HParam(None, float, low=0.0, nullable=True,
                     help="phi's learning rate; None: 1e-5 (paper), 0.1 with conditioning=class (public "
                          "class-specific config: a table row learns only from its own class's samples)"),
        "momentum": HParam(0.9, float, low=0.0, high=1.0),
        "nesterov": HParam(True, bool, help="phi's SGD with Nesterov momentum (the public code's: phi shares the "
                                            "classifier's Nesterov SGD); no effect with momentum 0"),
        "weight_decay": HParam(1e-4, float, low=0.0),
        "train_views": HParam(1, int, low=1,
                              help="crops per training image whose log-probabilities are averaged into one "
                                   "prediction before the loss (public ImageNet config: train_copies 10)"),
        "tta": HParam("sample", str, choices=("sample", "topk"),
                      help="test-time views: samples of p(tau; phi(x)) (C.2) or the top-n LRP crops (public code)"),
        "tta_top_weight": HParam(0.2, float, low=0.0, help="topk: weight of the most probable crop in `combine_views`"),
        "fallback_scale_min": HParam(0.1, float, low=1e-3, high=1.0,
                                     help="class-specific: random-crop area lower bound for test-time views "
                                          "(the paper's random crop: 0.1; public code: 0.2)"),
        "fallback_interpolation": HParam("bilinear", str, choices=("bilinear", "bicubic"),
                                         help="class-specific: resampling of the test-time random crops "
                                              "(public code: bicubic)"),
        "hue_max": HParam(0.5, float, low=0.0, high=0.5, help="colour: largest hue shift, turns"),
        "saturation_max": HParam(0.8, float, low=0.0, high=1.0, help="colour: largest saturation change, fraction"),
        "value_max": HParam(0.8, float, low=0.0, high=1.0, help="colour: largest value change, fraction"),
    }

    @classmethod
    def variant_name(cls, hp: Mapping[str, Any], family: str = "") -> str:
        """As declared, and uniform ranges of any family are "uniform"; parameterization None is the family's."""
        name = super().variant_name(hp, family)
        if name:
            return name
        return "lrp" if hp.get("parameterization") is None and family == "crop" else "uniform"

    @classmethod
    def families_for(cls, hp: Mapping[str, Any]) -> frozenset[str]:
        """The family of the chosen parameterization (None: the benchmark's own, so every family)."""
        name = hp["parameterization"]
        return cls.families if name is None else frozenset({FAMILY[name]})

    derived = {"pretrain_epochs": "pretrain_fraction"}

    @classmethod
    def derive(cls, hp: Mapping[str, Any], settings: Mapping[str, Any]) -> dict[str, Any]:
        """pretrain_epochs from pretrain_fraction of train.epochs (`schedule_rule`)."""
        return derive_schedule(hp, settings)

    @classmethod
    def check(cls, hp: Mapping[str, Any], settings: Mapping[str, Any]) -> None:
        """Refuse a run whose phi never trains: its lr is 0 for every epoch < pretrain_epochs + freeze_epochs."""
        epochs = settings.get("train.epochs")
        still = hp["pretrain_epochs"] + hp["freeze_epochs"]
        if epochs is not None and epochs <= still and not hp["allow_frozen_phi"]:
            raise ConfigError(f"instaaug: train.epochs={epochs} <= pretrain_epochs + freeze_epochs={still}, so phi's "
                              f"learning rate is 0 for the whole run; raise train.epochs, lower those epochs, or "
                              f"set allow_frozen_phi=true")

    def __init__(self, ctx: MethodContext, **hp: Any) -> None:
        super().__init__(ctx, **hp)
        hp = self.hp
        self.parameterization = choose_parameterization(ctx.families, hp["parameterization"])
        self.conditioning = hp["conditioning"]
        self.distribution = build_parameterization(self.parameterization, ctx.image_shape, hp)
        if hp["tta"] not in self.distribution.tta_rules:
            raise ConfigError(f"instaaug: tta={hp['tta']} needs parameterization=lrp (it ranks discrete crops)")
        self.conditioner = build_conditioner(self.conditioning, self.distribution, ctx.image_shape[0],
                                             ctx.num_classes, ctx.image_shape[1:], hp["fallback_scale_min"],
                                             hp["fallback_interpolation"])
        for name, state in self.conditioner.state.items():  # the method's own: `phi.*`, `logit_vector`, ...
            setattr(self, name, state)
        lo, hi = self._bounds()
        self.parts: tuple[str, ...] = self.distribution.entropy_parts if isinstance(lo, list) else ()
        self.h_min: float = sum(lo) if isinstance(lo, list) else lo  # totals: diagnosis, the target rule
        self.h_max: float = sum(hi) if isinstance(hi, list) else hi
        self.phi_lr: float = effective_hparam(hp, "lr")
        self.lambda0: float = effective_hparam(hp, "lambda0")
        self.lam = DynamicLambda(self.lambda0, hp["lambda_factor"], hp["lambda_patience"], lo, hi,
                                 hp["lambda_hold"], hp["lambda_max_steps"])
        end = hp["target_end"] if hp["target_end"] is not None else (self.h_min + self.h_max) / 2
        start = hp["target_start"] if hp["target_start"] is not None else self.distribution.initial_entropy()
        self.target = EntropyTarget(start, end, hp["target_epochs"], hp["target_weight"])
        self.register_buffer("baseline_ema", torch.zeros(()))
        self.register_buffer("baseline_ready", torch.zeros((), dtype=torch.bool))
        self.register_buffer("train_entropy_sum", torch.zeros((len(self.parts),) if self.parts else ()))
        self.register_buffer("train_entropy_n", torch.zeros((), dtype=torch.long))
        self._optimizer: torch.optim.Optimizer | None = None
        self._t = 0.0  # epochs since InstaAug started, for the target rule (derived from the step)
        self._epoch = 0  # the training epoch (`begin_epoch`): no copies while pretraining

    def _bounds(self) -> tuple[float | list[float], float | list[float]]:
        """(Hmin, Hmax): from target_spread (a list per part when the distribution has several
        parts, one lambda each), from h_min/h_max, or the parameterization's defaults."""
        hp, dist = self.hp, self.distribution
        spread, fraction = hp["target_spread"], hp["band_fraction"]
        given = [name for name in ("target_spread", "band_fraction") if hp[name] is not None]
        if given and (hp["h_min"] is not None or hp["h_max"] is not None) or len(given) > 1:
            raise ConfigError(f"instaaug: set one of target_spread, band_fraction or h_min/h_max (got "
                              f"{', '.join(given + [n for n in ('h_min', 'h_max') if hp[n] is not None])})")
        if fraction is not None:
            if len(fraction) != 2 or not 0 < fraction[0] <= fraction[1] <= 1:
                raise ConfigError(f"instaaug: band_fraction is [lo, hi] with 0 < lo <= hi <= 1, got {list(fraction)}")
            lo_parts, hi_parts = dist.fraction_entropy(fraction[0]), dist.fraction_entropy(fraction[1])
            return (lo_parts, hi_parts) if len(lo_parts) > 1 else (lo_parts[0], hi_parts[0])
        if spread is None:
            h_min, h_max = dist.default_entropy_bounds(self.conditioning)
            return (hp["h_min"] if hp["h_min"] is not None else h_min,
                    hp["h_max"] if hp["h_max"] is not None else h_max)
        parts = dist.entropy_parts
        if len(spread) == 1:
            spread = spread * len(parts)
        if len(spread) != len(parts):
            raise ConfigError(f"instaaug: target_spread needs 1 or {len(parts)} values ({', '.join(parts)}: "
                              f"{dist.spread_units}), got {list(hp['target_spread'])}")
        tol = hp["target_tolerance"]
        lo = dist.spread_entropy([v / tol for v in spread])
        hi = dist.spread_entropy([v * tol for v in spread])
        return (lo, hi) if len(parts) > 1 else (lo[0], hi[0])

    def raw(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """theta (B, n_raw) of a batch: LRP logits or raw range outputs (labels for class conditioning)."""
        return self.conditioner(x, y)

    # ------------------------------------------------------------------ training
    def _pretraining(self, ctx: StepContext) -> bool:
        return ctx.training and ctx.epoch < self.hp["pretrain_epochs"]

    def sample(self, x: Tensor, ctx: StepContext, n_views: int = 1) -> Views:
        if self._pretraining(ctx):
            return Views(repeat_views(x, n_views), n_views)
        if ctx.training:
            steps = max(self.ctx.steps_per_epoch, 1)
            self._t = ctx.step / steps - self.hp["pretrain_epochs"]
        return self.distribution.sample(x, self.conditioner(x, ctx.y), n_views)

    @torch.no_grad()
    def _baseline(self, loss: Tensor, n_views: int, shared: bool = False) -> Tensor:
        """b per view (V*B,): leave-one-out mean of the other views, or the moving average before this step.

        Unbiased only if b of a view does not depend on that view's transformation. With `shared`
        (the views' losses share their transformations: contrastive credits) the other views'
        credits do, so "auto" takes the moving average there, and "loo" is refused.
        """
        mode = self.hp["baseline"]
        if mode == "auto":
            mode = "loo" if n_views > 1 and not shared else "ema"
        if mode == "none":
            return torch.zeros_like(loss)
        if mode == "loo":
            if n_views < 2:
                raise ConfigError("instaaug: baseline=loo needs n_views > 1; use ema or auto")
            if shared:
                raise ConfigError("instaaug: baseline=loo is biased when the views share a loss (contrastive: "
                                  "the other view's loss depends on this view's crop); use ema or auto")
            per = loss.view(n_views, -1)
            return ((per.sum(0, keepdim=True) - per) / (n_views - 1)).reshape(-1)
        b = torch.where(self.baseline_ready, self.baseline_ema, torch.zeros_like(self.baseline_ema))
        decay = self.hp["baseline_decay"]
        mean = loss.mean().to(self.baseline_ema.dtype)
        self.baseline_ema.copy_(torch.where(self.baseline_ready, decay * self.baseline_ema + (1 - decay) * mean, mean))
        self.baseline_ready.fill_(True)
        return b.to(loss.dtype).expand_as(loss)

    def objective(self, per_sample_loss: Tensor, views: Views) -> tuple[Tensor, dict[str, Tensor]]:
        """Eq. 2 (or the target penalty), plus the score-function term when the views carry log p."""
        loss = per_sample_loss.mean()
        logs: dict[str, Tensor] = {}
        if views.entropy is None:  # pretraining: identity views, phi untouched
            return loss, logs
        mean_h = views.entropy.mean()
        parts = self.distribution.part_entropies(views).mean(0) if self.parts else None  # (P,)
        with torch.no_grad():
            self.train_entropy_sum += (views.entropy.sum() if parts is None else parts * len(views.entropy)).detach()
            self.train_entropy_n += views.entropy.numel()
        if self.hp["lambda_rule"] == "target":
            loss = loss + self.target.penalty(mean_h, self._t)
            logs["entropy_target"] = torch.tensor(self.target.target(self._t))
        elif parts is not None:  # one lambda per part (target_spread per dimension)
            loss = loss - (self.lam.lam.to(parts.dtype) * parts).sum()
        else:
            loss = loss - self.lam.lam * mean_h
        logs["lambda"] = self.lam.lam.detach().float().mean()
        logs.update({f"lambda_{name}": self.lam.lam[i].detach().clone() for i, name in enumerate(self.parts)})
        logs["entropy"] = mean_h.detach()
        if views.log_prob is not None:  # REINFORCE on the detached losses of this very forward pass
            credit = views.credit  # the task's: every loss each view's choice changes (None: its own)
            detached = (per_sample_loss if credit is None else credit).detach()
            copies = views.log_prob.numel() // detached.numel()  # `train_views` crops share each loss
            if copies > 1:
                detached = detached.repeat(copies)
            advantage = detached - self._baseline(detached, views.n_views, shared=credit is not None or copies > 1)
            loss = loss + (advantage * views.log_prob).mean()
            logs["advantage_std"] = advantage.std() if advantage.numel() > 1 else advantage.abs().mean()
        logs.update(self.distribution.step_logs(views))
        return loss, logs

    def train_copies(self) -> int:
        """`train_views`, 1 while pretraining (identity views)."""
        return 1 if self._epoch < self.hp["pretrain_epochs"] else int(self.hp["train_views"])

    def combine_train_copies(self, outs: Tensor) -> Tensor:
        """The public code's rule: the mean log-probability over the crops (the loss then re-normalises it)."""
        return torch.log_softmax(outs, -1).mean(0)

    def make_optimizer(self) -> torch.optim.Optimizer | None:
        self._optimizer = build_param_optimizer(list(self.parameters()), {**self.hp, "lr": self.phi_lr})
        return self._optimizer

    # ------------------------------------------------------------------ schedules
    def lr_factor(self, epoch: int) -> float:
        """phi's lr multiplier at `epoch`: 0 while pretraining and frozen, then a linear warm-up to 1."""
        start = self.hp["pretrain_epochs"] + self.hp["freeze_epochs"]
        if epoch < start:
            return 0.0
        warm = self.hp["warmup_epochs"]
        return 1.0 if warm == 0 else min(1.0, (epoch - start + 1) / warm)

    def begin_epoch(self, epoch: int) -> None:
        self._epoch = epoch
        if self._optimizer is not None:  # idempotent: the lr is a function of the epoch alone
            for group in self._optimizer.param_groups:
                group["lr"] = self.phi_lr * self.lr_factor(epoch)

    def validation_check(self, epoch: int, val_stats: Mapping[str, float]) -> dict[str, float]:
        """The dynamic lambda's step from this check's validation entropy (per part with per-part targets)."""
        logs: dict[str, float] = {}
        if self.hp["lambda_rule"] == "dynamic" and epoch >= self.hp["pretrain_epochs"]:
            keys = [f"entropy_{name}" for name in self.parts] or ["entropy"]
            entropy: list[float] | None = [val_stats[k] for k in keys] if all(k in val_stats for k in keys) else None
            if entropy is None and int(self.train_entropy_n) > 0:  # no validation split: training mean
                entropy = (self.train_entropy_sum / self.train_entropy_n).reshape(-1).tolist()
            if entropy is not None and all(math.isfinite(h) for h in entropy):
                logs.update(self.lam.update(torch.tensor(entropy) if self.parts else entropy[0]))
        logs["lambda"] = self.lam.value
        logs.update({f"lambda_{name}": float(self.lam.lam[i]) for i, name in enumerate(self.parts)})
        self.train_entropy_sum.zero_()
        self.train_entropy_n.zero_()
        return logs

    def end_epoch(self, epoch: int, val_stats: Mapping[str, float]) -> dict[str, float]:
        return {**self.validation_check(epoch, val_stats), "phi_lr_factor": self.lr_factor(epoch)}

    def selectable(self, epoch: int) -> bool:
        """Pretraining epochs report the prior, not InstaAug: never select them."""
        return epoch >= self.hp["pretrain_epochs"]

    @torch.no_grad()
    def entropy_band(self) -> dict[str, float]:
        """[h_min, h_max], the entropy at init and the family's maximum (saturating raw outputs)."""
        n, big = self.distribution.n_raw, 30.0
        signs = [torch.ones(n), torch.tensor([1.0, -1.0]).repeat((n + 1) // 2)[:n]]
        raws = torch.stack([s * big for s in signs] + [-s * big for s in signs])
        top = float(self.distribution.entropy(raws).max())
        return {"h_min": float(self.h_min), "h_max": float(self.h_max),
                "h_init": self.distribution.initial_entropy(), "h_top": top}

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def test_views(self, x: Tensor, n_views: int, ctx: StepContext) -> Tensor:
        return self.conditioner.test_views(x, ctx.y, n_views, self.distribution, self.hp["tta"])

    def combine_views(self, logits: Tensor) -> Tensor:
        """Combine test-time outputs (V, B, C) as the `tta` rule says -> (B, C).

        "sample": mean logit (C.2). "topk": the public code's rule, probabilities averaged with
        the first (most probable) view weighted `tta_top_weight`, returned as log-probabilities.
        """
        if self.hp["tta"] == "sample":
            return logits.mean(0)
        w = torch.ones(logits.shape[0], device=logits.device, dtype=logits.dtype)
        w[0] = self.hp["tta_top_weight"]
        probs = (w.view(-1, 1, 1) * logits.softmax(-1)).sum(0) / w.sum()
        return probs.clamp_min(1e-12).log()

    @torch.no_grad()
    def inspect(self, x: Tensor, ctx: StepContext) -> dict[str, Tensor]:
        """entropy (B,); LRP: crop_probs (B, K), mass_<layer> (B,); uniform: <dim>_range (B, 2);
        crop parameterizations: crop_boxes (B, 8, 4), boxes sampled as at test time. Without
        labels, class-specific InstaAug reports class averages (and its fallback's crops)."""
        return self.conditioner.inspect(x, ctx.y, self.distribution)

    def inspect_constants(self) -> dict[str, Tensor]:
        """LRP: "candidate_boxes" (K, 4), the candidates of "crop_probs"' columns."""
        return self.distribution.constants()
