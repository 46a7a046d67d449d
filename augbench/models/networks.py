"""Backbones: the paper's PreActResNet-18 and a small CNN for the embedded benchmarks.

Each backbone maps images to a feature vector and exposes `out_features`; `Classifier`
adds normalisation in front and a linear head behind, so augmentations always see [0, 1]
pixels and methods can ask for penultimate features (AdaAug).
"""

from __future__ import annotations

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
    """PreActResNet-18 as in the paper's Tiny-ImageNet experiments (width 1: 64-128-256-512).

    A 3x3 stem without max-pooling, as in the Mixmo/CIFAR-style code the paper builds on.
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

    def __init__(self, backbone: nn.Module, num_outputs: int, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(backbone.out_features, num_outputs)
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def features(self, x: Tensor) -> Tensor:
        """Penultimate features of [0, 1] images."""
        return self.backbone((x - self.mean) / self.std)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))
