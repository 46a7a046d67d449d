"""Backbones: the paper's PreActResNet-18, two ResNet-18 variants and a small CNN.

- `PaperPreActResNet18` ("preact_resnet18_paper"): the network of the paper's Tiny-ImageNet
  code (its Mixmo-based ResNet): 3x3 stride-2 stem, last map 4x4 at 64 px, no final BN,
  about 1.11 GFLOPs per 64x64 image.
- `PreActResNet18` ("preact_resnet18"): the CIFAR-style variant with a 3x3 stride-1 stem and
  a final BN-ReLU; last map 8x8 at 64 px, 4x the paper network's compute there.
- `ResNet18MaxPool` ("resnet18_maxpool"): torchvision's post-activation ResNet-18 with a 3x3
  stride-1 stem and its max-pooling kept: the encoder of the public contrastive code.

Each backbone maps images to a feature vector and exposes `out_features`; `Classifier`
adds normalisation in front and a linear head behind, so augmentations always see [0, 1]
pixels and methods can ask for penultimate features (AdaAug).
"""

from __future__ import annotations

import math
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class PreActBlock(nn.Module):
    """Pre-activation basic block (He et al., 2016b): BN-ReLU-conv3x3-BN-ReLU-conv3x3."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.shortcut = None if stride == 1 and cin == cout else nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(x))
        skip = x if self.shortcut is None else self.shortcut(out)
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + skip


class PreActResNet18(nn.Module):
    """CIFAR-style PreActResNet-18 (width 1: 64-128-256-512): 3x3 stride-1 stem, final BN-ReLU.

    Not the paper's Tiny-ImageNet network (that is `PaperPreActResNet18`): the stride-1 stem
    keeps 4x the resolution, and so 4x the compute, at every stage.
    """

    def __init__(self, width: float = 1.0, in_channels: int = 3) -> None:
        super().__init__()
        chans = [int(round(c * width)) for c in (64, 128, 256, 512)]
        self.stem = nn.Conv2d(in_channels, chans[0], 3, 1, 1, bias=False)
        layers, cin = [], chans[0]
        for i, c in enumerate(chans):
            stride = 1 if i == 0 else 2
            layers += [PreActBlock(cin, c, stride), PreActBlock(c, c, 1)]
            cin = c
        self.layers = nn.Sequential(*layers)
        self.bn = nn.BatchNorm2d(cin)
        self.out_features = cin

    def forward(self, x: Tensor) -> Tensor:
        out = self.layers(self.stem(x))
        out = F.relu(self.bn(out))
        return F.adaptive_avg_pool2d(out, 1).flatten(1)


def he_truncated_normal_(weight: Tensor) -> None:
    """He (fan-in) normal truncated at +-2 sigma, rescaled so the truncated std is the He std.

    The initialisation of the paper's code for convolutions (0.8796 is the std of a unit
    normal truncated at +-2).
    """
    fan_in = weight[0].numel()
    std = math.sqrt(2.0 / fan_in) / 0.87962566103423978
    nn.init.trunc_normal_(weight, 0.0, std, -2 * std, 2 * std)


class PaperPreActBlock(PreActBlock):
    """`PreActBlock` whose shortcut sits in a Sequential, so state-dict keys match the paper's code."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__(cin, cout, stride)
        if self.shortcut is not None:
            self.shortcut = nn.Sequential(self.shortcut)  # type: ignore[assignment]


class PaperPreActResNet18(nn.Module):
    """The paper's PreActResNet-18 (Tiny-ImageNet code, width 1: 64-128-256-512).

    conv3x3 stride 2 (64 -> 32 px) -> four stages of two pre-activation blocks (strides 1, 2,
    2, 2; last map 4x4 at 64 px) -> average pool; no BN-ReLU after the last block. The paper's
    code pools with a fixed 4x4 window, which equals the global average used here at 64 px
    (other input sizes keep working). Module names follow that code (`conv1`, `layer1`...
    `layer4`, `shortcut.0`), so its checkpoints load into this backbone; convolutions start
    from its truncated He initialisation and the linear head from N(0, 0.01), zero bias.
    ~11.27 M parameters with a 200-class head; 1.11 GFLOPs per 64x64 image.
    """

    head_init_std = 0.01

    def __init__(self, width: float = 1.0, in_channels: int = 3) -> None:
        super().__init__()
        chans = [int(round(c * width)) for c in (64, 128, 256, 512)]
        self.conv1 = nn.Conv2d(in_channels, chans[0], 3, 2, 1, bias=False)
        stages, cin = [], chans[0]
        for i, c in enumerate(chans):
            stride = 1 if i == 0 else 2
            stages.append(nn.Sequential(PaperPreActBlock(cin, c, stride), PaperPreActBlock(c, c, 1)))
            cin = c
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.out_features = cin
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                he_truncated_normal_(m.weight)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(x)
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            out = layer(out)
        return F.adaptive_avg_pool2d(out, 1).flatten(1)


class BasicBlock(nn.Module):
    """Post-activation basic block (He et al., 2016a): conv-BN-ReLU-conv-BN, add, ReLU."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        skip = x if self.downsample is None else self.downsample(x)
        return F.relu(out + skip)


class ResNet18MaxPool(nn.Module):
    """torchvision's ResNet-18 layout with a 3x3 stride-1 stem and its 3x3 stride-2 max-pool kept.

    The encoder of the public contrastive code (the self-supervised base code swaps the 7x7
    stem for a 3x3 one on small images and keeps the max-pool for Tiny-ImageNet); the paper's
    text names PreActResNet-18 instead. Module names and initialisation follow torchvision, so
    its ResNet-18 state dicts (without `fc`) load.
    """

    def __init__(self, width: float = 1.0, in_channels: int = 3) -> None:
        super().__init__()
        chans = [int(round(c * width)) for c in (64, 128, 256, 512)]
        self.conv1 = nn.Conv2d(in_channels, chans[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(chans[0])
        stages, cin = [], chans[0]
        for i, c in enumerate(chans):
            stride = 1 if i == 0 else 2
            stages.append(nn.Sequential(BasicBlock(cin, c, stride), BasicBlock(c, c, 1)))
            cin = c
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.out_features = cin
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor) -> Tensor:
        out = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            out = layer(out)
        return F.adaptive_avg_pool2d(out, 1).flatten(1)


class SmallCNN(nn.Module):
    """Four conv-BN-ReLU stages with pooling: trains in seconds per epoch on a CPU at 32x32."""

    def __init__(self, width: float = 1.0, in_channels: int = 3) -> None:
        super().__init__()
        chans = [int(round(c * width)) for c in (32, 64, 96, 128)]
        layers, cin = [], in_channels
        for i, c in enumerate(chans):
            layers += [nn.Conv2d(cin, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
            if i < len(chans) - 1:
                layers.append(nn.MaxPool2d(2))
            cin = c
        self.body = nn.Sequential(*layers)
        self.out_features = cin

    def forward(self, x: Tensor) -> Tensor:
        return F.adaptive_avg_pool2d(self.body(x), 1).flatten(1)


class Classifier(nn.Module):
    """normalise -> backbone -> linear head; `features` gives the penultimate representation."""

    mean: Tensor  # buffers (normalisation)
    std: Tensor

    def __init__(self, backbone: nn.Module, num_outputs: int, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.backbone = backbone
        self._feature_dim = cast(int, backbone.out_features)  # every backbone declares its output width
        head = nn.Linear(self._feature_dim, num_outputs)
        head_std = getattr(backbone, "head_init_std", None)  # a backbone may carry its code's head init
        if head_std is not None:
            nn.init.normal_(head.weight, 0.0, head_std)
            nn.init.zeros_(head.bias)
        self.head: nn.Module = head  # a task may replace it (the contrastive projection head)
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    @property
    def feature_dim(self) -> int:
        """Size of `features` (the `augbench.tasks.TaskModel` protocol)."""
        return self._feature_dim

    def features(self, x: Tensor) -> Tensor:
        """Penultimate features of [0, 1] images."""
        return self.backbone((x - self.mean) / self.std)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))
