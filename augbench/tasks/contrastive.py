"""Task `contrastive`: SimCLR with the method's views, scored by a linear probe (paper Section 6, Table 5).

Each step draws two views per image from the method (InstaAug: two crops from p(tau; phi(x));
baseline: random resized crops), applies SimCLR's fixed colour augmentations on top
(`SimCLRColor`, inside the model and only in training mode, so the trainer stays generic),
encodes and projects them, and returns the NT-Xent loss of every view (Chen et al. 2020,
eq. 1), view-major (2B,). A crop changes both views' losses and, as a negative, every other
row's, so the credit of its REINFORCE term is `nt_xent_credit`, not its view's loss alone.

The recipe follows the code the paper ran (Ermolov et al.'s htdt/self-supervised, as
copied into the InstaAug repository): projection head Linear-BN-ReLU-Linear followed by a
BatchNorm, L2-normalised embeddings, temperature 0.5; colour jitter (0.4, 0.4, 0.4, 0.1)
with p = 0.8 and greyscale with p = 0.1; linear probe: Adam 1e-2 decayed exponentially to
1e-6 over 500 epochs, weight decay 5e-6, batches of 1000, on the frozen encoder's features of
the un-augmented training set. Test-time augmentation averages the encoder's features over
n views from `method.test_views` (InstaAug code: `contrastive_test_feature_average`, 10
copies; Foster et al. 2021), which for a linear probe equals averaging its logits.

Validation (every epoch, no probe): the NT-Xent loss of validation views and a
leave-one-out k-NN accuracy among the validation features (`knn_acc`, the selection score).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from augbench.datasets.base import Split
from augbench.errors import ConfigError
from augbench.hparams import HParam
from augbench.methods import AugmentationMethod, StepContext
from augbench.models import Classifier, build_model
from augbench.models.modes import eval_mode
from augbench.progress import advance
from augbench.tasks import register_task
from augbench.tasks.base import Evaluation, Task, inspect_means
from augbench.tasks.evaluate import as_views, batches, to_float, views_evaluated
from augbench.transforms import ops
from augbench.transforms.color import hsv_jitter

#: Settings every benchmark of this task declares.
CONTRASTIVE_SETTINGS: dict[str, HParam] = {
    "model.proj_hidden": HParam(1024, int, low=1, help="hidden width of the projection head"),
    "model.proj_dim": HParam(64, int, low=1, help="embedding size the NT-Xent loss compares"),
    "train.temperature": HParam(0.5, float, low=1e-4, help="NT-Xent temperature"),
    "train.jitter_brightness": HParam(0.4, float, low=0.0,
                                      help="SimCLR colour jitter, applied after the method's views"),
    "train.jitter_contrast": HParam(0.4, float, low=0.0),
    "train.jitter_saturation": HParam(0.4, float, low=0.0),
    "train.jitter_hue": HParam(0.1, float, low=0.0, high=0.5),
    "train.jitter_p": HParam(0.8, float, low=0.0, high=1.0, help="probability of the colour jitter per view"),
    "train.grayscale_p": HParam(0.1, float, low=0.0, high=1.0, help="probability of greyscale per view"),
    "eval.probe_epochs": HParam(500, int, low=1, help="linear probe epochs on frozen features"),
    "eval.probe_lr": HParam(1e-2, float, low=0.0, help="probe Adam learning rate, decayed exponentially"),
    "eval.probe_lr_end": HParam(1e-6, float, low=0.0, help="probe learning rate at the last epoch"),
    "eval.probe_weight_decay": HParam(5e-6, float, low=0.0),
    "eval.probe_batch_size": HParam(1000, int, low=1),
    "eval.knn_k": HParam(5, int, low=1, help="k of the k-NN accuracy (validation monitor and test)"),
}


# ----------------------------------------------------------------------------- loss
def nt_xent(z: Tensor, temperature: float = 0.5) -> Tensor:
    """NT-Xent loss of each view, (2B,), for view-major projections z (2B, D).

    Row i's positive is its other view (i + B mod 2B); its negatives are the other 2B - 2
    embeddings. Embeddings are L2-normalised (cosine similarity), as in SimCLR.
    """
    n = z.shape[0]
    if n % 2:
        raise ConfigError(f"NT-Xent needs two views per image (an even batch), got {n} embeddings")
    z = F.normalize(z, dim=1)
    sim = z @ z.t() / temperature
    self_mask = torch.eye(n, dtype=torch.bool, device=z.device)
    sim = sim.masked_fill(self_mask, float("-inf"))
    positive = (torch.arange(n, device=z.device) + n // 2) % n
    return F.cross_entropy(sim, positive, reduction="none")


@torch.no_grad()
def nt_xent_credit(z: Tensor, temperature: float = 0.5) -> Tensor:
    """Each view's REINFORCE credit (2B,): the part of the batch's summed NT-Xent loss its crop changes.

    View c's embedding enters its own loss, its partner's (as the positive) and, as a negative,
    every other row j: L_j = L_j^(-c) - log(1 - p_jc), with p_jc row j's softmax weight on c and
    L_j^(-c), row j's loss without c, independent of c's crop. So

        credit_c = L_c + L_partner(c) - sum_{j not c, partner(c)} log(1 - p_jc)

    differs from the summed loss by terms c's crop cannot change, and sum_c (credit_c - b_c)
    grad log p(k_c) is unbiased for the gradient of the expected loss whenever b_c does not
    depend on c's crop. The other view's loss is no such baseline: it shares c's positive pair.
    (BatchNorm's batch statistics couple all views further, by O(1/B): ignored, as for any task.)
    """
    n = z.shape[0]
    if n % 2:
        raise ConfigError(f"NT-Xent needs two views per image (an even batch), got {n} embeddings")
    zd = F.normalize(z.detach().double(), dim=1)
    rows = torch.arange(n, device=z.device)
    positive = (rows + n // 2) % n
    sim = (zd @ zd.t() / temperature).masked_fill(torch.eye(n, dtype=torch.bool, device=z.device), float("-inf"))
    logp = sim.log_softmax(dim=1)  # (j, c): log p_jc; -inf on the diagonal
    own = -logp[rows, positive]  # each row's NT-Xent loss
    a = logp.clamp(max=-1e-300)  # log(1 - p) stays finite when one weight is (numerically) 1
    log1m = torch.where(a > -math.log(2), torch.log(-torch.expm1(a)), torch.log1p(-torch.exp(a)))
    log1m[rows, positive] = 0.0  # the positive pair is counted whole in own[partner]
    return (own + own[positive] - log1m.sum(dim=0)).to(z.dtype)


# ----------------------------------------------------------------------------- fixed augmentations
def _grey3(x: Tensor) -> Tensor:
    """torchvision's rgb_to_grayscale with 3 output channels."""
    r, g, b = x.unbind(dim=1)
    return (0.2989 * r + 0.587 * g + 0.114 * b).unsqueeze(1).expand_as(x)


class SimCLRColor(nn.Module):
    """SimCLR's colour augmentations, per image and batched: RandomApply(ColorJitter, p), RandomGrayscale.

    As torchvision's ColorJitter: brightness, contrast, saturation factors ~ U[max(0, 1 - s), 1 + s],
    hue shift ~ U[-h, h], applied in a random order drawn per image. Each of the 4 x 4
    (position, op) pairs is one batched op selected per image with `torch.where`, so there is
    no per-image loop and gradients reach the method's (differentiable) views.
    """

    def __init__(self, brightness: float = 0.4, contrast: float = 0.4, saturation: float = 0.4, hue: float = 0.1,
                 p: float = 0.8, grayscale_p: float = 0.1) -> None:
        super().__init__()
        self.strength = (brightness, contrast, saturation, hue)
        self.p = p
        self.grayscale_p = grayscale_p

    def extra_repr(self) -> str:
        b, c, s, h = self.strength
        return f"brightness={b}, contrast={c}, saturation={s}, hue={h}, p={self.p}, grayscale_p={self.grayscale_p}"

    def _op(self, k: int, x: Tensor, f: Tensor) -> Tensor:
        if k == 0:
            return ops.brightness(x, f - 1)
        if k == 1:
            return ops.contrast(x, f - 1)
        if k == 2:
            return ops.color(x, f - 1)
        zero = torch.zeros_like(f)
        return hsv_jitter(x, f, zero, zero)

    def forward(self, x: Tensor) -> Tensor:
        b, dev = x.shape[0], x.device
        if x.shape[1] != 3 or b == 0:
            return x
        if self.p > 0 and any(self.strength):
            apply = torch.rand(b, device=dev) < self.p
            order = torch.rand(b, 4, device=dev).argsort(dim=1)
            u = torch.rand(4, b, device=dev)
            factors = [max(0.0, 1 - s) + u[k] * (1 + s - max(0.0, 1 - s)) for k, s in enumerate(self.strength[:3])]
            factors.append((2 * u[3] - 1) * self.strength[3])
            for pos in range(4):
                for k, s in enumerate(self.strength):
                    if s == 0:
                        continue
                    sel = (apply & (order[:, pos] == k)).view(-1, 1, 1, 1)
                    x = torch.where(sel, self._op(k, x, factors[k]), x)
        if self.grayscale_p > 0:
            grey = (torch.rand(b, device=dev) < self.grayscale_p).view(-1, 1, 1, 1)
            x = torch.where(grey, _grey3(x), x)
        return x


# ----------------------------------------------------------------------------- model
def projection_head(in_features: int, hidden: int, out_features: int) -> nn.Sequential:
    """Linear-BN-ReLU-Linear, then the BatchNorm the paper's contrastive code adds (`bn_last`)."""
    return nn.Sequential(nn.Linear(in_features, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
                         nn.Linear(hidden, out_features), nn.BatchNorm1d(out_features))


class ContrastiveModel(nn.Module):
    """Encoder + projection head on [0, 1] images; SimCLR's colour augmentations in training mode.

    `forward` (the trainer's call) returns projections; `features` the encoder's representation
    (the linear probe's input, and `StepContext.features`); `project` projections without
    the colour augmentations.
    """

    net: Classifier

    def __init__(self, net: Classifier, augment: nn.Module) -> None:
        super().__init__()
        self.net = net  # augbench Classifier: normalise -> backbone -> projection head
        self.augment = augment

    @property
    def feature_dim(self) -> int:
        return self.net.feature_dim

    def features(self, x: Tensor) -> Tensor:
        return self.net.features(x)

    def head(self, features: Tensor) -> Tensor:
        return self.net.head(features)

    def project(self, x: Tensor) -> Tensor:
        return self.net(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(self.augment(x) if self.training else x)


# ----------------------------------------------------------------------------- evaluation
@torch.no_grad()
def knn_accuracy(memory: Tensor, memory_y: Tensor, queries: Tensor, queries_y: Tensor, k: int, num_classes: int,
                 leave_one_out: bool = False, chunk: int = 1024) -> float:
    """Accuracy of a majority vote among the k nearest (Euclidean) memory features.

    Ties go to the smallest label (as `eval_knn` of the paper's code). With `leave_one_out`
    the queries ARE the memory and each query's own entry is skipped.
    """
    k = min(k, memory.shape[0] - int(leave_one_out))
    if k < 1 or queries.shape[0] == 0:
        return float("nan")
    correct = 0.0
    for sl in batches(queries.shape[0], chunk):
        d = torch.cdist(queries[sl].float(), memory.float())
        if leave_one_out:
            rows = torch.arange(d.shape[0], device=d.device)
            d[rows, rows + sl.start] = float("inf")
        idx = d.topk(k, dim=1, largest=False).indices
        votes = F.one_hot(memory_y[idx], num_classes).sum(1)
        correct += (votes.argmax(1) == queries_y[sl]).sum().item()
    return correct / queries.shape[0]


def train_linear_probe(features: Tensor, labels: Tensor, num_classes: int, epochs: int = 500, lr: float = 1e-2,
                       lr_end: float = 1e-6, weight_decay: float = 5e-6, batch_size: int = 1000) -> nn.Linear:
    """A linear classifier on fixed features (the paper code's `eval_sgd`): Adam, exponential decay.

    Only the probe has parameters here: the features are a detached tensor, so the encoder
    cannot change. Uses the global RNG (initialisation, batch order).
    """
    features, labels = features.detach(), labels.detach()
    probe = nn.Linear(features.shape[1], num_classes).to(features.device)
    opt = torch.optim.Adam(probe.parameters(), lr=lr, weight_decay=weight_decay)
    gamma = (lr_end / lr) ** (1 / epochs) if lr > 0 and lr_end > 0 else 1.0
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=gamma)
    n = features.shape[0]
    with torch.enable_grad():
        for _ in range(epochs):
            perm = torch.randperm(n, device=features.device)
            for sl in batches(n, batch_size):
                idx = perm[sl]
                loss = F.cross_entropy(probe(features[idx]), labels[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            sched.step()
    probe.eval()
    probe.requires_grad_(False)
    return probe


@dataclass
class EncodedSplit:
    """One pass over a split: plain features, TTA-averaged features, view losses, method inspect."""

    features: Tensor
    tta_features: Tensor | None = None
    loss: Tensor | None = None
    inspect: dict[str, Tensor] = field(default_factory=dict)


def _chunked(fn: Any, x: Tensor, chunk: int) -> Tensor:
    return torch.cat([fn(x[sl]) for sl in batches(x.shape[0], chunk)])


@torch.no_grad()
def encode_split(model: ContrastiveModel, method: AugmentationMethod, split: Split, device: torch.device,
                 batch_size: int, chunk: int, tta_views: int = 0, temperature: float | None = None,
                 inspect: bool = True) -> EncodedSplit:
    """Features of every image (eval mode), optionally averaged over `tta_views` test views, and
    the NT-Xent loss of two test views per image in batches of `batch_size` (the training batch,
    so the number of negatives matches training), and `method.inspect` per image. Model and method
    must already be in eval mode.
    """
    ctx = StepContext(training=False, features=model.features)
    feats: list[Tensor] = []
    tta: list[Tensor] = []
    losses: list[Tensor] = []
    insp: dict[str, list[Tensor]] = {}
    for sl in batches(len(split), batch_size):
        x = to_float(split.x[sl].to(device, non_blocking=True))
        b = x.shape[0]
        feats.append(_chunked(model.features, x, chunk))
        if tta_views > 0:  # identical views (`identical_test_views`) are encoded once
            n_eval = views_evaluated(method, tta_views)
            views = method.test_views(x, n_eval, ctx)
            tta.append(as_views(_chunked(model.features, views, chunk).view(n_eval, b, -1), tta_views).mean(0))
        if temperature is not None and b > 1:
            views = model.augment(method.test_views(x, 2, ctx))
            losses.append(nt_xent(_chunked(model.project, views, chunk), temperature))
        if inspect:
            for k, v in method.inspect(x, ctx).items():
                insp.setdefault(k, []).append(v.detach())
        advance(b)
    return EncodedSplit(
        features=torch.cat(feats), tta_features=torch.cat(tta) if tta else None,
        loss=torch.cat(losses) if losses else None, inspect={k: torch.cat(v).cpu() for k, v in insp.items()})


# ----------------------------------------------------------------------------- the task
@register_task("contrastive")
class Contrastive(Task):
    """SimCLR on two method views per image; metrics from a linear probe on frozen features.

    Final metrics: `acc` (probe, plain test images), `tta_acc` (probe on features averaged over
    `eval.tta_views` test views: Table 5's number), `knn_acc` (test vs training features),
    `loss` (NT-Xent of test views), `tta_views_evaluated` (views encoded per image, `views_evaluated`).
    """

    n_views = 2
    settings = CONTRASTIVE_SETTINGS
    score_key = "knn_acc"

    def build_model(self) -> nn.Module:
        s = self.bench.s
        net = build_model(s["model.name"], s["model.proj_dim"], width=s["model.width"])
        net.head = projection_head(net.feature_dim, s["model.proj_hidden"], s["model.proj_dim"])
        augment = SimCLRColor(s["train.jitter_brightness"], s["train.jitter_contrast"], s["train.jitter_saturation"],
                              s["train.jitter_hue"], s["train.jitter_p"], s["train.grayscale_p"])
        return ContrastiveModel(net, augment)

    def per_sample_loss(self, out: Tensor, y: Tensor, n_views: int, label_smoothing: float = 0.0) -> Tensor:
        if label_smoothing:
            raise ConfigError("the contrastive task has no labels to smooth (label_smoothing must be 0)")
        if n_views != 2:
            raise ConfigError(f"the contrastive task compares 2 views per image, got {n_views}")
        return nt_xent(out, self.bench.s["train.temperature"])

    def view_credit(self, out: Tensor, per_sample_loss: Tensor, n_views: int) -> Tensor:
        """Both views' losses share each crop, and every other row has it as a negative: `nt_xent_credit`."""
        return nt_xent_credit(out.float(), self.bench.s["train.temperature"])

    def evaluate(self, model: nn.Module, method: AugmentationMethod, split: Split, device: Any,
                 final: bool) -> Evaluation:
        s = self.bench.s
        if not isinstance(model, ContrastiveModel):
            raise TypeError(f"the contrastive task evaluates its own ContrastiveModel, got {type(model).__name__}")
        with eval_mode(model, method):
            enc = encode_split(model, method, split, device, s["train.batch_size"], s["eval.batch_size"],
                               tta_views=s["eval.tta_views"] if final else 0, temperature=s["train.temperature"])
            y = split.y.to(device)
            num_classes = self.dataset.num_classes
            metrics: dict[str, float] = {"loss": enc.loss.mean().item() if enc.loss is not None else math.nan}
            metrics.update(inspect_means(enc.inspect))
            if not final:
                metrics["knn_acc"] = knn_accuracy(enc.features, y, enc.features, y, s["eval.knn_k"], num_classes,
                                                  leave_one_out=True)
            else:
                train = self.dataset.train
                train_enc = encode_split(model, method, train, device, s["eval.batch_size"], s["eval.batch_size"],
                                         inspect=False)
                train_y = train.y.to(device)
                probe = train_linear_probe(train_enc.features, train_y, num_classes, s["eval.probe_epochs"],
                                           s["eval.probe_lr"], s["eval.probe_lr_end"], s["eval.probe_weight_decay"],
                                           s["eval.probe_batch_size"])
                with torch.no_grad():
                    correct = (probe(enc.features).argmax(-1) == y).cpu()
                    tta_correct = None
                    if enc.tta_features is not None:
                        tta_correct = (probe(enc.tta_features).argmax(-1) == y).cpu()
                metrics["acc"] = correct.float().mean().item()
                if tta_correct is not None:
                    metrics["tta_acc"] = tta_correct.float().mean().item()
                    metrics["tta_views_evaluated"] = float(views_evaluated(method, s["eval.tta_views"]))
                metrics["knn_acc"] = knn_accuracy(train_enc.features, train_y, enc.features, y, s["eval.knn_k"],
                                                  num_classes)
                metrics.update(self.bench.metrics(split, correct, tta_correct, enc.inspect))
        return Evaluation(metrics, enc.inspect)


__all__ = ["CONTRASTIVE_SETTINGS", "Contrastive", "ContrastiveModel", "EncodedSplit", "SimCLRColor", "encode_split",
           "knn_accuracy", "nt_xent", "nt_xent_credit", "projection_head", "train_linear_probe"]
