"""Pixel-(un)shuffle resampling between U-net levels (Restormer convention)."""

from __future__ import annotations

from torch import nn


class Downsample(nn.Sequential):
    """3x3 conv C -> C/2, PixelUnshuffle(2): half resolution, 2C channels."""

    def __init__(self, channels: int, bias: bool = False) -> None:
        super().__init__(
            nn.Conv2d(channels, channels // 2, 3, padding=1, bias=bias), nn.PixelUnshuffle(2)
        )


class Upsample(nn.Sequential):
    """kxk conv C -> 2C, PixelShuffle(2): double resolution, C/2 channels."""

    def __init__(self, channels: int, kernel: int = 3, bias: bool = False) -> None:
        super().__init__(
            nn.Conv2d(channels, channels * 2, kernel, padding=kernel // 2, bias=bias),
            nn.PixelShuffle(2),
        )
