"""`madaug`: a model-adaptive augmentation curriculum (Hou, Zhang & Zhou, ICCV 2023).

"When to learn what": a per-image policy chooses WHAT (ops and magnitudes), and a fixed
monotonic curriculum says WHEN (which fraction of each batch is augmented at each epoch).
Facts from the public code (JackHck/MADAug, ``main_higher.py``, ``adaptive_augmentor.py``):

Policy: AdaAug's (one linear layer, no hidden layer, from the classifier's penultimate
features to 2 x 17: magnitudes sigmoid, op probabilities softmax(logits / T)), over AdaAug's
17 ops and magnitude ranges. The policy, its exploitation and its base crop are AdaAug's
(`augbench.methods.adaaug`, which this class extends): per augmented image k = 2 ops drawn
without replacement from p_T (T = 3 on CIFAR-10, 2 on SVHN), magnitudes jittered by
+-U(0, 0.3), applied in order, batched.

Curriculum ("when"): at epoch e only the first floor(r(e) B) images of a batch get policy ops,
r(e) = min(tanh(e / tau) + 0.01, 1) with tau = 40 epochs (the code's ``split_rate`` and
``--threshold``); the rest get the base pipeline only. augbench picks that many images at
random (the public code takes the first rows of a shuffled batch: the same distribution).
Every training image then gets a 16 px Cutout when `cutout` is set (the code's
``after_transforms`` with ``--cutout_length 16``); test-time views get none (the code's test
transform has no Cutout).

Bi-level update (every `explore_every` steps, 3 on CIFAR-10): the TRAINING batch goes through
all 17 ops; the augmented images are mixed in image space by the op probabilities
(temperature 1), magnitudes with a straight-through gradient (each op's output acts as
o(x) + m - sg(m)). One virtual SGD step of the classifier on that mixture,
w' = w - eta grad_w L_train(w, phi), then the validation cross-entropy of w' on an
unaugmented validation batch; its gradient w.r.t. the policy phi goes through w' (second
order), computed exactly for one step as
    dL_val(w')/dphi = -eta d/dphi [grad_w L_train(w, phi) . sg(grad_w' L_val(w'))],
one double-backward pass; the classifier gets no gradient (the code uses ``higher``).
The maintainers run it from the first epoch (``bi_epochs`` = 0). The validation batch has
`explore_samples` images (the code's search batches: 16 for its WRN-28-10, from a pool of
training images the classifier never trains on); augbench draws them from its validation
split, that pool's counterpart.

Label smoothing (`label_smoothing`): the code trains the classifier, and computes both losses
of the look-ahead, with label-smoothed cross-entropy (eps 0.1). augbench's default is plain
cross-entropy, the loss of every other method, so that benchmarks compare augmentations and not
losses; `label_smoothing=0.1` gives the code's losses (the classifier's through
`classifier_label_smoothing`).

augbench differences, all from the trainer's order and interface: the trainer calls
`explore` right after the classifier's step, so the look-ahead starts from the updated
weights (the code looks ahead before the step) and uses the batch `sample` saw in that step;
eta is the classifier's current learning rate, as in the code (`inner_lr` fixes it instead),
and the virtual step is plain SGD (no momentum or weight decay,
which do not depend on phi); the classifier is in eval mode during the look-ahead, as in the
public code (``predict_aug_params`` puts the look-ahead model in eval mode), so BatchNorm
statistics are neither used per batch nor updated.

`inspect` adds "crop_boxes": the windows of the original image that stay visible after the
base crop and the policy's TranslateX / TranslateY draws (shears, rotations and Cutout are not
boxes and are left out), so crop benchmarks can score them (`keeps_object`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from augbench.errors import ConfigError
from augbench.hparams import HParam
from augbench.methods import AugmentationMethod, MethodContext, StepContext, Views, register_method, repeat_views
from augbench.methods.adaaug import (
    BASE_RATIO,
    INSPECT_SAMPLES,
    AdaAug,
    AdaAugPolicy,
    ImageOps,
    OpSet,
    eval_mode,
    jitter_magnitudes,
)
from augbench.methods.random_crop import sample_resized_crop_boxes
from augbench.transforms.ops import cutout
from augbench.transforms.policies import ADAAUG_NAMES, adaaug_values

CURRICULUM_FLOOR = 0.01  # r(0): the public code's "+ 0.01"
_SHARED = ("delta", "lr", "weight_decay", "explore_chunk", "base_crop", "base_pad", "base_scale_min")


def curriculum_ratio(epoch: int, tau: float) -> float:
    """Fraction of each batch that gets policy ops at `epoch`: min(tanh(epoch / tau) + 0.01, 1); 1 if tau <= 0."""
    if tau <= 0:
        return 1.0
    return min(math.tanh(epoch / tau) + CURRICULUM_FLOOR, 1.0)


def curriculum_rows(n: int, ratio: float, device: torch.device) -> Tensor:
    """(n,) bool: exactly floor(ratio * n) rows, chosen uniformly at random, get policy ops."""
    return curriculum_pick(n, ratio, device)[0]


def curriculum_pick(n: int, ratio: float, device: torch.device) -> tuple[Tensor, Tensor]:
    """`curriculum_rows`' mask and its rows in increasing order: their number, floor(ratio * n),
    is known on the host, so no `nonzero` has to read the mask back from the device."""
    order = torch.rand(n, device=device).argsort()
    rows = order[: int(ratio * n)].sort().values
    return torch.zeros(n, dtype=torch.bool, device=device).index_fill_(0, rows, True), rows


def mix_ops(op_set: OpSet, x: Tensor, magnitude: Tensor, probs: Tensor) -> Tensor:
    """sum_j p_j (o_j(x; m_j) + m_j - sg(m_j)): all ops mixed in image space (B, C, H, W).

    Differentiable in `probs` (exactly) and in `magnitude` (straight-through: d pixel / d m_j = p_j).
    """
    with torch.no_grad():
        outs = op_set.apply_all(x, magnitude.detach())  # (B, n_ops, C, H, W)
    straight = (probs * (magnitude - magnitude.detach())).sum(-1)  # zero, with the ST gradient
    return torch.einsum("bn,bnchw->bchw", probs, outs) + straight.view(-1, 1, 1, 1)


def window_boxes(base: Tensor, shift_y: Tensor, shift_x: Tensor, image_hw: tuple[int, int]) -> Tensor:
    """Boxes (..., 4) (center_y, center_x, height, width) of the original that a view shows.

    `base` (..., 4): the base crop's box; the view's content is then moved down / right by
    `shift_y` / `shift_x` pixels (TranslateY / TranslateX), so it shows the base box moved
    up / left by the same fraction of its size (areas outside the image read as fill).
    """
    h, w = image_hw
    cy, cx, bh, bw = base.unbind(-1)
    return torch.stack([cy - shift_y / h * bh, cx - shift_x / w * bw, bh, bw], dim=-1)


@register_method("madaug")
class MADAug(AdaAug):
    """AdaAug's per-image policy, a tanh curriculum of how many images to augment, and a
    bi-level (one-step look-ahead) policy update on validation batches."""

    families = frozenset({"policy", "crop", "color"})
    explores = True
    tasks = frozenset({"classification"})
    recipes = {
        "cifar10-crop": {"cutout": 16},  # MADAug's CIFAR recipe: Cutout 16 px after its policy
        "cifar100-crop": {"cutout": 16},
        # the curriculum horizon scaled as its 40 of 240 epochs: 15 / 6
        "clutter-crop": {"curriculum_epochs": 2.5},
        "texture-color": {"curriculum_epochs": 2.5},
    }
    variants = {}  # AdaAug's "lrp" (LRP crops) is not MADAug's
    hparams = {
        "k": HParam(2, int, low=1, high=len(ADAAUG_NAMES), help="ops per augmented image (MADAug CIFAR-10: 2)"),
        "temperature": HParam(3.0, float, low=1e-3,
                              help="exploitation temperature T of softmax(logits / T) (CIFAR-10: 3, SVHN: 2)"),
        **{name: AdaAug.hparams[name] for name in _SHARED},
        "explore_samples": HParam(16, int, low=0, help="validation images per look-ahead (MADAug's search batches "
                                                       "for WRN-28-10: 16); 0: a training batch's worth"),
        "label_smoothing": HParam(0.0, float, low=0.0, high=1.0,
                                  help="label smoothing of the classifier's loss and the look-ahead's losses "
                                       "(MADAug's code: 0.1); 0: plain cross-entropy, as for every method"),
        "explore_every": HParam(3, int, low=1, help="training steps per bi-level policy update (MADAug CIFAR-10: 3)"),
        "curriculum_epochs": HParam(40.0, float, low=0.0,
                                    help="tau of the augmented fraction min(tanh(epoch / tau) + 0.01, 1) (MADAug: "
                                         "40 epochs of 240); 0: no curriculum, every image augmented"),
        "inner_lr": HParam(None, float, low=0.0, nullable=True,
                           help="learning rate of the virtual classifier step; None: the classifier's current "
                                "learning rate (MADAug's code)"),
        "cutout": HParam(0, int, low=0, help="side in pixels of a Cutout on every training image after the policy "
                                             "(MADAug CIFAR/SVHN: 16); 0: none"),
    }

    def __init__(self, ctx: MethodContext, **hp: Any) -> None:
        # AdaAug's own __init__ builds options MADAug does not have (LRP crops); set what its methods use.
        AugmentationMethod.__init__(self, ctx, **hp)
        self.op_set: OpSet = ImageOps()
        self.k = self.hp["k"]
        self.temperature = self.hp["temperature"]
        base = self.hp["base_crop"]
        self.base_crop = ("pad" if "crop" in ctx.families else "none") if base == "auto" else base
        self.explore_every = self.hp["explore_every"]
        self.policy = AdaAugPolicy(len(self.op_set.names), True, getattr(ctx, "feature_dim", None))
        self._optimizer = None
        self.stage: Tensor
        self.register_buffer("stage", torch.zeros((), dtype=torch.long))  # the curriculum's epoch, checkpointed
        # its host copy, read every step (a read of the buffer would wait for the device)
        self._stage = 0
        self.register_load_state_dict_post_hook(lambda module, keys: setattr(module, "_stage", int(module.stage)))
        self._train_batch: Tensor | None = None  # the step's base views, for the look-ahead in `explore`

    # ------------------------------------------------------------------ curriculum
    def begin_epoch(self, epoch: int) -> None:
        self.stage.fill_(epoch)
        self._stage = epoch

    def ratio(self) -> float:
        """The augmented fraction at the current epoch."""
        return curriculum_ratio(self._stage, self.hp["curriculum_epochs"])

    def end_epoch(self, epoch: int, val_stats: Any) -> dict[str, float]:
        return {"aug_ratio": self.ratio()}

    # ------------------------------------------------------------------ training
    def sample(self, x: Tensor, ctx: StepContext, n_views: int = 1) -> Views:
        with torch.no_grad():  # the policy learns in `explore` only
            views = self.base_view(repeat_views(x, n_views))
            if ctx.training and self.training:
                self._train_batch = views[: x.shape[0]]
            chosen, rows = curriculum_pick(views.shape[0], self.ratio(), views.device)
            ops = torch.full((views.shape[0], self.k), -1, dtype=torch.long, device=views.device)
            out = views
            if rows.numel():
                part = views.index_select(0, rows)
                mag, logits = self._policy(part, ctx)
                picked = self.draw_ops(F.softmax(logits / self.temperature, dim=-1))
                assert mag is not None
                m = jitter_magnitudes(mag.gather(1, picked), self.hp["delta"])
                out = views.index_copy(0, rows, self.op_set.apply(part, picked, m))
                ops.index_copy_(0, rows, picked)
            if self.hp["cutout"] and ctx.training:  # training images only: the code's test views have none
                side = torch.full((out.shape[0],), self.hp["cutout"] / out.shape[-1], device=out.device)
                out = cutout(out, side)
        return Views(out, n_views, info={"ops": ops, "augmented": chosen})

    def explore(self, x: Tensor, y: Tensor, ctx: StepContext, head: Callable[[Tensor], Tensor]) -> dict[str, Tensor]:
        if self._train_batch is None or ctx.y is None:
            raise ConfigError("madaug.explore looks ahead on the step's training batch: call sample(x, ctx) with "
                              "training labels (ctx.y) first")
        if self.hp["explore_samples"]:
            x, y = x[: self.hp["explore_samples"]], y[: self.hp["explore_samples"]]
        train_x, self._train_batch = self._train_batch, None
        params = [p for p in self.policy.parameters() if p.requires_grad]
        with torch.enable_grad():
            logs, grads = self.hypergradient(train_x, ctx.y, x, y, ctx, params)
        opt = self.make_optimizer()
        opt.zero_grad(set_to_none=True)
        for p, g in zip(params, grads):
            p.grad = g
        opt.step()
        opt.zero_grad(set_to_none=True)
        return logs

    def hypergradient(self, x_train: Tensor, y_train: Tensor, x_val: Tensor, y_val: Tensor, ctx: StepContext,
                      params: list[nn.Parameter]) -> tuple[dict[str, Tensor], tuple[Tensor, ...]]:
        """d L_val(w - eta grad_w L_train(w, phi)) / d `params`, exact for the one virtual step.

        L_train: cross-entropy of the classifier on the op mixture of `x_train` (`mix_ops`);
        L_val: cross-entropy of the stepped classifier on `x_val`. The policy reads the
        current classifier's features of `x_train` as a fixed input.
        """
        model = getattr(ctx.features, "__self__", None)
        if not isinstance(model, nn.Module) or ctx.features is None:
            raise ConfigError("madaug needs the classifier itself (StepContext.features bound to an nn.Module) "
                              "for its look-ahead step")
        named = [(n, w) for n, w in model.named_parameters() if w.requires_grad]
        weights = [w for _, w in named]
        eta = self.hp["inner_lr"] if self.hp["inner_lr"] is not None else ctx.lr
        if eta is None:
            raise ConfigError("madaug's look-ahead needs a learning rate: the classifier's (StepContext.lr) or "
                              "inner_lr")
        with eval_mode(ctx.features):
            with torch.no_grad():
                feats = torch.cat([ctx.features(c) for c in x_train.split(self.hp["explore_chunk"])])
            mag, logits = self.policy(feats)
            assert mag is not None
            mixed = mix_ops(self.op_set, x_train, mag, F.softmax(logits, dim=-1))  # temperature 1
            eps = self.hp["label_smoothing"]
            loss_train = F.cross_entropy(self._checked(model(mixed)), y_train, label_smoothing=eps)
            g = torch.autograd.grad(loss_train, weights, create_graph=True)
            fast = {n: (w.detach() - eta * gi.detach()).requires_grad_() for (n, w), gi in zip(named, g)}
            val_logits = self._checked(functional_call(model, fast, (x_val,)))
            loss_val = F.cross_entropy(val_logits, y_val, label_smoothing=eps)
            v = torch.autograd.grad(loss_val, list(fast.values()))
            inner = torch.stack([(gi * vi).sum() for gi, vi in zip(g, v)]).sum()
            grads = torch.autograd.grad(-eta * inner, params, allow_unused=True)
        grads = tuple(torch.zeros_like(p) if gr is None else gr for p, gr in zip(params, grads))
        return {"explore_loss": loss_val.detach(), "explore_train_loss": loss_train.detach()}, grads

    def _checked(self, out: Tensor) -> Tensor:
        if out.dim() != 2 or out.shape[1] != self.ctx.num_classes:
            raise ConfigError(f"madaug looks ahead with a classifier over {self.ctx.num_classes} classes, got "
                              f"outputs of shape {tuple(out.shape)}; it supports tasks: "
                              f"{', '.join(sorted(self.tasks))}")
        return out

    def classifier_label_smoothing(self) -> float:
        return float(self.hp["label_smoothing"])

    # ------------------------------------------------------------------ introspection
    def base_boxes(self, shape: tuple[int, ...], image_hw: tuple[int, int], device: torch.device) -> Tensor:
        """Boxes (*shape, 4) of the base crop's distribution (the whole image when it is "none")."""
        n = math.prod(shape)
        if self.base_crop == "pad":
            pad, (h, w) = self.hp["base_pad"], image_hw
            offset = torch.randint(0, 2 * pad + 1, (2, n), device=device).float() - pad  # window corner - pad
            ones = torch.ones(n, device=device)
            box = torch.stack([0.5 + offset[0] / h, 0.5 + offset[1] / w, ones, ones], dim=-1)
        elif self.base_crop == "resized":
            box = torch.stack(sample_resized_crop_boxes(n, image_hw, (self.hp["base_scale_min"], 1.0), BASE_RATIO,
                                                        device), dim=-1)
        else:
            box = torch.tensor([0.5, 0.5, 1.0, 1.0], device=device).expand(n, 4)
        return box.reshape(*shape, 4)

    @torch.no_grad()
    def inspect(self, x: Tensor, ctx: StepContext) -> dict[str, Tensor]:
        out = super().inspect(x, ctx)
        if not out:
            return out
        b, hw = x.shape[0], (x.shape[-2], x.shape[-1])
        # p_T from the reported p = softmax(logits): softmax(log p / T), no second classifier pass
        probs = F.softmax(out["op_probs"].log() / self.temperature, dim=-1).repeat_interleave(INSPECT_SAMPLES, 0)
        ops = self.draw_ops(probs)  # (B*S, k)
        mag = out["magnitudes"].repeat_interleave(INSPECT_SAMPLES, 0)
        m = jitter_magnitudes(mag.gather(1, ops), self.hp["delta"])
        values = torch.trunc(adaaug_values(ops, m, *hw))  # translations move whole pixels
        augmented = torch.rand(b * INSPECT_SAMPLES, 1, device=x.device) < self.ratio()
        tx = ADAAUG_NAMES.index("TranslateX")
        ty = ADAAUG_NAMES.index("TranslateY")
        shift_x = torch.where(augmented & (ops == tx), values, 0.0).sum(-1)
        shift_y = torch.where(augmented & (ops == ty), values, 0.0).sum(-1)
        base = self.base_boxes((b * INSPECT_SAMPLES,), hw, x.device)
        out["crop_boxes"] = window_boxes(base, shift_y, shift_x, hw).view(b, INSPECT_SAMPLES, 4)
        return out
