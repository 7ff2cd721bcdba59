"""PreAct-ResNet18 (the BackdoorBench victim) with a width multiplier.

The model takes images in [0, 1] and normalises inside, so an exported engine's input is
the raw frame scaled to [0, 1]. ``forward_features`` returns the penultimate features and
``head`` is the final linear layer: DRMGuard and EigenGuard address them by these names.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass(frozen=True)
class ResNetConfig:
    """One model variant.

    Attributes:
        num_outputs: classes (classification) or regression outputs.
        in_channels: 1 (grey) or 3 (RGB).
        width: multiplier on the stage widths 64/128/256/512 (0.125 gives 8/16/32/64).
        blocks: residual blocks per stage (2, 2, 2, 2 is ResNet-18).
        mean, std: per-channel input normalisation applied inside the model.
    """

    num_outputs: int = 10
    in_channels: int = 3
    width: float = 1.0
    blocks: tuple[int, ...] = (2, 2, 2, 2)
    mean: tuple[float, ...] = (0.4914, 0.4822, 0.4465)
    std: tuple[float, ...] = (0.247, 0.243, 0.261)


class Normalize(nn.Module):
    """(x - mean) / std per channel; x is (N, C, H, W) in [0, 1]."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class PreActBlock(nn.Module):
    """BN-ReLU-conv3x3 twice, with a 1x1 projection shortcut when the shape changes."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.shortcut = None
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Conv2d(in_planes, planes, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + shortcut


class PreActResNet(nn.Module):
    """PreAct-ResNet with a CIFAR stem (3x3 conv, no max-pool).

    Input (N, C, H, W) float in [0, 1]; output (N, num_outputs) logits or regression values.
    Named stages ``layer1``..``layer4`` are the insertion points EigenGuard uses.
    """

    def __init__(self, config: ResNetConfig = ResNetConfig()):
        super().__init__()
        self.config = config
        widths = [max(4, int(round(c * config.width))) for c in (64, 128, 256, 512)]
        mean, std = config.mean, config.std
        if len(mean) != config.in_channels:  # grey input: average the RGB statistics
            mean = (sum(mean) / len(mean),) * config.in_channels
            std = (sum(std) / len(std),) * config.in_channels
        self.normalize = Normalize(mean, std)
        self.conv1 = nn.Conv2d(config.in_channels, widths[0], 3, 1, 1, bias=False)
        in_planes = widths[0]
        for stage, (planes, n_blocks) in enumerate(zip(widths, config.blocks), start=1):
            blocks = []
            for i in range(n_blocks):
                stride = 2 if (stage > 1 and i == 0) else 1
                blocks.append(PreActBlock(in_planes, planes, stride))
                in_planes = planes
            setattr(self, f"layer{stage}", nn.Sequential(*blocks))
        self.bn = nn.BatchNorm2d(in_planes)
        self.feature_dim = in_planes
        self.head = nn.Linear(in_planes, config.num_outputs)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) in [0, 1] -> (N, feature_dim) penultimate features."""
        out = self.conv1(self.normalize(x))
        for stage in range(1, len(self.config.blocks) + 1):
            out = getattr(self, f"layer{stage}")(out)
        out = F.relu(self.bn(out))
        return F.adaptive_avg_pool2d(out, 1).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))
