"""`adaaugment`: per-image magnitudes from an actor-critic policy trained with the classifier
(Yang, Li, Xiong, Shen & Zhao, IEEE TIP 2025).

A small policy reads each image's features (the classifier's penultimate layer) and draws its
augmentation magnitude a in [0, 1] from a Beta distribution; the image gets ONE op drawn
uniformly from TrivialAugment's original "standard" space (`transforms.magnitude.TA_STANDARD`)
at level min(int(29 a) + 1, 29) of 29. Facts from the public code (Jackbrocp/AdaAugment,
``train.py``, ``A2C.py``, ``Dataset.py``, ``organize_transform.py``):

- Policy: actor 512 -> 128 -> 64 (ReLU) -> Beta(softplus + 1, softplus + 1); critic
  512 -> 128 -> 128 -> 1; one Adam each, lr 3e-4, eps 1e-5, weight decay 5e-4, both decayed
  linearly per epoch to 1% (``lr_decay``); PyTorch's default initialisation (orthogonal
  initialisation and reward normalisation are off in the code's commands).
- State s: features of the image with only the base pad-and-crop ("none" view); next state s':
  features of the adaptively augmented view.
- Reward per image, from the classifier's losses on three views of it (none, adaptive a, full
  a = 1): r = (1 - beta) (L_ada - L_none) + beta (L_full - L_ada), where beta falls linearly
  from 1 - 1/E in the first epoch to 0 in the last (E epochs): early on, magnitudes far below
  full strength pay; late, magnitudes that make the image harder than the plain one.
- One-step actor-critic: td = r + 0.99 V(s'); actor loss -sum(log pi(a|s) (td - V(s)));
  critic loss mean (td - V(s))^2.
- Pipeline on CIFAR: op, RandomCrop(32, padding=4), flip, normalise, Cutout 16 px (CIFAR-10)
  or 8 px (CIFAR-100); the "none" view is the pad crop alone.

augbench differences: the code draws each image's magnitude for its NEXT epoch (stored per
image) and credits that new draw with the reward of the magnitude drawn an epoch earlier;
augbench draws the magnitude the image is trained with in the same step and credits that one
(the MDP the paper describes), so no per-image memory is needed. The three views' losses and
features come from the classifier in eval mode (the code runs the none and full views in train
mode, whose BatchNorm statistics they then update); the policy steps inside `sample`, before
the classifier's step on the same batch (the code steps it after; both read the classifier's
weights before that step). Actions are clamped to [1e-6, 1 - 1e-6] for their log-probability.

`inspect` reports "magnitude": the policy's mean magnitude alpha / (alpha + beta) on each image.
Test-time views draw from the policy on the image itself.
"""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Beta

from augbench.hparams import HParam
from augbench.methods import (
    AugmentationMethod,
    MethodContext,
    StepContext,
    Views,
    register_method,
    repeat_views,
    step_classifier,
)
from augbench.methods.adaaug import random_pad_crop
from augbench.methods.auto_augment import POLICY_FAMILIES
from augbench.models.modes import eval_mode
from augbench.transforms.magnitude import TA_STANDARD, base_pad, cutout_pixels, level_of, pipeline_hparams

LEVELS = 29  # AdaAugment's PARAMETER_MAX (organize_transform.py: set_augmentation_space('standard', 30))
ACTION_EPS = 1e-6


def _linear(in_features: int | None, out: int) -> nn.Module:
    if in_features:
        return nn.Linear(in_features, out)
    with warnings.catch_warnings():  # the classifier's feature size is learned on first use
        warnings.filterwarnings("ignore", message="Lazy modules are a new feature")
        return nn.LazyLinear(out)


class Actor(nn.Module):
    """features -> (alpha, beta) of a Beta distribution over the magnitude, both >= 1."""

    def __init__(self, in_features: int | None) -> None:
        super().__init__()
        self.body = nn.Sequential(_linear(in_features, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU())
        self.alpha = nn.Linear(64, 1)
        self.beta = nn.Linear(64, 1)

    def forward(self, s: Tensor) -> tuple[Tensor, Tensor]:
        h = self.body(s)
        return F.softplus(self.alpha(h)).squeeze(-1) + 1.0, F.softplus(self.beta(h)).squeeze(-1) + 1.0


class Critic(nn.Module):
    """features -> V(s)."""

    def __init__(self, in_features: int | None) -> None:
        super().__init__()
        self.net = nn.Sequential(_linear(in_features, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(),
                                 nn.Linear(128, 1))

    def forward(self, s: Tensor) -> Tensor:
        return self.net(s).squeeze(-1)


def balance_factor(epoch: int, epochs: int) -> float:
    """beta of epoch `epoch` (0-based) of `epochs`: 1 - (epoch + 1) / epochs, at least 0."""
    return max(0.0, 1.0 - (epoch + 1) / max(epochs, 1))


@register_method("adaaugment")
class AdaAugment(AugmentationMethod):
    """One TrivialAugment op per image at a magnitude drawn by an actor-critic policy on its features."""

    families = POLICY_FAMILIES
    tasks = frozenset({"classification"})
    data_parallel = False  # the policy steps inside `sample`: processes' policies would drift apart
    hparams = {
        "lr": HParam(3e-4, float, low=0.0, help="Adam learning rate of actor and critic (code: 3e-4)"),
        "weight_decay": HParam(5e-4, float, low=0.0, help="Adam weight decay of actor and critic (code: 5e-4)"),
        "gamma": HParam(0.99, float, low=0.0, high=1.0, help="discount of V(s') in the TD target (code: 0.99)"),
        **pipeline_hparams("after the op (and the none view's)", "16 on CIFAR-10, 8 on CIFAR-100"),
    }
    #: per-benchmark defaults: the code's CIFAR pipelines
    recipes: ClassVar[dict[str, dict[str, Any]]] = {
        "cifar10-crop": {"cutout": 16},
        "cifar100-crop": {"cutout": 8},
    }

    def __init__(self, ctx: MethodContext, **hp: Any) -> None:
        super().__init__(ctx, **hp)
        self.pad = base_pad(self.hp["base_pad"], ctx.families)
        self.actor = Actor(ctx.feature_dim)
        self.critic = Critic(ctx.feature_dim)
        self._optimizer: torch.optim.Optimizer | None = None
        self._lr_scale = 1.0
        self._logs: dict[str, Tensor] = {}

    def make_optimizer(self) -> torch.optim.Optimizer:
        """Actor and critic in one Adam (two groups: the same per-parameter updates as the code's two
        optimizers, whose losses touch disjoint parameters); `sample` steps it, so the trainer's step
        finds no gradient in it."""
        if self._optimizer is None:
            groups = [{"params": list(self.actor.parameters())}, {"params": list(self.critic.parameters())}]
            self._optimizer = torch.optim.Adam(groups, lr=self.hp["lr"] * self._lr_scale, eps=1e-5,
                                               weight_decay=self.hp["weight_decay"])
        return self._optimizer

    def begin_epoch(self, epoch: int) -> None:
        """The code's decay, applied after each epoch: lr (1 - 0.99 e / (E - 1)) after epoch e."""
        self._lr_scale = 1.0 - 0.99 * max(epoch - 1, 0) / max(self.ctx.epochs - 1, 1)
        if self._optimizer is not None:
            for group in self._optimizer.param_groups:
                group["lr"] = self.hp["lr"] * self._lr_scale

    # ------------------------------------------------------------------ views
    def _augment(self, x: Tensor, magnitude: Tensor) -> Tensor:
        """One uniform op per image at the level of `magnitude` (B,), then pad crop and Cutout."""
        ops = TA_STANDARD.draw_ops((x.shape[0], 1), x.device)
        levels = level_of(magnitude, LEVELS).unsqueeze(1)
        out = TA_STANDARD.apply(x, ops, TA_STANDARD.values(ops, levels, x.shape[-2], x.shape[-1], denominator=LEVELS))
        return cutout_pixels(random_pad_crop(out, self.pad), self.hp["cutout"])

    def sample(self, x: Tensor, ctx: StepContext, n_views: int = 1) -> Views:
        views = repeat_views(x, n_views)
        classifier = step_classifier(ctx, "adaaugment")
        model, features = classifier.model, classifier.features
        if not (ctx.training and self.training and ctx.y is not None):  # test-time views: the policy's draws
            with torch.no_grad(), eval_mode(model):
                alpha, beta = self.actor(features(views))
                return Views(self._augment(views, Beta(alpha, beta, validate_args=False).sample()), n_views)
        y = ctx.y.repeat(n_views)
        n = views.shape[0]
        with torch.no_grad(), eval_mode(model):
            plain = random_pad_crop(views, self.pad)
            state = features(plain)
            alpha, beta = self.actor(state)
            # alpha, beta >= 1 by construction: torch's argument checks would read them back every step
            action = Beta(alpha, beta, validate_args=False).sample()
            # the adaptive and the full-strength view in one batch: one op grouping, one classifier pass
            both = self._augment(torch.cat([views, views]), torch.cat([action, torch.ones_like(action)]))
            feats = features(both)
            losses = F.cross_entropy(classifier.head(torch.cat([state, feats])), y.repeat(3), reduction="none")
            loss_none, loss_ada, loss_full = losses.split(n)
            b = balance_factor(ctx.epoch, self.ctx.epochs)
            reward = (1.0 - b) * (loss_ada - loss_none) + b * (loss_full - loss_ada)
        self._logs = self.update_policy(state, action, feats[:n], reward)
        self._logs.update(magnitude=action.mean(), reward=reward.mean(), balance=torch.tensor(b))
        return Views(both[:n], n_views, info={"magnitude": action})

    def update_policy(self, state: Tensor, action: Tensor, next_state: Tensor, reward: Tensor) -> dict[str, Tensor]:
        """One actor-critic step on the batch's transitions (s, a, r, s')."""
        with torch.enable_grad():
            alpha, beta = self.actor(state)
            log_prob = Beta(alpha, beta, validate_args=False).log_prob(action.clamp(ACTION_EPS, 1.0 - ACTION_EPS))
            value = self.critic(state)
            with torch.no_grad():
                target = reward + self.hp["gamma"] * self.critic(next_state)
            actor_loss = -(log_prob * (target - value.detach())).sum()
            critic_loss = F.mse_loss(value, target)
            opt = self.make_optimizer()  # after the passes above: lazy layers know their size by now
            params = [p for group in opt.param_groups for p in group["params"]]
            grads = torch.autograd.grad(actor_loss + critic_loss, params)
        opt.zero_grad(set_to_none=True)
        for p, g in zip(params, grads):
            p.grad = g
        opt.step()
        opt.zero_grad(set_to_none=True)  # nothing left for the trainer's step of this optimizer
        return {"actor_loss": actor_loss.detach(), "critic_loss": critic_loss.detach()}

    def objective(self, per_sample_loss: Tensor, views: Views) -> tuple[Tensor, dict[str, Tensor]]:
        logs, self._logs = self._logs, {}
        return per_sample_loss.mean(), logs

    # ------------------------------------------------------------------ introspection
    @torch.no_grad()
    def inspect(self, x: Tensor, ctx: StepContext) -> dict[str, Tensor]:
        if ctx.features is None:
            return {}
        classifier = step_classifier(ctx, "adaaugment")
        with eval_mode(classifier.model):
            alpha, beta = self.actor(classifier.features(x))
        return {"magnitude": alpha / (alpha + beta)}
