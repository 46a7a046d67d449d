"""Pretrained classifiers from LOCAL weights files, wrapped to take [0, 1] images and frozen.

The paper's Section 5.3 (Table 2) trains only the invariance module phi against a fixed,
pretrained classifier, then reuses phi on other classifiers without retraining. Nothing may
download weights at run time, so every classifier is an architecture built with random
weights plus a weights file the user supplies:

    "resnet50"                     torchvision `get_model(name, weights=None)` (also "torchvision:NAME")
    "timm:xcit_small_12_p16_224"   timm `create_model(name, pretrained=False)` (optional: pip install timm)
    "augbench:small_cnn@0.5"       an augbench backbone (`augbench.models.BACKBONES`), width 0.5

timm's plain ResNets (the paper's ResNet-50 is timm's, Wightman 2019) use torchvision's
parameter names, so their weights also load into torchvision's "resnet50". `FrozenClassifier`
normalises inside (ImageNet mean/std for torchvision, timm's own config for timm; augbench
classifiers normalise themselves), exposes `features` (penultimate representation) and `head`
when the architecture has a recognisable final linear layer, and stays in eval mode whatever
`train()` is called with, so neither its weights nor its BatchNorm statistics can move while
phi trains.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from augbench.errors import ConfigError, DataError
from augbench.models import BACKBONES, IMAGENET_MEAN, IMAGENET_STD, build_model
from augbench.torchfile import UnreadableFile, load_tensors

SOURCES = ("torchvision", "timm", "augbench")
# Containers that may hold a state dict inside a checkpoint file (timm, Lightning, augbench runs).
_STATE_KEYS = ("state_dict", "model", "model_state", "model_state_dict", "net", "module")


@dataclass(frozen=True)
class ClassifierSpec:
    """An architecture by name: where it comes from, its name and (augbench only) its width."""

    source: str
    arch: str
    width: float = 1.0

    def __str__(self) -> str:
        if self.source == "augbench":
            return f"augbench:{self.arch}@{self.width:g}"
        return self.arch if self.source == "torchvision" else f"{self.source}:{self.arch}"


def parse_classifier_spec(text: str, default_width: float = 1.0) -> ClassifierSpec:
    """`NAME`, `torchvision:NAME`, `timm:NAME` or `augbench:BACKBONE[@WIDTH]` -> ClassifierSpec."""
    text = text.strip()
    source, sep, arch = text.partition(":")
    if not sep:
        source, arch = "torchvision", text
    if source not in SOURCES or not arch:
        raise ConfigError(f"classifier {text!r}: expected NAME, torchvision:NAME, timm:NAME or "
                          f"augbench:BACKBONE[@WIDTH]")
    width = default_width
    if source == "augbench":
        arch, at, w = arch.partition("@")
        if at:
            try:
                width = float(w)
            except ValueError:
                raise ConfigError(f"classifier {text!r}: width {w!r} after '@' is not a number") from None
        if arch not in BACKBONES or width <= 0:
            raise ConfigError(f"classifier {text!r}: augbench backbones are {', '.join(sorted(BACKBONES))} "
                              f"with a positive width")
    elif source == "torchvision":
        import torchvision  # its model zoo loads only for torchvision classifiers

        names = torchvision.models.list_models(module=torchvision.models)
        if arch not in names:
            raise ConfigError(f"unknown torchvision classifier {arch!r}; valid: {', '.join(names)} "
                              f"(or timm:NAME, augbench:BACKBONE)")
    return ClassifierSpec(source, arch, width)


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """The tensors of a local weights file (.pt/.pth/.bin via torch.load, .safetensors if installed).

    Accepts a bare state dict or one nested under a usual key ("state_dict", "model", ...: an
    augbench run's final_weights.pt holds {"model": ..., "method": ...}) and strips the
    "module." prefix of DataParallel checkpoints.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"weights file {path} does not exist")
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file  # optional: only for .safetensors files
        except ImportError:
            raise ConfigError(f"{path} is a safetensors file: pip install safetensors to read it") from None
        state: Any = load_file(str(path))
    else:
        try:
            state = load_tensors(path)
        except UnreadableFile as exc:  # what is wrong with the file, in augbench's words
            raise DataError(f"cannot read weights file {path}: {exc}") from None
    while isinstance(state, Mapping) and not any(isinstance(v, Tensor) for v in state.values()):
        key = next((k for k in _STATE_KEYS if isinstance(state.get(k), Mapping)), None)
        if key is None:
            break
        state = state[key]
    if not isinstance(state, Mapping) or not state:
        raise DataError(f"weights file {path} holds no state dict")
    out = {}
    for k, v in state.items():
        if isinstance(v, Tensor):
            out[k[len("module."):] if k.startswith("module.") else k] = v
    return out


def build_architecture(spec: ClassifierSpec, num_classes: int) -> nn.Module:
    """The architecture with random weights and `num_classes` outputs (no download)."""
    if spec.source == "augbench":
        return build_model(spec.arch, num_classes, width=spec.width)
    if spec.source == "timm":
        try:
            import timm  # optional dependency: only for timm classifiers
        except ImportError:
            raise ConfigError(f"classifier {spec}: timm is not installed (pip install 'augbench[timm]')") from None
        try:
            return timm.create_model(spec.arch, pretrained=False, num_classes=num_classes)
        except RuntimeError as exc:  # timm's "Unknown model"
            raise ConfigError(f"classifier {spec}: {(str(exc).splitlines() or [''])[0]}") from None
    import torchvision  # its model zoo loads only for torchvision classifiers

    return torchvision.models.get_model(spec.arch, weights=None, num_classes=num_classes)


def _load_into(net: nn.Module, state: Mapping[str, Tensor], spec: ClassifierSpec, path: Path, num_classes: int) -> None:
    own = net.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [k for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or wrong:
        parts = []
        if wrong:
            parts.append(f"{len(wrong)} shape mismatches (e.g. {wrong[0]}: file {tuple(state[wrong[0]].shape)} "
                         f"vs {tuple(own[wrong[0]].shape)})")
        if missing:
            parts.append(f"{len(missing)} missing keys (e.g. {missing[0]!r})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[0]!r})")
        raise ConfigError(f"weights file {path} does not fit {spec} with {num_classes} outputs (one per class of "
                          f"the dataset): {'; '.join(parts)}")
    net.load_state_dict(state)


def _split_head(net: nn.Module) -> tuple[nn.Module, nn.Module | None]:
    """(body, head) with head(body(x)) == net(x) when the last layer is a recognisable Linear.

    torchvision keeps it in `fc` (ResNets), `classifier` (VGG, DenseNet, EfficientNet, ...),
    `heads` (ViT) or `head` (Swin); the Linear is swapped for an Identity, so `net` itself
    becomes the feature extractor. Otherwise (None head) `net` is used whole.
    """
    for attr in ("fc", "classifier", "heads", "head"):
        mod = getattr(net, attr, None)
        if isinstance(mod, nn.Linear):
            setattr(net, attr, nn.Identity())
            return net, mod
        if isinstance(mod, nn.Sequential) and len(mod) and isinstance(mod[-1], nn.Linear):
            head = mod[-1]
            mod[-1] = nn.Identity()
            return net, head
    return net, None


class FrozenClassifier(nn.Module):
    """A fixed classifier of [0, 1] images: normalisation inside, no trainable parameter, always eval.

    `train(True)` only flips this wrapper's flag (the trainer calls it every epoch); every
    submodule stays in eval mode, so BatchNorm statistics and dropout never change. Gradients
    still flow to the INPUT, which is what pathwise-gradient methods (uniform InstaAug,
    Augerino) need.
    """

    mean: Tensor  # buffers (normalisation), present when `normalize`
    std: Tensor
    head_module: nn.Module | None

    def __init__(self, body: nn.Module, head: nn.Module | None, mean: tuple[float, ...] | None = None,
                 std: tuple[float, ...] | None = None, name: str = "") -> None:
        super().__init__()
        self.body = body
        self.head_module = head
        self.name = name
        if (mean is None) != (std is None):
            raise ValueError("FrozenClassifier: give both mean and std, or neither")
        self.normalize = mean is not None
        if mean is not None and std is not None:
            self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
            self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.train(False)

    def train(self, mode: bool = True) -> FrozenClassifier:
        self.training = mode
        for module in self.children():
            module.train(False)
        return self

    @property
    def feature_dim(self) -> int | None:
        """Size of `features`, None without a recognisable final linear layer (`TaskModel` protocol)."""
        if self.head_module is None:
            return None
        return int(getattr(self.head_module, "in_features", 0)) or None

    def _prep(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std if self.normalize else x

    def features(self, x: Tensor) -> Tensor:
        """Penultimate features of [0, 1] images (the input of `head`)."""
        if self.head_module is None:
            raise ConfigError(f"classifier {self.name or type(self.body).__name__} has no recognisable final "
                              f"linear layer, so no penultimate features (methods needing 'features' cannot use it)")
        return self.body(self._prep(x))

    def head(self, features: Tensor) -> Tensor:
        """Logits from `features`."""
        if self.head_module is None:
            raise ConfigError(f"classifier {self.name or type(self.body).__name__} exposes no separate head")
        return self.head_module(features)

    def forward(self, x: Tensor) -> Tensor:
        out = self.body(self._prep(x))
        return out if self.head_module is None else self.head_module(out)


def wrap_frozen(net: nn.Module, spec: ClassifierSpec) -> FrozenClassifier:
    """Freeze `net` (built from `spec`, weights loaded) behind the [0, 1]-image interface.

    The final linear layer moves to `FrozenClassifier.head` and `net` itself becomes the
    feature extractor, so every tensor appears once in the state dict.
    """
    if spec.source == "augbench":  # augbench's Classifier normalises itself
        own_head = net.get_submodule("head")
        net.head = nn.Identity()
        return FrozenClassifier(net, own_head, name=str(spec))
    if spec.source == "timm":
        cfg = getattr(net, "pretrained_cfg", None) or {}
        mean, std = tuple(cfg.get("mean", IMAGENET_MEAN)), tuple(cfg.get("std", IMAGENET_STD))
        timm_net: Any = net  # timm's model API (get_classifier, reset_classifier)
        timm_head = timm_net.get_classifier()
        if isinstance(timm_head, nn.Module) and not isinstance(timm_head, nn.Identity):
            timm_net.reset_classifier(0)  # timm: forward() now returns the pre-logits features
            return FrozenClassifier(net, timm_head, mean, std, name=str(spec))
        return FrozenClassifier(net, None, mean, std, name=str(spec))
    body, head = _split_head(net)
    return FrozenClassifier(body, head, IMAGENET_MEAN, IMAGENET_STD, name=str(spec))


def load_classifier(spec: ClassifierSpec | str, weights: str | Path, num_classes: int) -> FrozenClassifier:
    """Build `spec` with `num_classes` outputs, load the local `weights` file, freeze it."""
    if isinstance(spec, str):
        spec = parse_classifier_spec(spec)
    path = Path(weights).expanduser()
    state = read_state_dict(path)
    net = build_architecture(spec, num_classes)
    _load_into(net, state, spec, path, num_classes)
    return wrap_frozen(net, spec)


__all__ = ["ClassifierSpec", "FrozenClassifier", "build_architecture", "load_classifier", "parse_classifier_spec",
           "read_state_dict", "wrap_frozen"]
