"""Pixel-(un)shuffle resampling between U-net levels (Restormer convention).

``forward`` (nn.Sequential) is the reference on B x C x H x W; ``forward_bhwc`` runs the same conv
on the channels-last view and does the (un)shuffle as one BHWC reshape-permute copy, with the
channel order of ``nn.PixelUnshuffle`` / ``nn.PixelShuffle`` (channel c * 4 + 2 * i + j holds
sub-pixel row i, column j).
"""

from __future__ import annotations

import torch
from torch import nn

from anyir.model.layers import to_bchw


def pixel_unshuffle_bhwc(x: torch.Tensor) -> torch.Tensor:
    """B x H x W x C -> B x H/2 x W/2 x 4C, as ``nn.PixelUnshuffle(2)`` orders channels."""
    b, h, w, c = x.shape
    y = x.reshape(b, h // 2, 2, w // 2, 2, c).permute(0, 1, 3, 5, 2, 4)
    return y.reshape(b, h // 2, w // 2, 4 * c)


def pixel_shuffle_bhwc(x: torch.Tensor) -> torch.Tensor:
    """B x H x W x 4C -> B x 2H x 2W x C, as ``nn.PixelShuffle(2)`` orders channels."""
    b, h, w, c4 = x.shape
    y = x.reshape(b, h, w, c4 // 4, 2, 2).permute(0, 1, 4, 2, 5, 3)
    return y.reshape(b, 2 * h, 2 * w, c4 // 4)


class Downsample(nn.Sequential):
    """3x3 conv C -> C/2, PixelUnshuffle(2): half resolution, 2C channels."""

    def __init__(self, channels: int, bias: bool = False) -> None:
        super().__init__(
            nn.Conv2d(channels, channels // 2, 3, padding=1, bias=bias), nn.PixelUnshuffle(2)
        )

    def forward_bhwc(self, x: torch.Tensor) -> torch.Tensor:
        """Fast path: BHWC in and out."""
        return pixel_unshuffle_bhwc(self[0](to_bchw(x)).permute(0, 2, 3, 1))


class Upsample(nn.Sequential):
    """kxk conv C -> 2C, PixelShuffle(2): double resolution, C/2 channels."""

    def __init__(self, channels: int, kernel: int = 3, bias: bool = False) -> None:
        super().__init__(
            nn.Conv2d(channels, channels * 2, kernel, padding=kernel // 2, bias=bias),
            nn.PixelShuffle(2),
        )

    def forward_bhwc(self, x: torch.Tensor) -> torch.Tensor:
        """Fast path: BHWC in and out."""
        return pixel_shuffle_bhwc(self[0](to_bchw(x)).permute(0, 2, 3, 1))
