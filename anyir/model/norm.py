"""Channel LayerNorm (Restormer's WithBias LayerNorm), for B x C x H x W and BHWC features.

The reference path normalises a B x C x H x W tensor over C with the fused ``F.layer_norm`` on a
channels-last view (same maths as a hand-written mean/variance, one kernel). The fast path keeps
features BHWC, where the channel axis is the last one and layer norm needs no permute or copy.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channel dimension (eps 1e-5, weight and bias)."""

    def __init__(self, channels: int) -> None:
        super().__init__(channels, eps=1e-5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reference path: B x C x H x W in and out."""
        y = F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias, self.eps)
        return y.permute(0, 3, 1, 2)

    def forward_bhwc(self, x: torch.Tensor) -> torch.Tensor:
        """Fast path: B x H x W x C in and out (a strided channel slice is copied once, by the kernel)."""
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
