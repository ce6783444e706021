"""Gated-Dconv feed-forward network (Restormer's GDFN), applied after the fusion (eq. 8)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from anyir.model.layers import conv1x1, dwconv3x3


class GDFN(nn.Module):
    """1x1 to 2*hidden, 3x3 depthwise, GELU(x1) * x2, 1x1 back; hidden = int(C * factor)."""

    def __init__(self, channels: int, factor: float, bias: bool = False) -> None:
        super().__init__()
        hidden = int(channels * factor)
        self.project_in = conv1x1(channels, hidden * 2, bias)
        self.dw = dwconv3x3(hidden * 2, bias)
        self.project_out = conv1x1(hidden, channels, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = self.dw(self.project_in(x)).chunk(2, dim=1)
        return self.project_out(F.gelu(x1) * x2)
