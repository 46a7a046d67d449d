"""`instaaug`: instance-specific augmentations by capturing local invariances (Miao et al., ICML 2023).

phi(x) parameterizes p(tau; phi(x)); one classifier forward/backward per step minimises Eq. 2,

    mean_i [ L(f(tau_i(x_i)), y_i) - lambda H[p(tau; phi(x_i))] ]   (+ REINFORCE for discrete crops)

with lambda adapted from the VALIDATION entropy (entropy_schedule.py). Parameterizations
(`parameterization`, default from the benchmark's family):

- "lrp": location-related parameterization of crops (lrp.py). A candidate is drawn from the
  true categorical; phi's gradient is the score-function estimator
  (L_i - b_i) grad log p(k_i | x_i) on the DETACHED per-sample losses of the same step, with a
  baseline b: leave-one-out over the views of an input, or an exponential moving average.
  Entropy is exact.
- "crop-uniform" (Table 1 "w/o LRP"), "rotation", "color": uniform ranges (uniform.py) with
  reparameterised samples: the task loss reaches phi through the differentiable transform;
  entropy in closed form.

Ablations (`conditioning`): "input" (phi is a CNN of x), "input-free" (the same distribution
family, a learned parameter vector shared by every input), "class" (a num_classes x K table of
logits, or of raw ranges, indexed by the label; +5 on the global crop at init). Labels are
unknown at test time, so class-specific test-time augmentation falls back to random resized
crops (crop family) or to a uniformly drawn class's range (rotation/colour), and `inspect`
reports the class average.

Test-time augmentation (`tta`): "sample" draws n transformations from p(tau; phi(x)) and the
trainer averages logits (Appendix C.2); "topk" (LRP only) takes the n most probable crops (the
public code's rule; its probability averaging with the top crop weighted 0.2 is `combine_views`).

Entropy bounds Hmin/Hmax default by parameterization and input size (None = this table):
LRP <= 48 px 2.5/3.0 (CIFAR), <= 128 px 3.0/3.5 (Tiny-ImageNet; class-specific 3.0/4.0),
larger 2.5/3.0 (ImageNet), all from the paper/public configs; rotation 1.0/1.15 (tuned on
glyphs-rotation: the label-preserving interval has width pi, log pi = 1.14); colour -4.5/-3.5
and crop-uniform -1.5/-0.5 (not from the paper: set them per benchmark); with
`entropy="width"` (0, inf), i.e. lambda stays at lambda0, like the public rotation config.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from augbench.errors import ConfigError
from augbench.hparams import HParam
from augbench.methods import (AugmentationMethod, MethodContext, StepContext, Views, build_param_optimizer,
                              register_method, repeat_views)
from augbench.methods.entropy_schedule import DynamicLambda, EntropyTarget
from augbench.methods.lrp import (GLOBAL, CandidateSet, LRPNet, build_candidates, categorical_entropy,
                                  crop_candidates, default_lrp_config, layer_mass, prior_logits, sample_categorical)
from augbench.methods.random_crop import sample_resized_crop_boxes
from augbench.methods.uniform import UniformNet, UniformParameterization, rsample_uniform, uniform_entropy
from augbench.transforms.geometry import crop

PARAMETERIZATIONS = ("lrp", "crop-uniform", "rotation", "color")
FAMILY = {"lrp": "crop", "crop-uniform": "crop", "rotation": "rotation", "color": "color"}
CLASS_GLOBAL_INIT = 5.0  # class-specific table: +5 on the global crop (public code)
INSPECT_SAMPLES = 8  # sampled crops per input that `inspect` reports ("crop_boxes")


def default_entropy_bounds(parameterization: str, conditioning: str, image_hw: tuple[int, int],
                           entropy: str = "closed") -> tuple[float, float]:
    """(Hmin, Hmax) when the user sets none; see the module docstring for where each comes from."""
    if entropy == "width" and parameterization != "lrp":
        return 0.0, math.inf
    if parameterization == "lrp":
        side = min(image_hw)
        if side <= 48:
            return 2.5, 3.0
        if side <= 128:
            return (3.0, 4.0) if conditioning == "class" else (3.0, 3.5)
        return 2.5, 3.0
    return {"rotation": (1.0, 1.15), "color": (-4.5, -3.5), "crop-uniform": (-1.5, -0.5)}[parameterization]


@register_method("instaaug")
class InstaAug(AugmentationMethod):
    """InstaAug with LRP crops or uniform ranges; ablations and schedules as hyperparameters."""

    families = frozenset({"crop", "rotation", "color"})
    hparams = {
        "parameterization": HParam(None, str, choices=PARAMETERIZATIONS, nullable=True,
                                   help="lrp | crop-uniform (w/o LRP) | rotation | color; None: from the "
                                        "benchmark family (crop -> lrp)"),
        "conditioning": HParam("input", str, choices=("input", "input-free", "class"),
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
                                "auto: loo when n_views > 1, else ema"),
        "baseline_decay": HParam(0.9, float, low=0.0, high=1.0, help="decay of the moving-average baseline"),
        "entropy": HParam("closed", str, choices=("closed", "width"),
                          help="uniform ranges: closed-form entropy (sum log width) or the public code's width proxy"),
        "lambda_rule": HParam("dynamic", str, choices=("dynamic", "fixed", "target"),
                              help="dynamic lambda (Sec. 3.2), fixed lambda0, or the contrastive target penalty"),
        "lambda0": HParam(0.2, float, low=0.0, help="initial entropy weight (paper: 0.2 for cropping)"),
        "lambda_factor": HParam(1.2, float, low=1.0,
                                help="lambda is multiplied/divided by this when entropy leaves [h_min, h_max]"),
        "lambda_patience": HParam(2, int, low=1, help="consecutive epochs outside the bounds before lambda moves"),
        "h_min": HParam(None, float, nullable=True, help="lower entropy bound (nats); None: by parameterization/size"),
        "h_max": HParam(None, float, nullable=True, help="upper entropy bound (nats); None: by parameterization/size"),
        "target_start": HParam(None, float, nullable=True,
                               help="target rule: initial target entropy; None: entropy of the initial distribution"),
        "target_end": HParam(None, float, nullable=True, help="target rule: final target; None: (h_min + h_max) / 2"),
        "target_epochs": HParam(100.0, float, low=0.0, help="target rule: epochs of the linear ramp"),
        "target_weight": HParam(0.3, float, low=0.0, help="target rule: weight of the squared deviation"),
        "pretrain_epochs": HParam(0, int, low=0, help="epochs without augmentation first (paper, Tiny-ImageNet: 10)"),
        "warmup_epochs": HParam(0, int, low=0, help="linear warm-up of phi's lr after pretraining (paper: 10)"),
        "optimizer": HParam("sgd", str, choices=("sgd", "adam"), help="phi's optimizer (paper: SGD)"),
        "lr": HParam(1e-5, float, low=0.0, help="phi's learning rate (paper: 1e-5)"),
        "momentum": HParam(0.9, float, low=0.0, high=1.0),
        "weight_decay": HParam(1e-4, float, low=0.0),
        "tta": HParam("sample", str, choices=("sample", "topk"),
                      help="test-time views: samples of p(tau; phi(x)) (C.2) or the top-n LRP crops (public code)"),
        "tta_top_weight": HParam(0.2, float, low=0.0, help="topk: weight of the most probable crop in `combine_views`"),
        "fallback_scale_min": HParam(0.1, float, low=1e-3, high=1.0,
                                     help="class-specific: random-crop area lower bound for test-time views"),
        "hue_max": HParam(0.5, float, low=0.0, high=0.5, help="colour: largest hue shift, turns"),
        "saturation_max": HParam(0.8, float, low=0.0, high=1.0, help="colour: largest saturation change, fraction"),
        "value_max": HParam(0.8, float, low=0.0, high=1.0, help="colour: largest value change, fraction"),
    }

    def __init__(self, ctx: MethodContext, **hp: Any) -> None:
        super().__init__(ctx, **hp)
        hp = self.hp
        self.parameterization = self._choose_parameterization(ctx, hp["parameterization"])
        self.conditioning = hp["conditioning"]
        if self.conditioning == "class":
            self.needs = frozenset({"labels"})
        channels, h, w = ctx.image_shape
        self.image_hw = (h, w)
        if hp["tta"] == "topk" and self.parameterization != "lrp":
            raise ConfigError("instaaug: tta=topk needs parameterization=lrp (it ranks discrete crops)")
        if self.parameterization == "lrp":
            self._build_lrp(channels, ctx)
            initial_entropy = float(categorical_entropy(self._prior_logits))
        else:
            if self.parameterization == "color" and channels != 3:
                raise ConfigError(f"instaaug: parameterization=color needs RGB images, got {channels} channels")
            kind = {"crop-uniform": "crop", "rotation": "rotation", "color": "color"}[self.parameterization]
            self.uniform = UniformParameterization(kind, (hp["hue_max"], hp["saturation_max"], hp["value_max"]))
            self._build_uniform(channels, ctx)
            lo, hi = self.uniform.ranges(torch.zeros(1, self.uniform.n_raw))
            initial_entropy = float(uniform_entropy(lo, hi, hp["entropy"]))
        h_min, h_max = default_entropy_bounds(self.parameterization, self.conditioning, self.image_hw, hp["entropy"])
        self.h_min = hp["h_min"] if hp["h_min"] is not None else h_min
        self.h_max = hp["h_max"] if hp["h_max"] is not None else h_max
        self.lam = DynamicLambda(hp["lambda0"], hp["lambda_factor"], hp["lambda_patience"], self.h_min, self.h_max)
        end = hp["target_end"] if hp["target_end"] is not None else (self.h_min + self.h_max) / 2
        start = hp["target_start"] if hp["target_start"] is not None else initial_entropy
        self.target = EntropyTarget(start, end, hp["target_epochs"], hp["target_weight"])
        self.register_buffer("baseline_ema", torch.zeros(()))
        self.register_buffer("baseline_ready", torch.zeros((), dtype=torch.bool))
        self.register_buffer("train_entropy_sum", torch.zeros(()))
        self.register_buffer("train_entropy_n", torch.zeros((), dtype=torch.long))
        self._optimizer: torch.optim.Optimizer | None = None
        self._t = 0.0  # epochs since InstaAug started, for the target rule (derived from the step)

    # ------------------------------------------------------------------ construction
    @staticmethod
    def _choose_parameterization(ctx: MethodContext, name: str | None) -> str:
        if name is None:
            for family, default in (("crop", "lrp"), ("rotation", "rotation"), ("color", "color")):
                if family in ctx.families:
                    return default
            raise ConfigError(f"instaaug: set parameterization (one of {', '.join(PARAMETERIZATIONS)}); "
                              f"the benchmark family {sorted(ctx.families)} has no default")
        if ctx.families and FAMILY[name] not in ctx.families:
            raise ConfigError(f"instaaug: parameterization={name} transforms {FAMILY[name]!r}, but the benchmark's "
                              f"family is {', '.join(sorted(ctx.families))}")
        return name

    def _build_lrp(self, channels: int, ctx: MethodContext) -> None:
        layers, prior, max_outside = default_lrp_config(self.image_hw)
        layers = self.hp["lrp_layers"] if self.hp["lrp_layers"] is not None else layers
        if self.hp["lrp_prior"] is not None:
            prior = self.hp["lrp_prior"]
        elif self.hp["lrp_layers"] is not None:
            prior = [3.0 if layer == GLOBAL else 0.0 for layer in layers]
        max_outside = self.hp["lrp_max_outside"] if self.hp["lrp_max_outside"] is not None else max_outside
        if len(prior) != len(layers):
            raise ConfigError(f"instaaug: lrp_prior needs one value per layer of lrp_layers {list(layers)}, "
                              f"got {list(prior)}")
        self.candidates: CandidateSet = build_candidates(self.image_hw, layers, max_outside)
        self.register_buffer("boxes", self.candidates.boxes.clone(), persistent=False)
        self.register_buffer("layer_of", self.candidates.layer.clone(), persistent=False)
        self.register_buffer("_prior_logits", prior_logits(self.candidates, prior), persistent=False)
        k = len(self.candidates)
        if self.conditioning == "input":
            self.phi = LRPNet(channels, self.image_hw, layers, prior, max_outside)
        elif self.conditioning == "input-free":
            self.logit_vector = nn.Parameter(self._prior_logits.clone())
        else:
            table = torch.zeros(ctx.num_classes, k)
            if GLOBAL in self.candidates.layers:
                table[:, self.candidates.index(GLOBAL)] = CLASS_GLOBAL_INIT
            self.logit_table = nn.Parameter(table)

    def _build_uniform(self, channels: int, ctx: MethodContext) -> None:
        n_raw = self.uniform.n_raw
        if self.conditioning == "input":
            self.phi = UniformNet(self.uniform.phi_channels(channels), self.image_hw, n_raw)
        elif self.conditioning == "input-free":
            self.raw_vector = nn.Parameter(torch.zeros(n_raw))
        else:
            self.raw_table = nn.Parameter(torch.zeros(ctx.num_classes, n_raw))

    # ------------------------------------------------------------------ distribution parameters
    def _need_labels(self, y: Tensor | None) -> Tensor:
        if y is None:
            raise ConfigError("instaaug: conditioning=class needs the labels (StepContext.y) to sample")
        return y

    def logits(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """LRP logits (B, K) of p(crop; phi(x)) (or of the label's row for class conditioning)."""
        if self.conditioning == "input":
            return self.phi(x)
        if self.conditioning == "input-free":
            return self.logit_vector.expand(x.shape[0], -1)
        return self.logit_table[self._need_labels(y)]

    def raw(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """Raw outputs (B, 2D) of the uniform parameterization."""
        if self.conditioning == "input":
            return self.phi(self.uniform.phi_input(x))
        if self.conditioning == "input-free":
            return self.raw_vector.expand(x.shape[0], -1)
        return self.raw_table[self._need_labels(y)]

    def candidate_boxes(self) -> Tensor:
        """(K, 4) LRP candidate boxes (center_y, center_x, height, width), fractions, logit order."""
        return self.boxes

    # ------------------------------------------------------------------ training
    def _pretraining(self, ctx: StepContext) -> bool:
        return ctx.training and ctx.epoch < self.hp["pretrain_epochs"]

    def sample(self, x: Tensor, ctx: StepContext, n_views: int = 1) -> Views:
        if self._pretraining(ctx):
            return Views(repeat_views(x, n_views), n_views)
        if ctx.training:
            steps = max(self.ctx.steps_per_epoch, 1)
            self._t = ctx.step / steps - self.hp["pretrain_epochs"]
        if self.parameterization == "lrp":
            return self._sample_lrp(x, self.logits(x, ctx.y), n_views)
        lo, hi = self.uniform.ranges(self.raw(x, ctx.y))
        theta = rsample_uniform(lo, hi, n_views)
        out = self.uniform.apply(repeat_views(x, n_views), theta)
        return Views(out, n_views, entropy=uniform_entropy(lo, hi, self.hp["entropy"]),
                     info={"theta": theta, **self.uniform.describe(lo, hi)})

    def _sample_lrp(self, x: Tensor, logits: Tensor, n_views: int) -> Views:
        logp = F.log_softmax(logits, dim=-1)
        idx = sample_categorical(logits, n_views, self.hp["sampler"])  # (V, B)
        flat = idx.reshape(-1)
        out = crop_candidates(repeat_views(x, n_views), self.boxes, flat)
        log_prob = logp.gather(1, idx.T).T.reshape(-1)  # (V*B,), view-major like `out`
        probs = logp.exp()
        entropy = -(probs * logp).sum(-1)
        mass = layer_mass(probs.detach(), self.layer_of, len(self.candidates.layers))
        return Views(out, n_views, log_prob=log_prob, entropy=entropy, info={"index": flat, "layer_mass": mass})

    @torch.no_grad()
    def _baseline(self, loss: Tensor, n_views: int) -> Tensor:
        """b per view (V*B,): leave-one-out mean of the other views, or the moving average before this step."""
        mode = self.hp["baseline"]
        if mode == "auto":
            mode = "loo" if n_views > 1 else "ema"
        if mode == "none":
            return torch.zeros_like(loss)
        if mode == "loo":
            if n_views < 2:
                raise ConfigError("instaaug: baseline=loo needs n_views > 1; use ema or auto")
            per = loss.view(n_views, -1)
            return ((per.sum(0, keepdim=True) - per) / (n_views - 1)).reshape(-1)
        b = torch.where(self.baseline_ready, self.baseline_ema, torch.zeros_like(self.baseline_ema))
        decay = self.hp["baseline_decay"]
        mean = loss.mean().to(self.baseline_ema.dtype)
        self.baseline_ema.copy_(torch.where(self.baseline_ready, decay * self.baseline_ema + (1 - decay) * mean, mean))
        self.baseline_ready.fill_(True)
        return b.to(loss.dtype).expand_as(loss)

    def objective(self, per_sample_loss: Tensor, views: Views) -> tuple[Tensor, dict[str, Tensor]]:
        loss = per_sample_loss.mean()
        logs: dict[str, Tensor] = {}
        if views.entropy is None:  # pretraining: identity views, phi untouched
            return loss, logs
        mean_h = views.entropy.mean()
        with torch.no_grad():
            self.train_entropy_sum += views.entropy.detach().float().sum()
            self.train_entropy_n += views.entropy.numel()
        if self.hp["lambda_rule"] == "target":
            loss = loss + self.target.penalty(mean_h, self._t)
            logs["entropy_target"] = torch.tensor(self.target.target(self._t))
        else:
            loss = loss - self.lam.lam * mean_h
        logs["lambda"] = self.lam.lam.detach().clone()
        logs["entropy"] = mean_h.detach()
        if views.log_prob is not None:  # REINFORCE on the detached losses of this very forward pass
            detached = per_sample_loss.detach()
            advantage = detached - self._baseline(detached, views.n_views)
            loss = loss + (advantage * views.log_prob).mean()
            logs["advantage_std"] = advantage.std() if advantage.numel() > 1 else advantage.abs().mean()
        if "layer_mass" in views.info:
            for n, name in enumerate(self.candidates.names):
                logs[f"mass_{name}"] = views.info["layer_mass"][:, n].mean()
        return loss, logs

    def make_optimizer(self) -> torch.optim.Optimizer | None:
        self._optimizer = build_param_optimizer(list(self.parameters()), self.hp)
        return self._optimizer

    # ------------------------------------------------------------------ schedules
    def lr_factor(self, epoch: int) -> float:
        """phi's lr multiplier at `epoch`: 0 while pretraining, then a linear warm-up to 1."""
        start = self.hp["pretrain_epochs"]
        if epoch < start:
            return 0.0
        warm = self.hp["warmup_epochs"]
        return 1.0 if warm == 0 else min(1.0, (epoch - start + 1) / warm)

    def begin_epoch(self, epoch: int) -> None:
        if self._optimizer is not None:  # idempotent: the lr is a function of the epoch alone
            for group in self._optimizer.param_groups:
                group["lr"] = self.hp["lr"] * self.lr_factor(epoch)

    def end_epoch(self, epoch: int, val_stats: Mapping[str, float]) -> dict[str, float]:
        logs: dict[str, float] = {}
        if self.hp["lambda_rule"] == "dynamic" and epoch >= self.hp["pretrain_epochs"]:
            entropy = val_stats.get("entropy")
            if entropy is None and int(self.train_entropy_n) > 0:  # no validation split: training mean
                entropy = float(self.train_entropy_sum / self.train_entropy_n)
            if entropy is not None and math.isfinite(entropy):
                logs.update(self.lam.update(float(entropy)))
        logs["lambda"] = self.lam.value
        logs["phi_lr_factor"] = self.lr_factor(epoch)
        self.train_entropy_sum.zero_()
        self.train_entropy_n.zero_()
        return logs

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def test_views(self, x: Tensor, n_views: int, ctx: StepContext) -> Tensor:
        if self.conditioning == "class" and ctx.y is None:
            return self._label_free_views(x, n_views)
        if self.hp["tta"] == "topk":
            k = len(self.candidates)
            top = self.logits(x, ctx.y).topk(min(n_views, k), dim=-1).indices  # (B, min(n, K))
            order = torch.arange(n_views, device=x.device) % top.shape[1]  # cycle when n > K
            idx = top[:, order].T.reshape(-1)
            return crop_candidates(repeat_views(x, n_views), self.boxes, idx)
        return self.sample(x, ctx, n_views).x

    def _label_free_views(self, x: Tensor, n_views: int) -> Tensor:
        """Class-specific InstaAug at test time: random resized crops, or a random class's range."""
        xs = repeat_views(x, n_views)
        if FAMILY[self.parameterization] == "crop":
            boxes = sample_resized_crop_boxes(xs.shape[0], self.image_hw, (self.hp["fallback_scale_min"], 1.0),
                                              (3 / 4, 4 / 3), x.device)
            return crop(xs, *boxes)
        y = torch.randint(self.ctx.num_classes, (xs.shape[0],), device=x.device)
        lo, hi = self.uniform.ranges(self.raw_table[y])
        return self.uniform.apply(xs, lo + torch.rand_like(lo) * (hi - lo))

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
        crop parameterizations: crop_boxes (B, 8, 4), boxes sampled as at test time."""
        b = x.shape[0]
        label_free = self.conditioning == "class" and ctx.y is None
        if self.parameterization == "lrp":
            logits = self.logit_table if label_free else self.logits(x, ctx.y)
            probs = logits.softmax(-1)
            entropy = categorical_entropy(logits)
            if label_free:  # the class average: labels are unknown here
                probs, entropy = probs.mean(0).expand(b, -1), entropy.mean().expand(b)
            out = {"entropy": entropy.contiguous(), "crop_probs": probs.contiguous()}
            mass = layer_mass(probs, self.layer_of, len(self.candidates.layers))
            out.update({f"mass_{name}": mass[:, n].contiguous() for n, name in enumerate(self.candidates.names)})
            out["crop_boxes"] = self._fallback_boxes(b, x.device) if label_free else \
                self.boxes[torch.multinomial(probs, INSPECT_SAMPLES, replacement=True)]
            return out
        if label_free:
            lo, hi = self.uniform.ranges(self.raw_table)
            out = {"entropy": uniform_entropy(lo, hi, self.hp["entropy"]).mean().expand(b).contiguous()}
            if self.parameterization == "crop-uniform":
                out["crop_boxes"] = self._fallback_boxes(b, x.device)
            return out
        lo, hi = self.uniform.ranges(self.raw(x, ctx.y))
        out = {"entropy": uniform_entropy(lo, hi, self.hp["entropy"]), **self.uniform.describe(lo, hi)}
        if self.parameterization == "crop-uniform":
            theta = rsample_uniform(lo, hi, INSPECT_SAMPLES)  # (S*B, 3) view-major
            out["crop_boxes"] = self.uniform.boxes(theta).view(INSPECT_SAMPLES, b, 4).transpose(0, 1).contiguous()
        return out

    def _fallback_boxes(self, b: int, device: torch.device) -> Tensor:
        """(b, INSPECT_SAMPLES, 4) random resized crop boxes: class-specific test-time crops."""
        boxes = sample_resized_crop_boxes(b * INSPECT_SAMPLES, self.image_hw, (self.hp["fallback_scale_min"], 1.0),
                                          (3 / 4, 4 / 3), device)
        return torch.stack(boxes, -1).view(INSPECT_SAMPLES, b, 4).transpose(0, 1).contiguous()
