"""The AugmentationMethod interface: what every augmentation method gives the trainer.

A method is an `nn.Module` (its learnable parameters and schedule state live in its
`state_dict`, so checkpoints need nothing else) with a handful of hooks. The trainer is the
same for every method:

    views = method.sample(x, ctx, n_views)       # (V*B, C, H, W), differentiable where it can be
    out = model(views.x)                         # one forward pass
    per_sample = task.loss(out, ...)             # (V*B,) task loss, e.g. cross-entropy
    loss, logs = method.objective(per_sample, views)   # + regularisers, REINFORCE, ...
    loss.backward(); step the classifier's and the method's optimizers

A minimal learned method (Augerino-style global rotation range)::

    @register_method("my-rotation")
    class MyRotation(AugmentationMethod):
        families = frozenset({"rotation"})
        hparams = {"lam": HParam(0.01, float, low=0.0), "lr": HParam(1e-3, float, low=0.0)}

        def __init__(self, ctx, **hp):
            super().__init__(ctx, **hp)
            self.raw = nn.Parameter(torch.zeros(()))

        def sample(self, x, ctx, n_views=1):
            x = repeat_views(x, n_views)
            width = F.softplus(self.raw)
            angle = (torch.rand(x.shape[0], device=x.device) - 0.5) * width
            return Views(rotate(x, angle), n_views)

        def objective(self, per_sample_loss, views):
            reg = F.softplus(self.raw)
            return per_sample_loss.mean() - self.hp["lam"] * reg, {"width": reg.detach()}

        def make_optimizer(self):
            return torch.optim.Adam(self.parameters(), lr=self.hp["lr"])

See README "Adding a method" for the whole contract.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple

import torch
from torch import Tensor, nn

from augbench.errors import ConfigError
from augbench.hparams import HParam, Spec
from augbench.overrides import VARIANT, check_variant


@dataclass
class MethodContext:
    """What a method may know about its benchmark when it is built."""

    num_classes: int
    image_shape: tuple[int, int, int]  # (C, H, W)
    families: frozenset[str]  # the benchmark's transformation family
    steps_per_epoch: int = 1  # for schedules in fractional epochs (InstaAug's target rule)
    feature_dim: int | None = None  # size of the classifier's penultimate features, when it has them
    epochs: int = 0  # training epochs of the run, for schedules over the whole run (AdaAugment's reward); 0: unknown
    train_size: int = 0  # rows of the training split, for state kept per training image (EntAugment); 0: unknown


@dataclass
class StepContext:
    """What the trainer hands `sample` each step.

    `y` is given for label-conditioned methods (class-specific InstaAug) and is None at test
    time. `features` computes the classifier's penultimate features of [0, 1] images (AdaAug's
    policy input) without the method having to know the model (`step_classifier` gives the
    model itself). `lr`: the classifier's current learning rate during training (MADAug's
    look-ahead steps with it), None when nothing trains. `index`: the batch's rows in the
    training split (B,), on the device, during training only: state kept per training image
    (EntAugment's magnitude of each image, set from its last prediction) is read and written there.
    """

    y: Tensor | None = None
    features: Callable[[Tensor], Tensor] | None = None
    training: bool = True
    epoch: int = 0
    step: int = 0
    lr: float | None = None
    index: Tensor | None = None


@dataclass
class Views:
    """Transformed inputs and what the method needs back in `objective`.

    Layout: views are stacked view-major, `x[v * B + i]` is view v of input i, so
    `x.view(n_views, B, ...)` recovers the views of each input.
    """

    x: Tensor
    n_views: int = 1
    log_prob: Tensor | None = None  # (V*B,) log p(tau | x) of discrete choices, for REINFORCE
    entropy: Tensor | None = None  # (B,) entropy of p(tau; phi(x)) per input
    # (V*B,) detached, set by the trainer from `Task.view_credit` when a view's transformation also
    # changes other views' losses (contrastive): what REINFORCE credits that transformation with.
    # None: each view's own loss.
    credit: Tensor | None = None
    # (V*B, ...) set by the trainer before `objective`: the model's outputs for `x` (logits, with their
    # graph), for objectives that read the prediction itself (EntAugment's entropy). None outside it.
    outputs: Tensor | None = None
    info: dict[str, Tensor] = field(default_factory=dict)  # logged/plotted parameters


class StepClassifier(NamedTuple):
    """The classifier a step trains, for methods that read its predictions (`step_classifier`).

    `features` is `StepContext.features` itself (`augbench bench` times it as work the method
    requires) and `head` maps them to the outputs; `model` is the module, for `eval_mode`.
    """

    model: nn.Module
    features: Callable[[Tensor], Tensor]
    head: Callable[[Tensor], Tensor]

    def outputs(self, x: Tensor) -> Tensor:
        """The classifier's outputs (logits) on [0, 1] images `x`."""
        return self.head(self.features(x))


def step_classifier(ctx: StepContext, method: str) -> StepClassifier:
    """The classifier behind `ctx.features` (a bound method of it); `method` names the caller in the
    one-line error raised when the step carries none."""
    model = getattr(ctx.features, "__self__", None)
    head = getattr(model, "head", None)
    if not isinstance(model, nn.Module) or ctx.features is None or not callable(head):
        raise ConfigError(f"{method} reads the classifier's predictions: it needs StepContext.features bound to "
                          f"a classifier with a head (model.features), got {ctx.features!r}")
    return StepClassifier(model, ctx.features, head)


def repeat_views(x: Tensor, n_views: int) -> Tensor:
    """Stack `n_views` copies of a batch view-major, the layout `Views` promises."""
    if n_views == 1:
        return x
    return x.unsqueeze(0).expand(n_views, *x.shape).reshape(n_views * x.shape[0], *x.shape[1:])


class AugmentationMethod(nn.Module):
    """Base class of every method; override what your method needs, nothing else.

    Class attributes
    - `name`: registry key (set by `register_method`).
    - `families`: transformation families the method supports ("crop", "rotation", "color",
      "policy"); a benchmark runs a method only if its family is among those of the method's
      configuration (`families_for`, by default these).
    - `hparams`: declared hyperparameters; `self.hp` holds the resolved values.
    - `explores`: True makes the trainer call `explore` with validation batches (AdaAug).
    - `tasks`: tasks the method can serve (`augbench.tasks`); empty means all.
    - `explore_every`: steps between `explore` calls (an instance may set its own).
    - `step_period`: steps after which the per-step work repeats (`explore_every`; a method
      that updates its own model every k steps says k), so `augbench bench` times whole periods.
    - `recipes`: benchmark name -> hyperparameter defaults of the method on that benchmark (the
      paper's or public code's recipe, a stand-in's schedule). `resolve` applies them before the
      user's overrides, so they change a run's hyperparameters exactly as `--set` would; the one
      place to add a per-benchmark default. A benchmark without an entry gets `hparams`' defaults.
    - `variants`: variant name -> hyperparameter preset (InstaAug's "input-free" ablation is
      ``{"conditioning": "input-free"}``). `--set variant=NAME` (or ``variant = "NAME"`` in a
      grid's hparams) applies the preset over the recipe and under the other overrides;
      `variant_name` gives the name results group a configuration's runs by.
    - `data_parallel`: False for a method whose state several data-parallel processes would each
      update differently (a policy stepped inside `sample`, state per training image): such a
      method runs in one process.

    Example, on one benchmark's recipe and a named variant::

        recipes = {"clutter-crop": {"scale_min": 0.25}}
        variants = {"wide": {"scale_min": 0.05}}

    The trainer always gives `sample` the labels (`ctx.y`) and the classifier's features
    (`ctx.features`) during training; a method uses them or not.

    `inspect_constants()` returns values that are the same for every sample and that figures
    need (no batch dimension), e.g. InstaAug's LRP "candidate_boxes" (K, 4), the boxes behind
    the columns of its per-sample "crop_probs"; the trainer stores them in inspect.pt as
    "const.<name>" next to the per-sample `inspect` values, so figures never rebuild a method.

    `ctx.features` runs the classifier: a method that calls it while the model is in train
    mode also updates BatchNorm statistics, so policies read features in eval mode.
    """

    name: ClassVar[str] = ""
    families: ClassVar[frozenset[str]] = frozenset()
    hparams: ClassVar[Mapping[str, HParam]] = {}
    explores: ClassVar[bool] = False
    tasks: ClassVar[frozenset[str]] = frozenset()
    recipes: ClassVar[Mapping[str, Mapping[str, Any]]] = {}
    variants: ClassVar[Mapping[str, Mapping[str, Any]]] = {}
    data_parallel: ClassVar[bool] = True
    explore_every: int = 1

    @property
    def step_period(self) -> int:
        return int(self.explore_every) if self.explores else 1

    def __init__(self, ctx: MethodContext, **hp: Any) -> None:
        super().__init__()
        self.ctx = ctx
        self.hp: dict[str, Any] = self.spec().resolve(hp)

    @classmethod
    def spec(cls) -> Spec:
        """The declared hyperparameters as a `Spec` (validation, identity)."""
        return Spec(f"method {cls.name}", cls.hparams)

    @classmethod
    def settable(cls) -> frozenset[str]:
        """The names `--set` may give this method: its hyperparameters, and `variant` if it has variants."""
        return frozenset(cls.hparams) | ({VARIANT} if cls.variants else frozenset())

    @classmethod
    def variant_preset(cls, name: str) -> Mapping[str, Any]:
        """The hyperparameters of the named variant `name`; a one-line error naming a close match."""
        check_variant(cls.name, name, cls.variants)
        return cls.variants[name]

    @classmethod
    def variant_name(cls, hp: Mapping[str, Any], family: str = "") -> str:
        """The named variant a configuration (hyperparameters `hp`) is, "" when none: what results group by.

        Default: the first of `variants` whose preset `hp` contains. `family` is the benchmark's,
        for methods whose values adapt to it (InstaAug's parameterization None). Tables and
        figures label the runs "method (variant)", e.g. "instaaug (input-free)".
        """
        for name, preset in cls.variants.items():
            if all(k in hp and hp[k] == v for k, v in preset.items()):
                return name
        return ""

    @classmethod
    def families_for(cls, hp: Mapping[str, Any]) -> frozenset[str]:
        """The families a configuration (resolved hyperparameters `hp`) transforms; default `families`.

        A method whose hyperparameters choose what it transforms (Augerino's generators, InstaAug's
        parameterization) narrows it, so that a benchmark accepts exactly the configurations that
        act on its family; values that adapt to the benchmark ("auto") keep every family.
        """
        return cls.families

    #: hyperparameter -> the hyperparameter whose rule `derive` sets it from (shown by `--dry-run`)
    derived: ClassVar[Mapping[str, str]] = {}

    @classmethod
    def derive(cls, hp: Mapping[str, Any], settings: Mapping[str, Any]) -> dict[str, Any]:
        """The hyperparameters with those a rule states relative to the schedule made concrete.

        Called by `resolve` before `check`, with the resolved benchmark settings: a value stated
        as a fraction of the run (InstaAug's `pretrain_fraction`) becomes the number the run
        uses, so `--dry-run`, the run's identity and the records all show it. Must be idempotent
        (a derived configuration derives to itself). Default: unchanged.
        """
        return dict(hp)

    @classmethod
    def check(cls, hp: Mapping[str, Any], settings: Mapping[str, Any]) -> None:
        """Refuse (ConfigError) a configuration that resolves but cannot do what the method is for.

        Called by `resolve` with the resolved hyperparameters and benchmark settings, so that a
        run that could never learn (e.g. a schedule that keeps the policy frozen for every epoch)
        fails before it starts, with the setting to change; default: accept everything.
        """

    # ------------------------------------------------------------------ training
    def sample(self, x: Tensor, ctx: StepContext, n_views: int = 1) -> Views:
        """Draw `n_views` transformations per input and apply them (training time)."""
        raise NotImplementedError

    def objective(self, per_sample_loss: Tensor, views: Views) -> tuple[Tensor, dict[str, Tensor]]:
        """The scalar to minimise, from the task's per-sample losses (shape (V*B,)).

        Gradients reach differentiable transforms through `per_sample_loss` itself; a method
        that samples discrete choices adds its score-function term here (see InstaAug).
        """
        return per_sample_loss.mean(), {}

    def make_optimizer(self) -> torch.optim.Optimizer | None:
        """The optimizer of the method's own parameters, or None when it has none."""
        return None

    def train_copies(self) -> int:
        """Draws per training view whose outputs `combine_train_copies` merges into one prediction
        before the task's loss (FlowInv's public CIFAR code: the mean logit of 20 draws); default 1.

        `sample` is then asked for n_views * copies views, view-major, so draw c of view v is
        view c * n_views + v; `objective` gets the task's losses of the n_views combined views.
        """
        return 1

    def combine_train_copies(self, outs: Tensor) -> Tensor:
        """Outputs (copies, V*B, K) of the copies of each training view -> (V*B, K); default the mean."""
        return outs.mean(0)

    def classifier_label_smoothing(self) -> float:
        """Label smoothing of the classifier's cross-entropy that this method's recipe asks for (default 0:
        plain cross-entropy, the same loss for every method)."""
        return 0.0

    def explore(self, x: Tensor, y: Tensor, ctx: StepContext, head: Callable[[Tensor], Tensor]) -> dict[str, Tensor]:
        """A search step on a validation batch (AdaAug); called only for methods with `explores`."""
        return {}

    def attach_classifier(self, model: nn.Module) -> None:
        """Called once by the trainer with the classifier it trains, before optimizers and any resume.

        For methods defined through the classifier itself (TeachAugment: an EMA teacher of it and
        an adversarial pass through it). Keep `model` out of the module tree
        (`object.__setattr__`) so its weights become neither the method's parameters nor its
        state; state derived from it (a teacher copy) belongs to the method and must exist before
        a checkpoint is loaded, hence here and not on the first step. Default: ignore it.
        """

    # ------------------------------------------------------------------ schedules
    def begin_epoch(self, epoch: int) -> None:
        """Called before each training epoch (pretraining phases, learning-rate warm-up)."""

    def end_epoch(self, epoch: int, val_stats: Mapping[str, float]) -> dict[str, float]:
        """Called after validation with its averaged `inspect` statistics; returns values to log.

        Schedules that react to training (InstaAug's dynamic lambda) live here, driven by the
        validation split only.
        """
        return {}

    def validation_check(self, epoch: int, val_stats: Mapping[str, float]) -> dict[str, float]:
        """Called at each validation check inside an epoch (`train.val_checks` - 1 of them; the last
        check of an epoch is `end_epoch`'s) with the same statistics; returns values to log.

        Why: a controller stepped once per epoch (InstaAug's lambda) cannot react within a 5-epoch
        run; counted in checks, its reaction time is the same for short and long schedules.
        """
        return {}

    def selectable(self, epoch: int) -> bool:
        """Whether the state after `epoch` may be the one reported (best-epoch selection).

        A method that does not learn yet (InstaAug's pretraining: phi frozen at its prior) says
        no, so that a lucky validation score of the untrained distribution is never reported
        as the method's result. Default: every epoch.
        """
        return True

    def entropy_band(self) -> dict[str, float]:
        """For learned distributions that log an "entropy" per validation check: what it should be.

        Keys "h_min", "h_max" (the band the method aims for), optionally "h_init" (at
        initialisation) and "h_top" (the most the family allows); the trainer diagnoses from
        them whether the distribution learned (`augbench.train.diagnosis`). Default: no band.
        """
        return {}

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def test_views(self, x: Tensor, n_views: int, ctx: StepContext) -> Tensor:
        """Views for test-time augmentation, (n_views * B, C, H, W) view-major.

        Default: the training distribution. Methods whose training distribution needs labels
        override this (class-specific InstaAug falls back to random crops).
        """
        return self.sample(x, ctx, n_views).x

    def identical_test_views(self) -> bool:
        """True when `test_views` can only return n copies of one view (`none`: the input itself).

        Test-time augmentation then puts one view per input through the model and hands
        `combine_views` that output n times: the same prediction for 1/n of the forwards.
        Default False (views are drawn); override only where the views cannot differ.
        """
        return False

    def combine_views(self, outs: Tensor) -> Tensor:
        """Combine test-time outputs (V, B, K) into (B, K): the mean logit (InstaAug, Appendix C.2).

        Override for other rules (Augerino's mean log-probability, InstaAug's top-k weighting).
        """
        return outs.mean(0)

    @torch.no_grad()
    def inspect(self, x: Tensor, ctx: StepContext) -> dict[str, Tensor]:
        """Per-sample distribution parameters and summaries, first dimension B.

        Used for validation statistics (means of 1-D entries feed `end_epoch`), ground-truth
        invariance metrics (e.g. "rotation_range": (B, 2) in radians) and plots.
        """
        return {}

    def inspect_constants(self) -> dict[str, Tensor]:
        """Sample-independent values figures need, by name (stored as inspect.pt "const.<name>")."""
        return {}

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.hp.items())


def build_param_optimizer(params: list[nn.Parameter], hp: Mapping[str, Any],
                          prefix: str = "") -> torch.optim.Optimizer | None:
    """SGD/Adam from the conventional `optimizer`, `lr`, `momentum`, `nesterov`, `weight_decay` hyperparameters."""
    params = [p for p in params if p.requires_grad]
    if not params:
        return None
    kind = hp.get(prefix + "optimizer", "adam")
    lr = hp[prefix + "lr"]
    wd = hp.get(prefix + "weight_decay", 0.0)
    if kind == "sgd":
        momentum = hp.get(prefix + "momentum", 0.9)
        nesterov = bool(hp.get(prefix + "nesterov", False)) and momentum > 0  # Nesterov needs momentum
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=wd, nesterov=nesterov)
    return torch.optim.Adam(params, lr=lr, weight_decay=wd)
