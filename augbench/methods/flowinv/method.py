"""`flowinv`: learned instance-wise invariance with a normalizing flow (Singhal et al., ICCV 2023).

A CNN embeds each image, e = c(x); a conditional RealNVP flow g(T; e) (`flow`) gives a
distribution over transformation parameters, from which views are drawn by reparameterised
samples (`spaces` says what the parameters mean on each family). One loss trains the
classifier, the flow and the embedding together (paper Eqs. 10 and 18):

    mean_views CE(f(A_T(x)), y) + alpha * mean_views log g(T; x),   T ~ g(. ; x)

the Monte Carlo form of L_classifier - alpha H[g]: the entropy term keeps g from collapsing
onto a single loss-minimising transformation. `alpha_rule="fixed"`: a constant alpha (public
CIFAR-10 code: 0.1, CIFAR10-LT: 0.05); "pid": the public rotation experiments' controller
(`controller`), which moves alpha in [alpha_min, alpha_max] to bring the entropy into
[h_min, h_max]. Entropies are of the flow parameters w (rotation: H_theta = H_w + log pi).
The first `burnin_epochs` train on untransformed images, the flow untouched (public code:
10 epochs on CIFAR; the controller starts after them, as its warm-up does).

Test time (paper Eq. 7-8): predictions averaged over draws of g(T; x): the mean probability
(`tta_combine="prob"`), or the public CIFAR code's mean logit ("logit").

Training draws `train_views` transformations per view and averages their logits before the
loss (`train_combine`), as the public CIFAR code does (20 draws, the mean logit; its Mario-Iggy
script draws 1): the classifier learns the averaged function that test time uses, and the
flow's gradient is that of the loss of the average.

Settings the paper leaves open, chosen here: the crop space's box map and start (`spaces`);
the base means' bound (|mu| <= 3, the public code clamps at 1), needed for the crop start.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from augbench.errors import ConfigError
from augbench.hparams import HParam
from augbench.methods import AugmentationMethod, MethodContext, StepContext, Views, register_method, repeat_views
from augbench.methods.flowinv.controller import EntropyController
from augbench.methods.flowinv.flow import ConditionalFlow, EmbeddingNet
from augbench.methods.flowinv.spaces import FAMILIES, SPACES, build_space


def combine(outs: Tensor, rule: str) -> Tensor:
    """Outputs (V, B, K) of V draws -> (B, K): the mean logit ("logit") or the log of the mean probability ("prob")."""
    if rule == "logit":
        return outs.mean(0)
    return torch.log_softmax(outs, -1).logsumexp(0) - math.log(outs.shape[0])


@register_method("flowinv")
class FlowInv(AugmentationMethod):
    """An image-conditioned normalizing flow over affine/crop parameters, trained with the task loss."""

    families = frozenset({"rotation", "crop"})
    recipes = {
        # FlowInv's code: 10 epochs before the flow (CIFAR)
        "tinyimagenet-crop": {"burnin_epochs": 10},
        # the CIFAR code's full affine flow (6 generators)
        "cifar10-crop": {"burnin_epochs": 10, "space": "affine"},
        "cifar100-crop": {"burnin_epochs": 10, "space": "affine"},
        # as instaaug's short schedule there; one draw per image, as the Mario-Iggy script (a CPU budget)
        "clutter-crop": {"lr": 1e-3, "burnin_epochs": 2, "train_views": 1},
        # FlowInv's Mario-Iggy +-90 script (4 couplings, Adam 1e-3, 1 epoch without augmentation, PID
        # alpha in [1e-3, 0.5], one draw per image) with instaaug's entropy band there in FlowInv's units (minus log pi)
        "glyphs-rotation": {"flow_layers": 4, "lr": 1e-3, "burnin_epochs": 1, "alpha_rule": "pid",
                            "h_min": -0.145, "h_max": 0.005, "alpha_min": 1e-3, "alpha_max": 0.5, "train_views": 1},
    }
    hparams = {
        "space": HParam("auto", str, choices=("auto", *SPACES),
                        help="rotation (angle), crop (4 box parameters) or affine (6 generators, the paper's "
                             "CIFAR space); auto: from the benchmark family"),
        "alpha": HParam(0.1, float, low=0.0, help="fixed entropy weight of Eq. 18 (public code: CIFAR-10 0.1, "
                                                   "CIFAR10-LT 0.05)"),
        "alpha_rule": HParam("fixed", str, choices=("fixed", "pid"),
                             help="fixed alpha, or the public rotation code's PID controller on the entropy"),
        "h_min": HParam(None, float, nullable=True, help="pid: lower end of the entropy band (nats of w)"),
        "h_max": HParam(None, float, nullable=True, help="pid: upper end of the entropy band (nats of w)"),
        "alpha_min": HParam(1e-4, float, low=0.0, help="pid: smallest alpha (public default 1e-4)"),
        "alpha_max": HParam(1.0, float, low=0.0, help="pid: largest alpha (public default 1; Mario-Iggy 0.5)"),
        "pid_gains": HParam([1e-2, 1e-2, 1e-2], float, is_list=True, help="pid: kp, ki, kd (public: 0.01 each)"),
        "lr": HParam(1e-4, float, low=0.0, help="Adam learning rate of flow and embedding (public CIFAR code: 1e-4)"),
        "weight_decay": HParam(0.0, float, low=0.0),
        "burnin_epochs": HParam(0, int, low=0, help="first epochs on untransformed images, flow untouched "
                                                     "(public CIFAR code: 10)"),
        "flow_layers": HParam(12, int, low=0, help="affine coupling blocks (paper: 12 on CIFAR, 4 on Mario-Iggy)"),
        "flow_width": HParam(64, int, low=1, help="hidden width of each coupling's MLP (paper: 64; public code: 32)"),
        "n_modes": HParam(10, int, low=1, help="Gaussians in the base mixture (public CIFAR code: 10)"),
        "emb_dim": HParam(32, int, low=1, help="size of the image embedding e (public code: 32)"),
        "emb_width": HParam(8, int, low=1, help="channels c of the embedding CNN's first layer (public code: 8)"),
        "loc_std": HParam(0.2, float, low=0.0, help="initial base means ~ U(-loc_std, loc_std) (CIFAR-10: 0.2, "
                                                     "CIFAR10-LT: 0.5)"),
        "start_scale": HParam(0.1, float, low=1e-3, high=2.0, help="initial sigma of each base component (0.1)"),
        "tanh_width": HParam(1.0, float, low=0.05, high=1.0, help="bound a of the final a tanh(z / a) (CIFAR: 1)"),
        "gumbel_tau": HParam(0.1, float, low=1e-3, help="temperature of the straight-through component draw"),
        "trans_scale": HParam(0.1, float, low=0.0, help="affine: translation generator scale (CIFAR-10: 0.1)"),
        "crop_min_side": HParam(0.1, float, low=0.01, high=0.99, help="crop: smallest box side, fraction of the image"),
        "crop_init_side": HParam(0.9, float, low=0.02, high=0.999,
                                 help="crop: box side where the distribution starts (centred boxes)"),
        "inspect_samples": HParam(256, int, low=2, help="draws per input behind inspect's ranges and entropy"),
        "range_quantile": HParam(0.01, float, low=0.0, high=0.49,
                                 help="rotation_range = [q, 1-q] quantiles of the drawn angles (public plots: 1%)"),
        "train_views": HParam(20, int, low=1, help="draws per training view, combined before the loss (public "
                                                   "CIFAR code: 20; Mario-Iggy script: 1)"),
        "train_combine": HParam("logit", str, choices=("prob", "logit"),
                                help="how the training draws combine: mean logit (public code) or mean probability"),
        "tta_combine": HParam("prob", str, choices=("prob", "logit"),
                              help="test-time average: probabilities (paper Eq. 8) or logits (public CIFAR code)"),
    }

    @classmethod
    def families_for(cls, hp: Mapping[str, Any]) -> frozenset[str]:
        """The families of the chosen space (auto: the benchmark's own, so every family)."""
        return cls.families if hp["space"] == "auto" else FAMILIES[hp["space"]]

    def __init__(self, ctx: MethodContext, **hp: Any) -> None:
        super().__init__(ctx, **hp)
        hp = self.hp
        self.space = build_space(hp["space"], ctx.families, hp["crop_min_side"], hp["crop_init_side"],
                                 hp["trans_scale"])
        self.embed = EmbeddingNet(ctx.image_shape[0], hp["emb_width"], hp["emb_dim"])
        self.flow = ConditionalFlow(self.space.dim, hp["emb_dim"], hp["flow_layers"], hp["flow_width"],
                                    hp["n_modes"], hp["loc_std"], hp["start_scale"], hp["tanh_width"],
                                    hp["gumbel_tau"], start=self.space.start(hp["tanh_width"]))
        self._epoch = 0  # the training epoch (`begin_epoch`): no copies during burn-in
        self.controller: EntropyController | None = None
        if hp["alpha_rule"] == "pid":
            if hp["h_min"] is None or hp["h_max"] is None or hp["h_min"] > hp["h_max"]:
                raise ConfigError("flowinv: alpha_rule=pid needs h_min <= h_max (the entropy band, nats of w)")
            if len(hp["pid_gains"]) != 3 or hp["alpha_min"] > hp["alpha_max"]:
                raise ConfigError("flowinv: pid needs pid_gains = kp,ki,kd and alpha_min <= alpha_max")
            kp, ki, kd = hp["pid_gains"]
            self.controller = EntropyController(hp["h_min"], hp["h_max"], (kp, ki, kd), hp["alpha_min"],
                                                hp["alpha_max"])

    @property
    def alpha(self) -> float:
        """The entropy weight of the next step."""
        return self.controller.alpha if self.controller is not None else float(self.hp["alpha"])

    # ------------------------------------------------------------------ the distribution
    def draw(self, x: Tensor, n: int) -> tuple[Tensor, Tensor]:
        """n reparameterised draws per input, view-major: parameters (n*B, d) and log g (n*B,)."""
        e = self.embed(x)
        return self.flow.rsample(e.repeat(n, 1))

    def log_prob(self, x: Tensor, w: Tensor) -> Tensor:
        """log g(w; x) (B,) of given parameters w (B, d) for each image of x (B, C, H, W)."""
        return self.flow.log_prob(w, self.embed(x))

    # ------------------------------------------------------------------ training
    def sample(self, x: Tensor, ctx: StepContext, n_views: int = 1) -> Views:
        xs = repeat_views(x, n_views)
        if ctx.training and ctx.epoch < self.hp["burnin_epochs"]:
            return Views(xs, n_views)
        w, log_q = self.draw(x, n_views)
        entropy = -log_q.detach().view(n_views, -1).mean(0)
        return Views(self.space.apply(xs, w), n_views, entropy=entropy, info={"w": w.detach(), "log_q": log_q})

    def objective(self, per_sample_loss: Tensor, views: Views) -> tuple[Tensor, dict[str, Tensor]]:
        loss = per_sample_loss.mean()
        log_q = views.info.get("log_q")
        if log_q is None:  # burn-in: identity views
            return loss, {}
        alpha = self.alpha
        entropy = -log_q.detach().mean()
        if self.controller is not None:  # objective runs once per training step
            self.controller.update(float(entropy))
        return loss + alpha * log_q.mean(), {"entropy": entropy, "alpha": torch.tensor(alpha)}

    def make_optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.hp["lr"], weight_decay=self.hp["weight_decay"])

    def end_epoch(self, epoch: int, val_stats: Any) -> dict[str, float]:
        return {"alpha": self.alpha, "burnin": float(epoch < self.hp["burnin_epochs"])}

    def begin_epoch(self, epoch: int) -> None:
        self._epoch = epoch

    def train_copies(self) -> int:
        """`train_views`, or 1 during burn-in (the public code feeds each image once then)."""
        return 1 if self._epoch < self.hp["burnin_epochs"] else int(self.hp["train_views"])

    def combine_train_copies(self, outs: Tensor) -> Tensor:
        return combine(outs, self.hp["train_combine"])

    # ------------------------------------------------------------------ evaluation
    def combine_views(self, outs: Tensor) -> Tensor:
        """(V, B, K) -> (B, K): log of the mean probability (Eq. 8) or the mean logit."""
        return combine(outs, self.hp["tta_combine"])

    @torch.no_grad()
    def inspect(self, x: Tensor, ctx: StepContext) -> dict[str, Tensor]:
        """entropy (B,) (Monte Carlo, of the flow parameters), and the space's summaries:
        rotation: rotation_range (B, 2) radians, rotation_width (B,); crop: crop_boxes (B, 8, 4)."""
        s = self.hp["inspect_samples"]
        w, log_q = self.draw(x, s)
        b = x.shape[0]
        out = {"entropy": -log_q.view(s, b).mean(0)}
        out.update(self.space.summarize(w.view(s, b, -1), self.hp["range_quantile"]))
        return out

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in {**self.hp, "space": self.space.name}.items())

