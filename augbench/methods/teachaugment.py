"""`teachaugment`: augmentation adversarial to the classifier, recognisable to its EMA teacher (Suzuki, CVPR 2022).

Objective (paper Eq. 1): the augmentation model a_phi maximises the target classifier's loss
minus the teacher's loss on the same augmented image, the classifier minimises its loss; the
teacher is an exponential moving average of the classifier. Online, with no search phase.

Augmentation model (the public code's `nn_aug`), from a noise vector z ~ N(0, I_128) per image
shared by both parts, and the one-hot label as context (`context`):

- colour: per-pixel scale and shift (3 + 3 channels) from a 1x1-conv MLP on the normalised
  image (+ a 1x1 embedding of the label), plus a global scale and shift (1 + 1) from an MLP
  on (label, z); scale = 1 + color_scale (sigmoid(.) - 1/2), shift = sigmoid(.) - 1/2, then
  x' = fold(scale x + shift), fold = the triangle wave reflecting R into [0, 1];
- geometric: a 2x3 affine map A = I + geometric_scale (sigmoid(MLP(label, z)) - 1/2),
  applied by one `grid_sample` (output -> input, zero padding), after the colour part.

Hidden layers: bias-free linear/1x1 conv, BatchNorm on batch statistics only, LeakyReLU(0.2),
dropout 0.8; output layers and apply-logits start at zero, so the model starts as the
identity. Each part is applied with a relaxed-Bernoulli probability sigmoid(logit[label])
(temperature 0.05): scale, shift and A are mixed with the identity by that sample.

Training (per step, the public code's order): (1) teacher <- d teacher + (1 - d) classifier
over parameters (d = 0.999; the first update copies); (2) every `update_every` steps, one AdamW
step of the augmentation model on the training batch, minimising
    NS_eps(target(a(x)), y) + CE(teacher(a(x)), y) + color_reg * SWD(x, colour(x)),
where NS_eps = -sum_k t_k log(1 - p_k) with label-smoothed targets t (the non-saturating form
of "maximise the target's cross-entropy", as a GAN generator's loss) and SWD the sliced
Wasserstein distance between original and colour-augmented pixels; neither forward updates
BatchNorm running statistics; (3) the classifier trains on a fresh draw made without
gradients. The method runs (2) itself inside `sample` with its own pass through the
classifier (reached through `attach_classifier`) and its own optimizer: the trainer's single
backward could give the augmentation only the gradient of the classifier's own cross-entropy,
with the wrong sign, the wrong loss and at every step. Its optimizer holds no gradient when the
trainer steps, so the trainer leaves it alone (AdaAug's pattern); its state is checkpointed.

Replay buffer (the paper's ensemble trick): every `replay_every` epochs a frozen copy of the
augmentation model is stored; once it holds one, the classifier's batches are cut into groups
of `replay_group` images, each group augmented by a copy drawn with priority decay^age (the
current model 1), and each group is its own forward pass: the models' BatchNorm normalises by
that group's statistics, as the public code's forward per 8-image chunk does. augbench runs
every group of a copy in one batched pass (`GroupBatchNorm` keeps the statistics apart).

Parts (`space`): the paper's model learns both, colour then geometric, on every dataset
("both", the default); "color" or "geometric" keeps one part, and "auto" the part of the
benchmark's family (colour on colour benchmarks, geometric on crop/rotation). Labels only:
classification.
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Iterator, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from augbench.errors import ConfigError
from augbench.hparams import HParam
from augbench.methods import AugmentationMethod, MethodContext, StepContext, Views, register_method, repeat_views
from augbench.methods.adaaug import random_pad_crop
from augbench.transforms.color import rgb_to_hsv
from augbench.transforms.geometry import warp

# The public code's CIFAR normaliser: the colour model reads normalised images and the colour
# regulariser compares normalised pixels (its weight 10 is set on that scale).
NORM_MEAN = (0.4914, 0.4822, 0.4465)
NORM_STD = (0.2023, 0.1994, 0.2010)
LEAK = 0.2  # LeakyReLU slope, also the Kaiming-init gain parameter
SWD_PROJECTIONS = 128
GEOMETRIC_INSPECT_SAMPLES = 32  # affine draws per input behind `inspect`'s ranges and boxes
COLOR_INSPECT_SAMPLES = 8  # colour draws per input behind `inspect`'s hue range
INSPECT_GRID = 8  # pixels per side on which `inspect` measures hue changes
PARTS = {"color": ("color",), "geometric": ("geometric",), "both": ("color", "geometric")}


# ---------------------------------------------------------------------------- building blocks

def fold_unit(x: Tensor) -> Tensor:
    """The triangle wave of period 2 with values in [0, 1]: identity on [0, 1], mirrored outside.

    Its gradient is +-1 everywhere (0 only exactly at odd integers), unlike clamping.
    """
    return 1.0 - (1.0 - torch.remainder(x, 2.0)).abs()


def relaxed_bernoulli(logits: Tensor, temperature: float) -> Tensor:
    """A differentiable sample in (0, 1) of Bernoulli(sigmoid(logits)) (binary Concrete)."""
    u = torch.rand_like(logits).clamp(1e-6, 1 - 1e-6)
    return torch.sigmoid((torch.log(u) - torch.log1p(-u) + logits) / temperature)


def non_saturating_loss(logits: Tensor, y: Tensor, epsilon: float) -> Tensor:
    """Mean over the batch of -sum_k t_k log(1 - p_k), t = (1 - eps) onehot(y) + eps / K.

    Minimising it drives p_y down (raises the cross-entropy) with gradients that do not vanish
    when the classifier is confident.
    """
    k = logits.shape[-1]
    target = F.one_hot(y, k).to(logits.dtype) * (1.0 - epsilon) + epsilon / k
    log_not = torch.log((-torch.expm1(F.log_softmax(logits, -1))).clamp_min(1e-12))  # log(1 - p), stably
    return -(target * log_not).sum(-1).mean()


def sliced_wasserstein(x1: Tensor, x2: Tensor, n_projections: int = SWD_PROJECTIONS) -> Tensor:
    """Squared sliced Wasserstein distance between the colours of two image batches (B, 3, H, W).

    As the public code: random unit projections of the RGB values, sorted across the BATCH at
    each pixel position and projection, so it compares the batch's colour distributions, not
    each image's histogram (an image may change colour as long as the batch's colours stay).
    """
    a = x1.flatten(2).transpose(1, 2)  # (B, HW, 3)
    b = x2.flatten(2).transpose(1, 2)
    proj = torch.randn(3, n_projections, device=x1.device, dtype=x1.dtype)
    proj = proj / (proj.norm(dim=0, keepdim=True) + 1e-12)
    return ((a @ proj).sort(0).values - (b @ proj).sort(0).values).pow(2).mean()


def padding_mask(x: Tensor) -> Tensor:
    """(B, 1, H, W): False on rows or columns that are black across the whole image (zero padding)."""
    h, w = x.shape[-2:]
    black = (x.sum(1, keepdim=True) == 0).to(x.dtype)
    return (black.sum(-1, keepdim=True) < w) & (black.sum(-2, keepdim=True) < h)


def cutout(x: Tensor, size: int) -> Tensor:
    """Zero one size x size square per image, centred uniformly on the image and clipped to it.

    The public code's Cutout (after normalisation there, so it writes the mean colour; in
    [0, 1] space it writes black).
    """
    n, _, h, w = x.shape
    cy = torch.randint(0, h, (n, 1), device=x.device)
    cx = torch.randint(0, w, (n, 1), device=x.device)
    rows, cols = torch.arange(h, device=x.device), torch.arange(w, device=x.device)
    in_rows = (rows >= cy - size // 2) & (rows < cy + size // 2)  # (N, H)
    in_cols = (cols >= cx - size // 2) & (cols < cx + size // 2)  # (N, W)
    hole = in_rows[:, None, :, None] & in_cols[:, None, None, :]
    return x.masked_fill(hole, 0.0)


def affine_rotation(theta: Tensor) -> Tensor:
    """(...,) angle in radians of the rotation closest to each affine map's linear part (..., 2, 3).

    Counter-clockwise positive, the convention of `geometry.rotation_matrix` (square images).
    """
    return torch.atan2(theta[..., 1, 0] - theta[..., 0, 1], theta[..., 0, 0] + theta[..., 1, 1])


def affine_boxes(theta: Tensor) -> Tensor:
    """(..., 4) bounding boxes (center_y, center_x, height, width) of the input region each map reads.

    Exact for scale-and-translate maps (then the map is `geometry.crop_matrix` of that box);
    for rotations and shears, the axis-aligned box around the sampled parallelogram.
    """
    cx, cy = (theta[..., 0, 2] + 1) / 2, (theta[..., 1, 2] + 1) / 2
    width = theta[..., 0, 0].abs() + theta[..., 0, 1].abs()
    height = theta[..., 1, 0].abs() + theta[..., 1, 1].abs()
    return torch.stack([cy, cx, height, width], dim=-1)


def hue_shift(x: Tensor, out: Tensor) -> Tensor:
    """(N,) saturation-weighted circular mean of the per-pixel hue change from x to out, in turns (-1/2, 1/2]."""
    h0, s0 = rgb_to_hsv(x)[:, :2].unbind(1)
    h1, s1 = rgb_to_hsv(out)[:, :2].unbind(1)
    angle = 2 * math.pi * (h1 - h0)
    weight = s0 * s1 + 1e-8
    sin, cos = (weight * angle.sin()).flatten(1).sum(1), (weight * angle.cos()).flatten(1).sum(1)
    return torch.atan2(sin, cos) / (2 * math.pi)


@contextlib.contextmanager
def no_running_stats(*modules: nn.Module | None) -> Iterator[None]:
    """BatchNorm layers normalise by batch statistics and leave their running statistics alone.

    Applies in train mode (the public code's augmentation update: the classifier's statistics
    were already updated by its own step on the same data); restores the flags afterwards.
    """
    norms = [m for module in modules if module is not None for m in module.modules()
             if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    flags = [m.track_running_stats for m in norms]
    for m in norms:
        m.track_running_stats = False
    try:
        yield
    finally:
        for m, flag in zip(norms, flags):
            m.track_running_stats = flag


@contextlib.contextmanager
def train_mode(*modules: nn.Module) -> Iterator[None]:
    """Modules in train mode for the block (dropout on), every submodule's flag restored after."""
    flags = [(m, m.training) for module in modules for m in module.modules()]
    for module in modules:
        module.train()
    try:
        yield
    finally:
        for m, flag in flags:
            m.training = flag


class GroupBatchNorm:
    """BatchNorm on batch statistics that, inside `batch_groups`, normalises each group of rows by its own.

    A mixin for `nn.BatchNorm1d`/`2d` built with `track_running_stats=False` (the same parameters
    and state keys): one batched pass over several groups gives what a pass per group gives.
    """

    groups: Tensor | None = None  # (N,) group id of each row, ids 0..G-1; None: the whole batch

    def forward(self, x: Tensor) -> Tensor:
        groups = self.groups
        if groups is None:
            return super().forward(x)  # type: ignore[misc]
        n, c = x.shape[:2]
        flat = x.reshape(n, c, -1)
        g = int(groups.max()) + 1
        count = torch.zeros(g, device=x.device, dtype=x.dtype).index_add_(
            0, groups, torch.full((n,), float(flat.shape[-1]), device=x.device, dtype=x.dtype))[:, None]
        mean = torch.zeros(g, c, device=x.device, dtype=x.dtype).index_add_(0, groups, flat.sum(-1)) / count
        centred = flat - mean[groups][..., None]
        var = torch.zeros(g, c, device=x.device, dtype=x.dtype).index_add_(0, groups, centred.pow(2).sum(-1)) / count
        out = centred / (var[groups][..., None] + self.eps).sqrt()  # type: ignore[attr-defined]
        if self.affine:  # type: ignore[attr-defined]
            out = out * self.weight[:, None] + self.bias[:, None]  # type: ignore[attr-defined]
        return out.reshape(x.shape)


class GroupBatchNorm1d(GroupBatchNorm, nn.BatchNorm1d):
    pass


class GroupBatchNorm2d(GroupBatchNorm, nn.BatchNorm2d):
    pass


@contextlib.contextmanager
def batch_groups(module: nn.Module, groups: Tensor | None) -> Iterator[None]:
    """Inside the block, every `GroupBatchNorm` of `module` normalises the rows of each group of `groups`
    (N,) (ids 0..G-1) by that group's statistics; None: by the whole batch's."""
    norms = [m for m in module.modules() if isinstance(m, GroupBatchNorm)]
    for m in norms:
        m.groups = groups
    try:
        yield
    finally:
        for m in norms:
            m.groups = None


def _init_weights(module: nn.Module) -> None:
    """The public code's init: Kaiming-normal (leaky ReLU 0.2, fan out) for every linear and conv."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.kaiming_normal_(m.weight, a=LEAK, mode="fan_out")


def _dropout(p: float, two_d: bool = False) -> nn.Module:
    if p <= 0:
        return nn.Identity()
    return nn.Dropout2d(p) if two_d else nn.Dropout(p)


class NoiseMLP(nn.Module):
    """in -> [linear, BN (batch statistics), LeakyReLU, dropout] x 2 -> linear to `out` (zero-initialised)."""

    def __init__(self, n_in: int, hidden: int, n_out: int, dropout: float) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Linear(n_in, hidden, bias=False), GroupBatchNorm1d(hidden, track_running_stats=False),
            nn.LeakyReLU(LEAK), _dropout(dropout),
            nn.Linear(hidden, hidden, bias=False), GroupBatchNorm1d(hidden, track_running_stats=False),
            nn.LeakyReLU(LEAK), _dropout(dropout),
        )
        self.out = nn.Linear(hidden, n_out, bias=False)
        _init_weights(self)
        nn.init.zeros_(self.out.weight)

    def forward(self, z: Tensor) -> Tensor:
        return self.out(self.body(z))


class ColorAugmentation(nn.Module):
    """Per-pixel and global colour scale/shift from (normalised image, label, noise)."""

    def __init__(self, num_classes: int, context: bool, noise_dim: int, hidden: int, dropout: float,
                 scale: float) -> None:
        super().__init__()
        self.scale = scale
        self.context_layer = nn.Conv2d(num_classes, hidden, 1, bias=False) if context else None
        self.pixel_in = nn.Conv2d(3, hidden, 1, bias=False)
        self.pixel_body = nn.Sequential(
            GroupBatchNorm2d(hidden, track_running_stats=False), nn.LeakyReLU(LEAK), _dropout(dropout, True),
            nn.Conv2d(hidden, hidden, 1, bias=False),
            GroupBatchNorm2d(hidden, track_running_stats=False), nn.LeakyReLU(LEAK), _dropout(dropout, True),
        )
        self.pixel_out = nn.Conv2d(hidden, 6, 1, bias=False)
        self.global_net = NoiseMLP(noise_dim + (num_classes if context else 0), 4 * noise_dim, 2, dropout)
        self.logits = nn.Parameter(torch.zeros(num_classes if context else 1))
        _init_weights(self)
        nn.init.zeros_(self.pixel_out.weight)
        nn.init.zeros_(self.global_net.out.weight)

    def forward(self, x_norm: Tensor, z: Tensor, onehot: Tensor | None, index: Tensor,
                temperature: float) -> tuple[Tensor, Tensor]:
        """(scale, shift), each (B, 3, H, W), mixed with the identity by a relaxed Bernoulli draw."""
        feature = self.pixel_in(x_norm)
        if self.context_layer is not None and onehot is not None:
            feature = feature + self.context_layer(onehot[:, :, None, None])
        local_scale, local_shift = self.pixel_out(self.pixel_body(feature)).chunk(2, dim=1)
        g = self.global_net(z if onehot is None else torch.cat([onehot, z], 1))
        scale = self.scale * (torch.sigmoid(g[:, :1, None, None] + local_scale) - 0.5) + 1
        shift = torch.sigmoid(g[:, 1:, None, None] + local_shift) - 0.5
        p = relaxed_bernoulli(self.logits[index], temperature).view(-1, 1, 1, 1)
        return 1 - p + p * scale, p * shift


class GeometricAugmentation(nn.Module):
    """A 2x3 affine map per image from (label, noise): I + scale (sigmoid(MLP) - 1/2)."""

    identity: Tensor

    def __init__(self, num_classes: int, context: bool, noise_dim: int, dropout: float, scale: float) -> None:
        super().__init__()
        self.scale = scale
        self.net = NoiseMLP(noise_dim + (num_classes if context else 0), 4 * noise_dim, 6, dropout)
        self.logits = nn.Parameter(torch.zeros(num_classes if context else 1))
        self.register_buffer("identity", torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), persistent=False)

    def forward(self, z: Tensor, onehot: Tensor | None, index: Tensor, temperature: float) -> Tensor:
        """(B, 2, 3) output -> input maps, mixed with the identity by a relaxed Bernoulli draw."""
        out = self.net(z if onehot is None else torch.cat([onehot, z], 1)).view(-1, 2, 3)
        theta = self.scale * (torch.sigmoid(out) - 0.5) + self.identity
        p = relaxed_bernoulli(self.logits[index], temperature).view(-1, 1, 1)
        return (1 - p) * self.identity + p * theta


class AugmentationModel(nn.Module):
    """Colour then geometric part (either may be absent), both from one noise vector per image."""

    norm_mean: Tensor
    norm_std: Tensor

    def __init__(self, parts: tuple[str, ...], num_classes: int, hp: Mapping[str, Any]) -> None:
        super().__init__()
        self.num_classes, self.context = num_classes, bool(hp["context"])
        self.noise_dim, self.temperature = hp["noise_dim"], hp["apply_temperature"]
        self.mask_padding = hp["base_pad"] > 0  # only zero padding makes whole black rows here
        self.color = ColorAugmentation(num_classes, self.context, hp["noise_dim"], hp["color_hidden"], hp["dropout"],
                                       hp["color_scale"]) if "color" in parts else None
        self.geometric = GeometricAugmentation(num_classes, self.context, hp["noise_dim"], hp["dropout"],
                                               hp["geometric_scale"]) if "geometric" in parts else None
        self.register_buffer("norm_mean", torch.tensor(NORM_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("norm_std", torch.tensor(NORM_STD).view(1, 3, 1, 1), persistent=False)

    def normalize(self, x: Tensor) -> Tensor:
        return (x - self.norm_mean) / self.norm_std

    def inputs(self, labels: Tensor, ref: Tensor) -> tuple[Tensor, Tensor | None, Tensor]:
        """(noise, one-hot context or None, index into the apply-logits) for a batch of `labels`."""
        z = torch.randn(labels.shape[0], self.noise_dim, device=ref.device, dtype=ref.dtype)
        if not self.context:
            return z, None, torch.zeros_like(labels)
        return z, F.one_hot(labels, self.num_classes).to(ref.dtype), labels

    def color_transform(self, x: Tensor, z: Tensor, onehot: Tensor | None, index: Tensor) -> Tensor:
        assert self.color is not None
        scale, shift = self.color(self.normalize(x), z, onehot, index, self.temperature)
        out = scale * x + shift
        if self.mask_padding:
            out = out * padding_mask(x).to(x.dtype)
        return fold_unit(out)

    def forward(self, x: Tensor, labels: Tensor, regularize: bool = False) -> tuple[Tensor, Tensor]:
        """(augmented x, colour regulariser SWD or 0); differentiable in the model's parameters."""
        z, onehot, index = self.inputs(labels, x)
        out, reg = x, x.new_zeros(())
        if self.color is not None:
            out = self.color_transform(x, z, onehot, index)
            if regularize:
                reg = sliced_wasserstein(self.normalize(x), self.normalize(out))
        if self.geometric is not None:
            out = warp(out, self.geometric(z, onehot, index, self.temperature))
        return out, reg


def choose_parts(space: str, families: frozenset[str]) -> tuple[str, ...]:
    """The parts of the augmentation model for `space` ("both": the paper's; "auto": the benchmark family's part)."""
    if space != "auto":
        return PARTS[space]
    if families == frozenset({"color"}):
        return PARTS["color"]
    if families & {"crop", "rotation"}:
        return PARTS["geometric"]
    return PARTS["both"]


@register_method("teachaugment")
class TeachAugment(AugmentationMethod):
    """Adversarial colour/affine augmentation model kept recognisable by an EMA teacher of the classifier."""

    ema_updates: Tensor
    teacher: nn.Module | None
    _classifier: nn.Module | None = None  # set by attach_classifier, outside the module tree

    families = frozenset({"color", "crop", "rotation"})
    tasks = frozenset({"classification"})  # both losses need labels and a classifier that learns
    # TeachAugment's CIFAR pipeline (pad-4 crop before, Cutout 16 after); label smoothing eps: its
    # WRN-28-10 configs, 0.2 on CIFAR-10 and 0.1 on CIFAR-100
    recipes = {
        "cifar10-crop": {"base_pad": 4, "cutout": 16, "label_smoothing": 0.2},
        "cifar100-crop": {"base_pad": 4, "cutout": 16, "label_smoothing": 0.1},
    }
    hparams = {
        "space": HParam("both", str, choices=("both", "color", "geometric", "auto"),
                        help="parts of the augmentation model: both (the paper's, colour then geometric), one of "
                             "them, or auto (colour on colour benchmarks, geometric on crop/rotation)"),
        "ema_decay": HParam(0.999, float, low=0.0, high=1.0, help="teacher EMA decay (public code: 0.999)"),
        "update_every": HParam(5, int, low=1, help="training steps per augmentation-model update (public code: 5)"),
        "label_smoothing": HParam(0.1, float, low=0.0, high=1.0,
                                  help="eps of the adversarial non-saturating loss (public code: 0.1; CIFAR-10 "
                                       "WRN-28-10: 0.2)"),
        "lr": HParam(1e-3, float, low=0.0, help="AdamW learning rate of the augmentation model"),
        "weight_decay": HParam(1e-2, float, low=0.0, help="AdamW weight decay of the augmentation model"),
        "color_reg": HParam(10.0, float, low=0.0, help="weight of the sliced-Wasserstein colour regulariser"),
        "color_scale": HParam(0.8, float, low=0.0, help="colour scale range: 1 +- color_scale / 2"),
        "geometric_scale": HParam(0.5, float, low=0.0, help="affine entries range: identity +- geometric_scale / 2"),
        "context": HParam(True, bool, help="condition the augmentation on the label (one-hot); test time: the "
                                           "classifier's predicted label"),
        "noise_dim": HParam(128, int, low=1, help="noise vector size (MLP hidden size: 4x)"),
        "color_hidden": HParam(128, int, low=1, help="channels of the per-pixel colour MLP"),
        "dropout": HParam(0.8, float, low=0.0, high=0.99, help="dropout of the augmentation model's hidden layers"),
        "apply_temperature": HParam(0.05, float, low=1e-4, help="relaxed-Bernoulli temperature of random apply"),
        "replay_every": HParam(10, int, low=0, help="epochs between stored copies of the augmentation model (0: no "
                                                    "replay buffer; public code: 10 on CIFAR, 1 on ImageNet)"),
        "replay_decay": HParam(0.9, float, low=0.0, high=1.0, help="priority decay per stored copy"),
        "replay_group": HParam(8, int, low=1, help="images per replay draw in a classifier batch"),
        "base_pad": HParam(0, int, low=0, help="zero-pad-by-N random crop before the augmentation model (CIFAR: 4)"),
        "cutout": HParam(0, int, low=0, help="side of the Cutout square on the classifier's inputs (CIFAR: 16)"),
    }

    @classmethod
    def families_for(cls, hp: Mapping[str, Any]) -> frozenset[str]:
        """colour: the colour family; geometric: crops and rotations; both or auto: all three."""
        by_space = {"color": frozenset({"color"}), "geometric": frozenset({"crop", "rotation"})}
        return by_space.get(hp["space"], cls.families)

    def __init__(self, ctx: MethodContext, **hp: Any) -> None:
        super().__init__(ctx, **hp)
        self.parts = choose_parts(self.hp["space"], ctx.families)
        if "color" in self.parts and ctx.image_shape[0] != 3:
            raise ConfigError(f"teachaugment: the colour part needs RGB images, got {ctx.image_shape[0]} channels")
        self.augmenter = AugmentationModel(self.parts, ctx.num_classes, self.hp)
        self.replay = nn.ModuleList()  # frozen copies of `augmenter`, oldest first
        self.teacher: nn.Module | None = None
        self.register_buffer("ema_updates", torch.zeros((), dtype=torch.long))
        # its host copy (whether the teacher was ever updated), read at every update without a device read-back
        self._ema_started = False
        self.register_load_state_dict_post_hook(
            lambda module, keys: setattr(module, "_ema_started", bool(module.ema_updates > 0)))
        self._optimizer: torch.optim.Optimizer | None = None

    # ------------------------------------------------------------------ the classifier and its teacher
    def attach_classifier(self, model: nn.Module) -> None:
        """Keep a reference to the classifier and build its teacher (a frozen copy, updated by EMA)."""
        object.__setattr__(self, "_classifier", model)
        teacher = copy.deepcopy(model)
        for p in teacher.parameters():
            p.requires_grad_(False)
        self.teacher = teacher

    @torch.no_grad()
    def update_teacher(self) -> None:
        """teacher <- d teacher + (1 - d) classifier, over parameters; the first update copies."""
        model, teacher = self._classifier, self.teacher
        if model is None or teacher is None:
            raise ConfigError("teachaugment: no classifier attached (Trainer calls attach_classifier)")
        src = [p.detach() for p in model.parameters()]
        dst: list[Tensor] = list(teacher.parameters())
        if not self._ema_started:
            torch._foreach_copy_(dst, src)
        else:
            d = self.hp["ema_decay"]
            torch._foreach_mul_(dst, d)
            torch._foreach_add_(dst, src, alpha=1.0 - d)
        self.ema_updates += 1
        self._ema_started = True

    # ------------------------------------------------------------------ the adversarial update
    def augmentation_loss(self, x: Tensor, y: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """NS_eps(target) + CE(teacher) + color_reg * SWD on one draw of the current model, and its parts."""
        model, teacher = self._classifier, self.teacher
        if model is None or teacher is None:
            raise ConfigError("teachaugment: no classifier attached (Trainer calls attach_classifier)")
        aug, reg = self.augmenter(x, y, regularize=self.hp["color_reg"] > 0)
        with no_running_stats(model, teacher):
            target_logits = model(aug)
            teacher_logits = teacher(aug)
        adv = non_saturating_loss(target_logits, y, self.hp["label_smoothing"])
        tea = F.cross_entropy(teacher_logits, y)
        loss = adv + tea + self.hp["color_reg"] * reg
        with torch.no_grad():
            logs = {"aug_loss_adv": adv.detach(), "aug_loss_teacher": tea.detach(), "aug_color_reg": reg.detach(),
                    "aug_acc_target": (target_logits.argmax(-1) == y).float().mean(),
                    "aug_acc_teacher": (teacher_logits.argmax(-1) == y).float().mean()}
        return loss, logs

    def adversarial_step(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        """One optimizer step of the augmentation model; classifier and teacher get no gradient."""
        params = [p for p in self.augmenter.parameters() if p.requires_grad]
        with torch.enable_grad(), train_mode(self.augmenter):
            loss, logs = self.augmentation_loss(x, y)
            grads = torch.autograd.grad(loss, params, allow_unused=True)
        opt = self.make_optimizer()
        opt.zero_grad(set_to_none=True)
        for p, g in zip(params, grads):
            p.grad = torch.zeros_like(p) if g is None else g
        opt.step()
        opt.zero_grad(set_to_none=True)  # nothing left for the trainer's step of this optimizer
        return logs

    def make_optimizer(self) -> torch.optim.Optimizer:
        """AdamW over the live augmentation model; stepped by `adversarial_step`, checkpointed by the trainer."""
        if self._optimizer is None:
            self._optimizer = torch.optim.AdamW([p for p in self.augmenter.parameters() if p.requires_grad],
                                                lr=self.hp["lr"], weight_decay=self.hp["weight_decay"])
        return self._optimizer

    # ------------------------------------------------------------------ drawing augmentations
    def _labels(self, x: Tensor, y: Tensor | None) -> Tensor:
        """Context labels: the given ones, else the attached classifier's predictions, else uniform draws."""
        if y is not None:
            return y
        if self.hp["context"] and self._classifier is not None:
            with torch.no_grad():
                return self._classifier(x).argmax(-1)
        return torch.randint(self.ctx.num_classes, (x.shape[0],), device=x.device)

    def replay_priorities(self) -> Tensor:
        """(n + 1,) draw weights: stored copies oldest first (decay^age), then the current model (1)."""
        n, d = len(self.replay), self.hp["replay_decay"]
        return torch.tensor([d ** (n - i) for i in range(n)] + [1.0])

    @torch.no_grad()
    def draw(self, x: Tensor, labels: Tensor) -> Tensor:
        """The classifier's augmentation of `x`: with a replay buffer, groups of `replay_group` images,
        each from a copy drawn from the buffer and normalised by its own BatchNorm statistics."""
        policies = [*self.replay, self.augmenter]
        with train_mode(*policies):  # the distribution trained is the one with dropout on
            if len(policies) == 1:
                return self.augmenter(x, labels)[0]
            group = self.hp["replay_group"]
            n_groups = math.ceil(x.shape[0] / group)
            choice = torch.multinomial(self.replay_priorities(), n_groups, replacement=True).to(x.device)
            group_of = torch.arange(x.shape[0], device=x.device) // group
            per_image = choice[group_of]
            out = torch.empty_like(x)
            for j in choice.unique().tolist():  # one pass per copy drawn, every group of it at once
                rows = (per_image == j).nonzero().squeeze(1)
                ids = torch.unique(group_of[rows], return_inverse=True)[1]
                with batch_groups(policies[j], ids):
                    out[rows] = policies[j](x[rows], labels[rows])[0]
            return out

    @property
    def step_period(self) -> int:
        return int(self.hp["update_every"])  # one augmentation-model update per period

    def sample(self, x: Tensor, ctx: StepContext, n_views: int = 1) -> Views:
        x = repeat_views(x, n_views)
        y = ctx.y.repeat(n_views) if ctx.y is not None else None
        if self.hp["base_pad"]:
            x = random_pad_crop(x, self.hp["base_pad"])
        info: dict[str, Tensor] = {}
        if ctx.training and y is not None and self._classifier is not None:
            self.update_teacher()
            if ctx.step % self.hp["update_every"] == 0:
                info.update(self.adversarial_step(x, y))
        out = self.draw(x, self._labels(x, y))
        if ctx.training and self.hp["cutout"]:
            out = cutout(out, self.hp["cutout"])
        return Views(out, n_views, info=info)

    def objective(self, per_sample_loss: Tensor, views: Views) -> tuple[Tensor, dict[str, Tensor]]:
        """The classifier's mean loss (the views carry no gradient); logs the last augmentation update."""
        return per_sample_loss.mean(), {k: v for k, v in views.info.items() if k.startswith("aug_")}

    @torch.no_grad()
    def test_views(self, x: Tensor, n_views: int, ctx: StepContext) -> Tensor:
        """Views from the training distribution without Cutout; labels predicted by the classifier."""
        labels = self._labels(x, ctx.y)
        views = []
        for _ in range(n_views):  # one batch per view, as in training (the models' BatchNorm is per batch)
            v = random_pad_crop(x, self.hp["base_pad"]) if self.hp["base_pad"] else x
            views.append(self.draw(v, labels))
        return torch.cat(views)

    # ------------------------------------------------------------------ schedules and checkpoints
    def end_epoch(self, epoch: int, val_stats: Mapping[str, float]) -> dict[str, float]:
        """Store a frozen copy of the augmentation model every `replay_every` epochs."""
        every = self.hp["replay_every"]
        if every and (epoch + 1) % every == 0:
            self.replay.append(self._frozen_copy())
        return {"replay_size": float(len(self.replay))}

    def _frozen_copy(self) -> AugmentationModel:
        clone = copy.deepcopy(self.augmenter)
        for p in clone.parameters():
            p.requires_grad_(False)
        return clone

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False) -> Any:
        """Resize the replay buffer to the state's copies first (it grows during training)."""
        n = len({key.split(".")[1] for key in state_dict if key.startswith("replay.")})
        while len(self.replay) > n:
            del self.replay[len(self.replay) - 1]
        while len(self.replay) < n:
            self.replay.append(self._frozen_copy())
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    # ------------------------------------------------------------------ introspection
    @torch.no_grad()
    def inspect(self, x: Tensor, ctx: StepContext) -> dict[str, Tensor]:
        """The current model's distribution per input: apply probabilities, angle range, boxes, hue range."""
        b, aug = x.shape[0], self.augmenter
        labels = self._labels(x, ctx.y)
        out: dict[str, Tensor] = {}
        with train_mode(aug):
            if aug.geometric is not None:
                s = GEOMETRIC_INSPECT_SAMPLES
                z, onehot, index = aug.inputs(labels.repeat(s), x)
                theta = aug.geometric(z, onehot, index, aug.temperature).view(s, b, 2, 3)
                angle = affine_rotation(theta)
                out["rotation_range"] = torch.stack([angle.amin(0), angle.amax(0)], dim=-1)
                out["crop_boxes"] = affine_boxes(theta).transpose(0, 1).contiguous()  # (B, S, 4)
                out["geometric_apply"] = torch.sigmoid(aug.geometric.logits[index[:b]])
            if aug.color is not None:
                # The colour model is per pixel (1x1 convs): a strided pixel grid gives the same per-pixel
                # outputs (up to its BatchNorm's batch statistics) at a fraction of the cost.
                stride = max(1, min(x.shape[-2:]) // INSPECT_GRID)
                grid = x[..., ::stride, ::stride]
                shifts = []
                for _ in range(COLOR_INSPECT_SAMPLES):  # one batch per draw, as in training
                    z, onehot, index = aug.inputs(labels, grid)
                    shifts.append(hue_shift(grid, aug.color_transform(grid, z, onehot, index)))
                shift = torch.stack(shifts)
                out["hue_range"] = torch.stack([shift.amin(0), shift.amax(0)], dim=-1)
                out["color_apply"] = torch.sigmoid(aug.color.logits[index])
        return out
