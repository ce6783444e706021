"""Convolution helpers shared by the blocks (bias off by default: Restormer convention)."""

from __future__ import annotations

from torch import nn


def conv1x1(c_in: int, c_out: int, bias: bool = False) -> nn.Conv2d:
    """Pointwise convolution (a per-pixel linear layer)."""
    return nn.Conv2d(c_in, c_out, 1, bias=bias)


def conv3x3(c_in: int, c_out: int, bias: bool = False) -> nn.Conv2d:
    """3x3 convolution with 'same' padding."""
    return nn.Conv2d(c_in, c_out, 3, padding=1, bias=bias)


def dwconv3x3(channels: int, bias: bool = False) -> nn.Conv2d:
    """3x3 depthwise convolution with 'same' padding."""
    return nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=bias)
