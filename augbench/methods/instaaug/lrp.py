"""Location-related parameterization (LRP) of crops: InstaAug's invariance module phi (Section 3.3).

A small pre-activation CNN (the public code's sizes): conv 3->8 stride 2,
then pre-activation blocks 8->8, 8->16 stride 2, 16->32 stride 2 (and 32->32 stride 2 per
extra layer for large inputs). Every cell of a chosen layer is one candidate crop, centred on
the cell, with a side close to the cell's receptive field (4, 12, 24, 48, 96, 192 px for layers
0..5); one more "global" candidate is the whole image. A 1x1 head (no bias, weights / 10 at
init) gives each cell a logit; the global logit comes from a conv covering the whole last map.
Every convolution starts from the public code's He truncated normal (heads then / 10).

    logit_k = head_k(x) + cell_bias_k + prior[layer(k)] - ln(#cells of layer(k))

and ONE softmax over all K candidates, so the initial distribution is the layer prior spread
evenly over each layer's cells (Tiny-ImageNet: layers [2, 3, global], prior [0, 1, 3]:
K = 321, 84% on the global crop, entropy 1.2 nats).

Geometry convention (the public code mirrors it across the anti-diagonal; augbench does not):
the candidate of cell (row i, col j) of an h x w map is centred on image ROW (i + 0.5) / h and
COLUMN (j + 0.5) / w, as fractions, and is applied with `augbench.transforms.geometry.crop`,
whose `center_y` is the row. Boxes sit on the cell's block of the image (symmetric about the
image centre, so trimming is symmetric and K matches the public settings); the unit's own
receptive field, as for any 3x3 stride-2 conv with padding 1, is centred S/2 - 0.5 px up-left
of that (S = the layer's total stride: 1.5 px at layer 2, 3.5 px at layer 3), a small offset
next to the 24-48 px boxes, shared with the public code.

`LRPParameterization` is InstaAug's crop parameterization over these candidates; the
geometry, the network and the samplers are shared with AdaAug-with-LRP (`build_candidates`,
`CandidateSet`, `crop_candidates`, `default_lrp_config`, `prior_logits`, `layer_mass`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from augbench.errors import ConfigError
from augbench.methods import Views, repeat_views
from augbench.methods.instaaug.parameterization import INSPECT_SAMPLES, Parameterization
from augbench.models.networks import PreActBlock, he_truncated_normal_
from augbench.transforms.geometry import crop

GLOBAL = -1  # layer id of the whole-image candidate
TRUNK_CHANNELS = (8, 8, 16, 32)  # layers 0..3; deeper layers keep 32 channels
MAX_LAST_MAP = 8  # the trunk is deepened until its last map is at most this size (global conv kernel)
CLASS_GLOBAL_INIT = 5.0  # class-specific table: +5 on the global crop (public code)


# ----------------------------------------------------------------------------- geometry

def map_sizes(image_hw: tuple[int, int], depth: int) -> list[tuple[int, int]]:
    """Spatial size of trunk layers 0..depth (3x3 convs with padding 1: ceil(n / stride))."""
    h, w = image_hw
    sizes = [(math.ceil(h / 2), math.ceil(w / 2))]  # layer 0: stride-2 stem
    for layer in range(1, depth + 1):
        ph, pw = sizes[-1]
        sizes.append((ph, pw) if layer == 1 else (math.ceil(ph / 2), math.ceil(pw / 2)))
    return sizes


def receptive_side(layer: int) -> int:
    """Candidate side in pixels for a cell of `layer`: its receptive field + 1 (4, 12, 24, 48, ...).

    The stem's 3x3/2 conv sees 3 px; each later 3x3 conv adds 2 x its input stride, so layer l
    sees 3, 11, 23, 47, 95, 191 px: the public code's sides 4, 12, 24, 48 (64x64) and 96, 192
    (224x224) are these plus one.
    """
    if layer < 0:
        raise ConfigError(f"receptive_side: layer {layer} is not a trunk layer (0, 1, 2, ...)")
    return 4 if layer == 0 else 12 * 2 ** (layer - 1)


def trunk_depth(image_hw: tuple[int, int], layers: Sequence[int] = ()) -> int:
    """Deepest trunk layer needed: the chosen layers, at least 3, and a last map of at most 8x8."""
    depth = max([3, *[layer for layer in layers if layer >= 0]])
    while max(map_sizes(image_hw, depth)[depth]) > MAX_LAST_MAP:
        depth += 1
    return depth


def default_lrp_config(image_hw: tuple[int, int]) -> tuple[list[int], list[float], float]:
    """(layers, prior, max_outside) of the public code's setting for this input size.

    <= 48 px (CIFAR, 32x32): [2, global], prior [1, 3], cells more than 20% outside the image
    trimmed -> K = 17. <= 128 px (Tiny-ImageNet, 64x64): [2, 3, global], prior [0, 1, 3], no
    trimming -> K = 321. Larger (ImageNet, 224x224): [4, 5, global], prior [3, 3, 0], trimmed at
    20% -> K = 110.
    """
    side = min(image_hw)
    if side <= 48:
        return [2, GLOBAL], [1.0, 3.0], 0.2
    if side <= 128:
        return [2, 3, GLOBAL], [0.0, 1.0, 3.0], 1.0
    return [4, 5, GLOBAL], [3.0, 3.0, 0.0], 0.2


@dataclass(frozen=True)
class CandidateSet:
    """The K candidate crops of an LRP configuration, in logit order.

    `boxes` (K, 4): (center_y, center_x, height, width) as fractions of the image (the
    arguments of `geometry.crop`); `layer` (K,): position in `layers` of each candidate's
    layer; `cells` (K, 2): (row, col) of its cell in that layer's map ((0, 0) for global);
    `keep[n]`: which cells of layer n's flattened map (row-major) are candidates.
    """

    boxes: Tensor
    layer: Tensor
    cells: Tensor
    layers: tuple[int, ...]
    maps: tuple[tuple[int, int], ...]
    keep: tuple[Tensor, ...]

    def __len__(self) -> int:
        return self.boxes.shape[0]

    @property
    def counts(self) -> list[int]:
        """Number of candidates of each layer."""
        return [int(k.sum()) for k in self.keep]

    @property
    def names(self) -> list[str]:
        """Layer names for logs: "L2", "L3", ..., "global"."""
        return ["global" if layer == GLOBAL else f"L{layer}" for layer in self.layers]

    def index(self, layer: int, row: int = 0, col: int = 0) -> int:
        """Position in the candidate list of cell (row, col) of `layer` (GLOBAL: the whole image)."""
        if layer not in self.layers:
            raise ConfigError(f"layer {layer} is not among the LRP layers {list(self.layers)}")
        n = self.layers.index(layer)
        hit = ((self.layer == n) & (self.cells[:, 0] == row) & (self.cells[:, 1] == col)).nonzero()
        if hit.numel() == 0:
            raise ConfigError(f"cell ({row}, {col}) of layer {layer} is not a candidate (trimmed or outside the map)")
        return int(hit[0, 0])


def build_candidates(image_hw: tuple[int, int], layers: Sequence[int], max_outside: float = 1.0) -> CandidateSet:
    """Candidate crops of `layers` (GLOBAL = -1 for the whole image) at input size `image_hw`.

    A cell is dropped when more than `max_outside` of its box lies outside the image (the
    public code's `max_black_ratio`, evaluated here per cell: at 32x32 with 0.2 it trims the
    same two outer rings of layer 2, K = 17). Sides are capped at the image size.
    """
    layers = tuple(int(layer) for layer in layers)
    if not layers or len(set(layers)) != len(layers) or any(layer < GLOBAL for layer in layers):
        raise ConfigError(f"LRP layers must be distinct trunk layers (0, 1, ...) or -1 (global), got {list(layers)}")
    h, w = image_hw
    sizes = map_sizes(image_hw, trunk_depth(image_hw, layers))
    boxes, layer_of, cells, maps, keep = [], [], [], [], []
    for n, layer in enumerate(layers):
        if layer == GLOBAL:
            box = torch.tensor([[0.5, 0.5, 1.0, 1.0]])
            cell = torch.zeros(1, 2, dtype=torch.long)
            mask = torch.ones(1, dtype=torch.bool)
            maps.append((1, 1))
        else:
            mh, mw = sizes[layer]
            rows, cols = torch.meshgrid(torch.arange(mh), torch.arange(mw), indexing="ij")
            cell = torch.stack([rows.flatten(), cols.flatten()], -1)
            side = receptive_side(layer)
            cy = (cell[:, 0].double() + 0.5) / mh
            cx = (cell[:, 1].double() + 0.5) / mw
            hh = torch.full_like(cy, min(side / h, 1.0))
            ww = torch.full_like(cx, min(side / w, 1.0))
            inside_y = ((cy + hh / 2).clamp(max=1) - (cy - hh / 2).clamp(min=0)).clamp(min=0) / hh
            inside_x = ((cx + ww / 2).clamp(max=1) - (cx - ww / 2).clamp(min=0)).clamp(min=0) / ww
            mask = 1 - inside_y * inside_x <= max_outside + 1e-9
            if not mask.any():
                raise ConfigError(f"LRP layer {layer}: max_outside={max_outside} trims every cell; raise it")
            box = torch.stack([cy, cx, hh, ww], -1).float()[mask]
            cell = cell[mask]
            maps.append((mh, mw))
        boxes.append(box)
        cells.append(cell)
        layer_of.append(torch.full((box.shape[0],), n, dtype=torch.long))
        keep.append(mask)
    return CandidateSet(torch.cat(boxes), torch.cat(layer_of), torch.cat(cells), layers, tuple(maps), tuple(keep))


def crop_candidates(x: Tensor, boxes: Tensor, index: Tensor) -> Tensor:
    """Crop image n of `x` (N, C, H, W) with candidate `index[n]` of `boxes` (K, 4), one resample.

    Output at the input size, bilinear, zeros outside the image (public code: affine_grid +
    grid_sample).
    """
    b = boxes.to(x.device)[index.to(x.device)]
    return crop(x, b[:, 0], b[:, 1], b[:, 2], b[:, 3])


# ----------------------------------------------------------------------------- distributions

def categorical_entropy(logits: Tensor) -> Tensor:
    """Exact entropy (nats) of softmax(logits) over the last dimension, 0 * log 0 = 0."""
    logp = F.log_softmax(logits, dim=-1)
    return -(logp.exp() * logp).sum(-1)


def sample_categorical(logits: Tensor, n: int, method: str = "multinomial") -> Tensor:
    """`n` independent draws per row of softmax(logits) (B, K): (n, B) indices, view-major.

    Both methods sample the TRUE categorical: `torch.multinomial` with replacement, or
    Gumbel-max (argmax of logits + Gumbel noise, -log(-log U)). The public code's
    `log p - log U` is not Gumbel noise and oversamples the mode.
    """
    if method == "multinomial":
        probs = F.softmax(logits.detach().float(), dim=-1)
        return torch.multinomial(probs, n, replacement=True).T.contiguous()
    if method == "gumbel":
        u = torch.rand(n, *logits.shape, device=logits.device).clamp_(1e-12, 1 - 1e-7)
        return (logits.detach().unsqueeze(0) - torch.log(-torch.log(u))).argmax(-1)
    raise ConfigError(f"unknown sampler {method!r}; valid: multinomial, gumbel")


def layer_mass(probs: Tensor, layer: Tensor, n_layers: int) -> Tensor:
    """Probability mass of each layer, (B, n_layers), from candidate probabilities (B, K)."""
    out = probs.new_zeros(probs.shape[0], n_layers)
    return out.index_add_(1, layer.to(probs.device), probs)


# ----------------------------------------------------------------------------- networks

class PhiTrunk(nn.Module):
    """phi's pre-activation CNN; `forward` returns the maps of layers 0..depth.

    Inputs are [0, 1] images; they are centred to [-1, 1] here (the public code feeds phi the
    classifier's normalised input).
    """

    def __init__(self, in_channels: int, depth: int) -> None:
        super().__init__()
        chans = [*TRUNK_CHANNELS, *[TRUNK_CHANNELS[-1]] * max(0, depth - 3)][: depth + 1]
        self.channels = chans
        self.stem = nn.Conv2d(in_channels, chans[0], 3, 2, 1, bias=False)
        self.blocks = nn.ModuleList(
            PreActBlock(chans[i - 1], chans[i], 1 if i == 1 else 2) for i in range(1, depth + 1))
        for m in self.modules():  # the public code's initialisation of phi
            if isinstance(m, nn.Conv2d):
                he_truncated_normal_(m.weight)

    def forward(self, x: Tensor) -> list[Tensor]:
        maps = [self.stem(x * 2 - 1)]
        for block in self.blocks:
            maps.append(block(maps[-1]))
        return maps


def head_conv(channels: int, out: int, kernel: tuple[int, int]) -> nn.Conv2d:
    """A bias-free head conv, He truncated normal divided by 10 ("stabilise training": the
    distribution starts at the prior), as the public code initialises phi's output convs."""
    conv = nn.Conv2d(channels, out, kernel, bias=False)
    he_truncated_normal_(conv.weight)
    with torch.no_grad():
        conv.weight.div_(10)
    return conv


class GlobalHead(nn.Module):
    """A conv whose kernel covers the whole map (no bias, weights / 10) plus a learnable bias.

    The public code's "global" output: one vector per image from the last map.
    """

    def __init__(self, channels: int, map_hw: tuple[int, int], out: int) -> None:
        super().__init__()
        self.conv = head_conv(channels, out, map_hw)
        self.bias = nn.Parameter(torch.zeros(out))

    def forward(self, fmap: Tensor) -> Tensor:
        return self.conv(fmap).flatten(1) + self.bias


class LRPNet(nn.Module):
    """phi(x) -> logits (B, K) over the candidate crops of `candidates`.

    `prior` holds one value per layer (same order as `layers`); with the small head weights at
    init the distribution starts at mass exp(prior_l) / sum exp(prior) on layer l, spread evenly.
    """

    offset: Tensor  # buffers, registered in __init__
    boxes: Tensor
    layer_of: Tensor

    def __init__(self, in_channels: int, image_hw: tuple[int, int], layers: Sequence[int],
                 prior: Sequence[float], max_outside: float = 1.0) -> None:
        super().__init__()
        if len(prior) != len(layers):
            raise ConfigError(f"LRP prior needs one value per layer: {len(layers)} layers {list(layers)}, "
                              f"{len(prior)} prior values")
        self.candidates = build_candidates(image_hw, layers, max_outside)
        depth = trunk_depth(image_hw, layers)
        self.trunk = PhiTrunk(in_channels, depth)
        sizes = map_sizes(image_hw, depth)
        heads = []
        for layer in self.candidates.layers:
            if layer == GLOBAL:
                heads.append(head_conv(self.trunk.channels[depth], 1, sizes[depth]))
            else:
                heads.append(head_conv(self.trunk.channels[layer], 1, (1, 1)))
        self.heads = nn.ModuleList(heads)
        self.cell_bias = nn.Parameter(torch.zeros(len(self.candidates)))
        offset = prior_logits(self.candidates, prior)
        self.register_buffer("offset", offset, persistent=False)
        self.register_buffer("boxes", self.candidates.boxes.clone(), persistent=False)
        self.register_buffer("layer_of", self.candidates.layer.clone(), persistent=False)
        for n, mask in enumerate(self.candidates.keep):  # as indices: a boolean mask reads itself back every step
            self.register_buffer(f"keep{n}", mask.nonzero().squeeze(1), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        maps = self.trunk(x)
        parts = []
        for n, (layer, head) in enumerate(zip(self.candidates.layers, self.heads)):
            fmap = maps[-1] if layer == GLOBAL else maps[layer]
            parts.append(head(fmap).flatten(1).index_select(1, getattr(self, f"keep{n}")))
        return torch.cat(parts, 1) + self.cell_bias + self.offset


def prior_logits(candidates: CandidateSet, prior: Sequence[float]) -> Tensor:
    """(K,) prior[layer] - ln(#cells of layer): the logits of an untrained LRP head."""
    prior_t = torch.tensor([float(p) for p in prior])
    counts = torch.tensor(candidates.counts, dtype=torch.float)
    return (prior_t - counts.log())[candidates.layer]


# ----------------------------------------------------------------------------- the parameterization

class LRPParameterization(Parameterization):
    """p(crop; theta) = softmax(theta) over the K candidate crops (Section 3.3, Figure 4).

    theta are logits. `sample` draws from the true categorical and returns log p(k | x) for
    the score-function estimator (crops are discrete, Sec. 3.2) with the exact entropy;
    `test_views` also supports "topk", the n most probable crops (the public code's rule).
    `layers`, `prior`, `max_outside` default to the public setting for the input size
    (`default_lrp_config`); custom `layers` without a `prior` get 3 on global, 0 elsewhere.
    """

    family = "crop"
    raw_name = "logit"
    tta_rules = ("sample", "topk")
    boxes: Tensor  # (K, 4) buffers, registered in __init__
    layer_of: Tensor
    initial_logits: Tensor

    def __init__(self, image_hw: tuple[int, int], layers: Sequence[int] | None = None,
                 prior: Sequence[float] | None = None, max_outside: float | None = None,
                 sampler: str = "multinomial") -> None:
        super().__init__()
        default_layers, default_prior, default_outside = default_lrp_config(image_hw)
        if prior is None:
            prior = default_prior if layers is None else [3.0 if layer == GLOBAL else 0.0 for layer in layers]
        self.layers = list(default_layers if layers is None else layers)
        self.prior = list(prior)
        self.max_outside = default_outside if max_outside is None else max_outside
        if len(self.prior) != len(self.layers):
            raise ConfigError(f"instaaug: lrp_prior needs one value per layer of lrp_layers {self.layers}, "
                              f"got {self.prior}")
        self.image_hw = image_hw
        self.sampler = sampler
        self.candidates: CandidateSet = build_candidates(image_hw, self.layers, self.max_outside)
        self.register_buffer("boxes", self.candidates.boxes.clone(), persistent=False)
        self.register_buffer("layer_of", self.candidates.layer.clone(), persistent=False)
        self.register_buffer("initial_logits", prior_logits(self.candidates, self.prior), persistent=False)

    @property
    def n_raw(self) -> int:
        return len(self.candidates)

    def network(self, in_channels: int) -> nn.Module:
        return LRPNet(in_channels, self.image_hw, self.layers, self.prior, self.max_outside)

    def initial_raw(self) -> Tensor:
        """The layer prior spread evenly over each layer's cells (what an untrained phi gives)."""
        return self.initial_logits.clone()

    def class_table(self, num_classes: int) -> Tensor:
        """Zeros with +5 on the global crop (public code), not the prior."""
        table = torch.zeros(num_classes, self.n_raw)
        if GLOBAL in self.candidates.layers:
            table[:, self.candidates.index(GLOBAL)] = CLASS_GLOBAL_INIT
        return table

    def sample(self, x: Tensor, raw: Tensor, n_views: int) -> Views:
        logp = F.log_softmax(raw, dim=-1)
        idx = sample_categorical(raw, n_views, self.sampler)  # (V, B)
        flat = idx.reshape(-1)
        out = crop_candidates(repeat_views(x, n_views), self.boxes, flat)
        log_prob = logp.gather(1, idx.T).T.reshape(-1)  # (V*B,), view-major like `out`
        probs = logp.exp()
        entropy = -(probs * logp).sum(-1)
        mass = layer_mass(probs.detach(), self.layer_of, len(self.candidates.layers))
        return Views(out, n_views, log_prob=log_prob, entropy=entropy, info={"index": flat, "layer_mass": mass})

    def entropy(self, raw: Tensor) -> Tensor:
        return categorical_entropy(raw)

    def default_entropy_bounds(self, conditioning: str) -> tuple[float, float]:
        """<= 48 px 2.5/3.0 (CIFAR), <= 128 px 3.0/3.5 (Tiny-ImageNet; class-specific 3.0/4.0),
        larger 2.5/3.0 (ImageNet): the paper's Table E.1 optimum and the public configs."""
        side = min(self.image_hw)
        if side <= 48:
            return 2.5, 3.0
        if side <= 128:
            return (3.0, 4.0) if conditioning == "class" else (3.0, 3.5)
        return 2.5, 3.0

    spread_units = "the effective number of candidate crops in play, exp(H)"

    def spread_entropy(self, spread: Sequence[float]) -> list[float]:
        """log(n) for n effective candidates (a categorical's perplexity exp(H)), 1 <= n <= K."""
        k = self.n_raw
        if len(spread) != 1 or not 1.0 <= spread[0] <= k:
            raise ConfigError(f"instaaug: target_spread for lrp is one number in [1, {k}] ({self.spread_units}), "
                              f"got {list(spread)}")
        return [math.log(spread[0])]

    def fraction_entropy(self, fraction: float) -> list[float]:
        """`fraction` of the uniform categorical's log K nats (the paper's 64 px optimum [3.0, 3.5] is 0.52-0.61)."""
        return [fraction * math.log(self.n_raw)]

    def test_views(self, x: Tensor, raw: Tensor, n_views: int, rule: str = "sample") -> Tensor:
        if rule != "topk":
            return super().test_views(x, raw, n_views, rule)
        top = raw.topk(min(n_views, self.n_raw), dim=-1).indices  # (B, min(n, K))
        order = torch.arange(n_views, device=x.device) % top.shape[1]  # cycle when n > K
        idx = top[:, order].T.reshape(-1)
        return crop_candidates(repeat_views(x, n_views), self.boxes, idx)

    def inspect(self, raw: Tensor) -> dict[str, Tensor]:
        """entropy (B,), crop_probs (B, K), mass_<layer> (B,), crop_boxes (B, 8, 4) drawn from p."""
        probs = raw.softmax(-1)
        out = self._summary(probs, categorical_entropy(raw))
        out["crop_boxes"] = self.boxes[torch.multinomial(probs, INSPECT_SAMPLES, replacement=True)]
        return out

    def class_average(self, table: Tensor, b: int) -> dict[str, Tensor]:
        probs, entropy = table.softmax(-1).mean(0).expand(b, -1), categorical_entropy(table).mean().expand(b)
        return self._summary(probs, entropy)

    def _summary(self, probs: Tensor, entropy: Tensor) -> dict[str, Tensor]:
        out = {"entropy": entropy.contiguous(), "crop_probs": probs.contiguous()}
        mass = layer_mass(probs, self.layer_of, len(self.candidates.layers))
        out.update({f"mass_{name}": mass[:, n].contiguous() for n, name in enumerate(self.candidates.names)})
        return out

    def step_logs(self, views: Views) -> dict[str, Tensor]:
        """Mean probability mass per layer ("mass_L2", ..., "mass_global")."""
        if "layer_mass" not in views.info:
            return {}
        return {f"mass_{name}": views.info["layer_mass"][:, n].mean() for n, name in enumerate(self.candidates.names)}

    def constants(self) -> dict[str, Tensor]:
        """"candidate_boxes": (K, 4) (center_y, center_x, height, width) as fractions, in logit order."""
        return {"candidate_boxes": self.boxes}
