"""MobileNetV2's convolutional trunk (Sandler et al., 2018), module for module as torchvision builds it.

Why not ``torchvision.models.mobilenet_v2``: importing any part of torchvision runs its package ``__init__``, which
imports ``torchvision.ops`` and through it ``torch._dynamo``: about 1.3 s of a cold ``analyze_video`` on a 2-core
machine (bench/README.md, "Cold start"), for a network of twenty small blocks. This trunk has the same modules in
the same order, so its state dict has torchvision's keys (``0.0.weight``, ``1.conv.0.0.weight``, ...), ImageNet
weights and every existing checkpoint load unchanged, and its outputs equal torchvision's (tests/test_network.py
compares both). The ResNet-family backbones still come from torchvision, imported only when one is built.
"""

from __future__ import annotations

import torch
from torch import nn

# (expansion t, output channels c, repeats n, first stride s), the paper's Table 2, width multiplier 1
_SETTING = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
FEATURE_SIZE = 1280


class ConvBNReLU6(nn.Sequential):
    """Convolution without bias, batch norm, ReLU6: torchvision's ``Conv2dNormActivation`` as MobileNetV2 uses it."""

    def __init__(self, inp: int, oup: int, kernel_size: int = 3, stride: int = 1, groups: int = 1) -> None:
        padding = (kernel_size - 1) // 2
        super().__init__(
            nn.Conv2d(inp, oup, kernel_size, stride, padding, groups=groups, bias=False),
            nn.BatchNorm2d(oup),
            nn.ReLU6(inplace=True),
        )


class InvertedResidual(nn.Module):
    """Expand (1x1), depthwise (3x3), project (1x1, linear); a residual connection where the shape allows."""

    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        hidden = inp * expand_ratio
        self.use_res_connect = stride == 1 and inp == oup
        layers: list[nn.Module] = [ConvBNReLU6(inp, hidden, kernel_size=1)] if expand_ratio != 1 else []
        layers += [
            ConvBNReLU6(hidden, hidden, stride=stride, groups=hidden),
            nn.Conv2d(hidden, oup, 1, 1, 0, bias=False),
            nn.BatchNorm2d(oup),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


def mobilenet_v2_features() -> nn.Sequential:
    """The trunk (torchvision's ``mobilenet_v2().features``): 1280 channels at 1/32 of the input's size, initialised
    as torchvision initialises it (Kaiming-normal convolutions, unit batch norms)."""
    layers: list[nn.Module] = [ConvBNReLU6(3, 32, stride=2)]
    channels = 32
    for expansion, width, repeats, stride in _SETTING:
        for index in range(repeats):
            layers.append(InvertedResidual(channels, width, stride if index == 0 else 1, expansion))
            channels = width
    layers.append(ConvBNReLU6(channels, FEATURE_SIZE, kernel_size=1))
    trunk = nn.Sequential(*layers)
    if next(trunk.parameters()).is_meta:  # built to receive a checkpoint's weights (and init on meta imports dynamo)
        return trunk
    # torchvision builds and initialises a 1000-class classifier too: drawing the same random numbers keeps a seeded
    # trunk, and whatever is initialised after it, equal to torchvision's (random checkpoints made before stay so).
    classifier = nn.Linear(FEATURE_SIZE, 1000)
    for module in trunk.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    nn.init.normal_(classifier.weight, 0, 0.01)
    return trunk
