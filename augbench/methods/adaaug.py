"""`adaaug`: input-dependent augmentation policies (Cheung & Yeung, ICLR 2022).

Policy: one linear layer from the classifier's penultimate features to 2 x n_ops;
magnitudes m = sigmoid(first half), op probabilities p = softmax(second half / T)
(the paper's policy; the public code's ``predict_aug_params``).

Exploitation (`sample`): per image, k ops drawn without replacement from p_T, magnitudes
jittered by +-U(0, delta) and clipped to [0, 1] (``perturb_param``), applied in order and
batched (`transforms.policies.adaaug_apply`).

Exploration (`explore`, every `explore_every` steps on a validation batch): every image goes
through ALL ops, the frozen classifier's features of the n_ops results are mixed by p
(temperature 1), and the head's cross-entropy on the mix updates the policy only.
Magnitudes get a straight-through gradient: each augmented image acts as image + m - sg(m),
i.e. d image / d m = 1 at every pixel (the public code's ``stop_gradient``).

augbench runs AdaAug's search and training as ONE joint run: the policy reads the features
of the classifier being trained. (The public code searches with a small network, then
trains a fresh classifier with the frozen search network and policy; the paper's
Tiny-ImageNet recipe is not public.) The classifier is put in eval mode whenever the
policy reads its features, as the public code does (``gf_model.eval()``), so BatchNorm
statistics are neither used per batch nor updated by these extra passes.

`ops="lrp"` (InstaAug paper Table 1, "AdaAug w/ LRP"): the policy chooses among InstaAug's
location-related crop candidates (`augbench.methods.instaaug.lrp`) instead of the 17 image ops;
crops have no magnitude, so the policy outputs one logit per candidate and one crop is
applied per image.

Base crop (`base_crop`): AdaAug's pipeline randomly crops (and flips) every image BEFORE the
policy sees it (the public code's RandomCrop(32, padding=4) + flip on CIFAR-10), so on crop
benchmarks the policy's ops come on top of a random crop: by default a zero-pad-by-4 random
window ("pad"), or a random resized crop ("resized"). The policy reads the features of the
cropped image, exploration batches are cropped the same way, and every view, test-time views
included, gets its own crop. The trainer's flips come first; `ops="lrp"` crops by itself and
gets no base crop unless asked for.

Test-time views (Table 1 uses 50) are drawn from the exploitation distribution.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from augbench.errors import ConfigError
from augbench.hparams import HParam
from augbench.methods import AugmentationMethod, MethodContext, StepContext, Views, register_method, repeat_views
from augbench.methods.instaaug import lrp
from augbench.methods.instaaug.lrp import crop_candidates
from augbench.methods.random_crop import sample_resized_crop_boxes
from augbench.transforms.geometry import crop
from augbench.transforms.policies import ADAAUG_NAMES, adaaug_apply, adaaug_apply_all

INSPECT_SAMPLES = 8  # sampled crops per input reported by `inspect` (ops="lrp")
BASE_RATIO = (3 / 4, 4 / 3)  # aspect-ratio range of the "resized" base crop (torchvision's default)


def random_pad_crop(x: Tensor, pad: int) -> Tensor:
    """torchvision's RandomCrop(size, padding=pad) for every image at once.

    Zero-pad each side by `pad` pixels, then take an input-sized window at a random integer
    offset in [0, 2 pad] per image and axis: exact pixel copies, no interpolation.
    """
    if pad <= 0:
        return x
    n, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    offset = torch.randint(0, 2 * pad + 1, (2, n), device=x.device)
    rows = offset[0, :, None] + torch.arange(h, device=x.device)  # (N, H)
    cols = offset[1, :, None] + torch.arange(w, device=x.device)  # (N, W)
    batch = torch.arange(n, device=x.device)[:, None, None]
    return padded[batch, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2).contiguous()


@contextlib.contextmanager
def eval_mode(features: Callable[[Tensor], Tensor]) -> Iterator[None]:
    """Run `features` (a bound method of a module, e.g. `Classifier.features`) in eval mode.

    Restores every submodule's own training flag afterwards. A plain function is left alone.
    """
    owner = getattr(features, "__self__", None)
    if not isinstance(owner, nn.Module):
        yield
        return
    flags = [(m, m.training) for m in owner.modules()]
    owner.eval()
    try:
        yield
    finally:
        for m, flag in flags:
            m.training = flag


def jitter_magnitudes(m: Tensor, delta: float) -> Tensor:
    """AdaAug's ``perturb_param`` batched: m - U(0, delta) clipped at 0, or m + U(0, delta) clipped at 1, p = 1/2."""
    if delta <= 0:
        return m
    amount = torch.rand_like(m) * delta
    down = torch.rand_like(m) < 0.5
    return torch.where(down, (m - amount).clamp_min(0.0), (m + amount).clamp_max(1.0))


class OpSet:
    """The candidate transformations a policy chooses among."""

    names: tuple[str, ...]
    has_magnitude: bool

    def apply(self, x: Tensor, op_index: Tensor, magnitude: Tensor | None) -> Tensor:
        """Apply ops `op_index` (N, k) in order with magnitudes (N, k) in [0, 1]."""
        raise NotImplementedError

    def apply_all(self, x: Tensor, magnitude: Tensor | None) -> Tensor:
        """Every op on every image: (B, C, H, W) -> (B, n_ops, C, H, W)."""
        raise NotImplementedError


class ImageOps(OpSet):
    """AdaAug's 17 ops (ShearX ... Identity) with its magnitude ranges (`transforms.policies`)."""

    names = ADAAUG_NAMES
    has_magnitude = True

    def apply(self, x: Tensor, op_index: Tensor, magnitude: Tensor | None) -> Tensor:
        assert magnitude is not None
        return adaaug_apply(x, op_index, magnitude)

    def apply_all(self, x: Tensor, magnitude: Tensor | None) -> Tensor:
        assert magnitude is not None
        return adaaug_apply_all(x, magnitude)


class LRPCrops(OpSet):
    """InstaAug's LRP candidate crops as AdaAug ops: op j crops candidate box j.

    The candidates and their prior are InstaAug's for this input size
    (`lrp.default_lrp_config`): e.g. 64x64 -> layers [2, 3, global], K = 321.
    """

    has_magnitude = False

    def __init__(self, image_hw: tuple[int, int]) -> None:
        layers, prior, max_outside = lrp.default_lrp_config(image_hw)
        self.candidates = lrp.build_candidates(image_hw, layers, max_outside)
        self.boxes = self.candidates.boxes  # (K, 4): center_y, center_x, height, width
        self.prior = lrp.prior_logits(self.candidates, prior)  # (K,) InstaAug's initial logits
        self.names = tuple(f"crop{j}" for j in range(len(self.candidates)))

    def apply(self, x: Tensor, op_index: Tensor, magnitude: Tensor | None) -> Tensor:
        return crop_candidates(x, self.boxes, op_index[:, 0])

    def apply_all(self, x: Tensor, magnitude: Tensor | None) -> Tensor:
        b, k = x.shape[0], len(self.names)
        index = torch.arange(k, device=x.device).repeat(b)
        return crop_candidates(x.repeat_interleave(k, dim=0), self.boxes, index).view(b, k, *x.shape[1:])


class AdaAugPolicy(nn.Module):
    """features -> (magnitudes in [0, 1] or None, op logits); AdaAug's ``Projection`` with no hidden layer."""

    def __init__(self, n_ops: int, has_magnitude: bool, in_features: int | None = None,
                 prior: Tensor | None = None) -> None:
        super().__init__()
        self.n_ops = n_ops
        self.has_magnitude = has_magnitude
        out = 2 * n_ops if has_magnitude else n_ops
        if in_features:
            self.linear: nn.Module = nn.Linear(in_features, out)
        else:  # the classifier's feature size is not part of MethodContext: infer it on first use
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Lazy modules are a new feature")
                self.linear = nn.LazyLinear(out)
        # Fixed offset of the op logits (LRP: InstaAug's prior, so both start from one distribution).
        self.register_buffer("prior", torch.zeros(n_ops) if prior is None else prior.float().clone(),
                             persistent=False)

    def forward(self, features: Tensor) -> tuple[Tensor | None, Tensor]:
        a = self.linear(features)
        if not self.has_magnitude:
            return None, a + self.prior
        m, logits = a.split(self.n_ops, dim=-1)
        return torch.sigmoid(m), logits + self.prior


@register_method("adaaug")
class AdaAug(AugmentationMethod):
    """Linear policy on the classifier's features: k ops per image, explored on validation batches."""

    families = frozenset({"policy", "crop", "color"})
    explores = True
    # Exploration is cross-entropy of the classifier's head on labelled validation data: AdaAug
    # applies to neither contrastive learning nor a frozen classifier (paper Sections 5.3 and 6).
    tasks = frozenset({"classification"})
    variants = {"lrp": {"ops": "lrp"}}  # Table 1's "AdaAug w/ LRP": the policy chooses among LRP crops
    hparams = {
        "ops": HParam("standard", str, choices=("standard", "lrp"),
                      help="standard: AdaAug's 17 image ops; lrp: InstaAug's LRP crop candidates"),
        "k": HParam(None, int, low=1, nullable=True,
                    help="ops per image; None: 2 (published) for standard, 1 for lrp"),
        "temperature": HParam(None, float, low=1e-3, nullable=True,
                              help="exploitation temperature T of softmax(logits / T); None: 3 (published) "
                                   "for standard, 1 for lrp (keeps InstaAug's prior)"),
        "delta": HParam(0.3, float, low=0.0, high=1.0, help="magnitude jitter +-U(0, delta)"),
        "lr": HParam(1e-3, float, low=0.0, help="policy Adam learning rate (AdaAug search: 0.001)"),
        "weight_decay": HParam(1e-3, float, low=0.0, help="policy Adam weight decay (AdaAug: 0.001)"),
        "lrp_prior": HParam(True, bool, help="lrp: add InstaAug's prior to the logits (initial mass on the "
                                             "whole image) instead of starting uniform over the candidates"),
        "explore_every": HParam(3, int, low=1, help="training steps per exploration step (AdaAug CIFAR-10: 3)"),
        "explore_samples": HParam(0, int, low=0, help="validation images per exploration step (0: the whole batch)"),
        "explore_chunk": HParam(1024, int, low=1, identity=False,
                                help="images per classifier pass in exploration and policy reads (memory only)"),
        "base_crop": HParam("auto", str, choices=("auto", "none", "pad", "resized"),
                            help="random crop before the policy, as AdaAug's base pipeline: pad (zero-pad by "
                                 "base_pad px, random window), resized (area in [base_scale_min, 1]) or none; "
                                 "auto: pad on crop benchmarks with the 17 ops, none otherwise"),
        "base_pad": HParam(4, int, low=0, help="pad base crop: pixels of zero padding per side (AdaAug: 4)"),
        "base_scale_min": HParam(0.1, float, low=1e-3, high=1.0,
                                 help="resized base crop: lower bound of the area fraction"),
    }

    @classmethod
    def families_for(cls, hp: Mapping[str, Any]) -> frozenset[str]:
        """LRP ops are crops only; the standard ops (and MADAug's, which has no `ops`) keep every family."""
        return frozenset({"crop"}) if hp.get("ops") == "lrp" else cls.families

    def __init__(self, ctx: MethodContext, **hp: Any) -> None:
        super().__init__(ctx, **hp)
        lrp_ops = self.hp["ops"] == "lrp"
        self.op_set: OpSet = LRPCrops((ctx.image_shape[-2], ctx.image_shape[-1])) if lrp_ops else ImageOps()
        k = self.hp["k"] if self.hp["k"] is not None else (1 if lrp_ops else 2)
        if lrp_ops and k != 1:
            raise ConfigError(f"adaaug: ops 'lrp' applies one crop per image, got k={k}; use k=1")
        if k > len(self.op_set.names):
            raise ConfigError(f"adaaug: k={k} exceeds the {len(self.op_set.names)} available ops")
        self.k = k
        t = self.hp["temperature"]
        self.temperature: float = t if t is not None else (1.0 if lrp_ops else 3.0)
        base = self.hp["base_crop"]
        if base == "auto":
            base = "pad" if "crop" in ctx.families and not lrp_ops else "none"
        self.base_crop: str = base
        self.explore_every = self.hp["explore_every"]  # read by the trainer
        prior = getattr(self.op_set, "prior", None) if self.hp["lrp_prior"] else None
        self.policy = AdaAugPolicy(len(self.op_set.names), self.op_set.has_magnitude,
                                   getattr(ctx, "feature_dim", None), prior)
        self._optimizer: torch.optim.Optimizer | None = None

    # ------------------------------------------------------------------ policy
    def _policy(self, x: Tensor, ctx: StepContext) -> tuple[Tensor | None, Tensor]:
        """(magnitudes, logits) of the policy on the frozen classifier's features of `x`."""
        if ctx.features is None:
            raise ConfigError("adaaug needs the classifier's features (StepContext.features), got None")
        with eval_mode(ctx.features), torch.no_grad():  # in chunks: with base crops, all test-time views
            feats = torch.cat([ctx.features(c) for c in x.split(self.hp["explore_chunk"])])
        return self.policy(feats.detach())

    def base_view(self, x: Tensor) -> Tensor:
        """The base crop of `base_crop`, drawn per image (the input itself when it is "none")."""
        if self.base_crop == "pad":
            return random_pad_crop(x, self.hp["base_pad"])
        if self.base_crop == "resized":
            box = sample_resized_crop_boxes(x.shape[0], (x.shape[-2], x.shape[-1]), (self.hp["base_scale_min"], 1.0),
                                            BASE_RATIO, x.device)
            return crop(x, *box)
        return x

    def draw_ops(self, probs: Tensor) -> Tensor:
        """(N, k) distinct op indices per row, drawn without replacement from `probs` (N, n_ops)."""
        return torch.multinomial(probs, self.k, replacement=False)

    # ------------------------------------------------------------------ training
    def sample(self, x: Tensor, ctx: StepContext, n_views: int = 1) -> Views:
        with torch.no_grad():  # the policy learns in `explore` only, never from the training loss
            if self.base_crop == "none":  # one policy per input, shared by its views
                views, reps = repeat_views(x, n_views), n_views
                mag, logits = self._policy(x, ctx)
            else:  # every view its own base crop, and the policy reads the image it augments
                views, reps = self.base_view(repeat_views(x, n_views)), 1
                mag, logits = self._policy(views, ctx)
            probs = F.softmax(logits / self.temperature, dim=-1).repeat(reps, 1)
            ops = self.draw_ops(probs)
            m = None
            if mag is not None:
                m = jitter_magnitudes(mag.repeat(reps, 1).gather(1, ops), self.hp["delta"])
            entropy = -(F.log_softmax(logits, -1) * F.softmax(logits, -1)).sum(-1)
            entropy = entropy.view(-1, x.shape[0]).mean(0)  # (B,): mean over the views' policies
        out = self.op_set.apply(views, ops, m)
        return Views(out, n_views, entropy=entropy, info={"ops": ops})

    def make_optimizer(self) -> torch.optim.Optimizer:
        """The policy's Adam; `explore` steps it (the trainer's step finds no gradient to apply)."""
        if self._optimizer is None:
            self._optimizer = torch.optim.Adam(self.policy.parameters(), lr=self.hp["lr"],
                                               weight_decay=self.hp["weight_decay"])
        return self._optimizer

    def explore(self, x: Tensor, y: Tensor, ctx: StepContext, head: Callable[[Tensor], Tensor]) -> dict[str, Tensor]:
        if self.hp["explore_samples"]:
            x, y = x[: self.hp["explore_samples"]], y[: self.hp["explore_samples"]]
        with torch.no_grad():
            x = self.base_view(x)  # validation images get the training pipeline's base crop too
        params = [p for p in self.policy.parameters() if p.requires_grad]
        with torch.enable_grad():
            loss, grads = self.exploration_gradients(x, y, ctx, head, params)
        opt = self.make_optimizer()
        opt.zero_grad(set_to_none=True)
        for p, g in zip(params, grads):
            p.grad = g
        opt.step()
        opt.zero_grad(set_to_none=True)
        return {"explore_loss": loss.detach()}

    def exploration_gradients(self, x: Tensor, y: Tensor, ctx: StepContext, head: Callable[[Tensor], Tensor],
                              params: list[nn.Parameter]) -> tuple[Tensor, tuple[Tensor, ...]]:
        """The exploration loss and its gradient w.r.t. `params` (the classifier gets none).

        With at most `explore_chunk` augmented images, one differentiable pass (the public
        code's graph). Otherwise two passes with the same gradient in bounded memory: the
        features without a graph give the loss and g = dL/d(mixed); then, chunk by chunk,
        dL/dm[b, j] = p[b, j] <g_b, d f(image_bj + s) / d s> at s = 0 (straight-through).
        Exact because the classifier is in eval mode, so images do not interact.
        """
        if ctx.features is None:
            raise ConfigError("adaaug needs the classifier's features (StepContext.features), got None")
        features = ctx.features
        b, n = x.shape[0], len(self.op_set.names)
        with eval_mode(features):
            with torch.no_grad():
                base = features(x)
            mag, logits = self.policy(base)
            p = F.softmax(logits, dim=-1)  # temperature 1 in exploration
            with torch.no_grad():
                flat = self.op_set.apply_all(x, None if mag is None else mag.detach()).flatten(0, 1)
            chunk = self.hp["explore_chunk"]
            if mag is not None and flat.shape[0] <= chunk:
                st = flat + (mag - mag.detach()).reshape(-1, 1, 1, 1)
                feats = features(st).view(b, n, -1)
                loss = F.cross_entropy(self._logits(head, torch.einsum("bn,bnd->bd", p, feats)), y)
                return loss, torch.autograd.grad(loss, params)
            with torch.no_grad():
                feats = torch.cat([features(c) for c in flat.split(chunk)]).view(b, n, -1)
            mixed = torch.einsum("bn,bnd->bd", p, feats)
            loss = F.cross_entropy(self._logits(head, mixed), y)
            if mag is None:
                return loss, torch.autograd.grad(loss, params)
            (g,) = torch.autograd.grad(loss, mixed, retain_graph=True)
            weights = (p.detach().unsqueeze(-1) * g.detach().unsqueeze(1)).reshape(b * n, -1)
            dm = torch.empty(b * n, device=x.device, dtype=mag.dtype)
            for start in range(0, b * n, chunk):
                s = slice(start, min(start + chunk, b * n))
                shift = torch.zeros(s.stop - s.start, device=x.device, dtype=flat.dtype, requires_grad=True)
                f = features(flat[s] + shift.view(-1, 1, 1, 1))
                (ds,) = torch.autograd.grad((f * weights[s]).sum(), shift)
                dm[s] = ds
            grads = torch.autograd.grad([loss, mag], params, grad_outputs=[torch.ones_like(loss), dm.view(b, n)])
            return loss, grads

    def _logits(self, head: Callable[[Tensor], Tensor], features: Tensor) -> Tensor:
        out = head(features)
        if out.dim() != 2 or out.shape[1] != self.ctx.num_classes:
            raise ConfigError(f"adaaug explores with a classifier head over {self.ctx.num_classes} classes, got "
                              f"outputs of shape {tuple(out.shape)}; it supports tasks: "
                              f"{', '.join(sorted(self.tasks))}")
        return out

    # ------------------------------------------------------------------ introspection
    @torch.no_grad()
    def inspect(self, x: Tensor, ctx: StepContext) -> dict[str, Tensor]:
        if ctx.features is None:
            return {}
        mag, logits = self._policy(x, ctx)
        p = F.softmax(logits, dim=-1)
        out = {"op_probs": p, "policy_entropy": -(p * F.log_softmax(logits, -1)).sum(-1)}
        if mag is not None:
            out["magnitudes"] = mag
        if isinstance(self.op_set, LRPCrops):  # sampled crops, for the crop benchmarks' metrics
            draws = torch.multinomial(F.softmax(logits / self.temperature, -1), INSPECT_SAMPLES, replacement=True)
            out["crop_boxes"] = self.op_set.boxes.to(x.device)[draws]  # (B, S, 4)
            out["layer_mass"] = lrp.layer_mass(p, self.op_set.candidates.layer, len(self.op_set.candidates.layers))
        return out
