"""Convolution helpers shared by the blocks (bias off by default: Restormer convention).

Two layouts run through the network (see ``net``): the reference path feeds B x C x H x W tensors
to the conv modules as written; the fast path keeps features as B x H x W x C ("BHWC", contiguous)
and calls the ops of ``kernels`` with the same weights (``matrix``, ``rows``).
"""

from __future__ import annotations

import torch
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


def matrix(conv: nn.Conv2d) -> torch.Tensor:
    """A 1x1 conv's weight as a C_out x C_in matrix (a view, also for channels_last weights)."""
    return conv.weight.flatten(1)


def rows(conv: nn.Conv2d, start: int = 0, stop: int | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Output channels ``start:stop`` of a conv: (weight, bias or None); 1x1 weights as matrices."""
    stop = conv.out_channels if stop is None else stop
    weight = conv.weight[start:stop]
    bias = conv.bias[start:stop] if conv.bias is not None else None
    return (weight.flatten(1) if conv.kernel_size == (1, 1) else weight), bias


def to_bhwc(x: torch.Tensor) -> torch.Tensor:
    """B x C x H x W (any memory format) -> contiguous B x H x W x C (free when channels_last)."""
    return x.permute(0, 2, 3, 1).contiguous()


def to_bchw(x: torch.Tensor) -> torch.Tensor:
    """BHWC -> the B x C x H x W view of the same memory (channels_last strides, no copy)."""
    return x.permute(0, 3, 1, 2)
