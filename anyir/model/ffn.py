"""Gated-Dconv feed-forward network (Restormer's GDFN), applied after the fusion (eq. 8).

``forward`` is the reference. ``forward_bhwc`` is the same function on BHWC features: the two
gate halves come from their own rows of ``project_in`` and of the depthwise conv (contiguous
results: no chunk copies); GELU and the gate's multiply run as the depthwise convs' epilogues and
the residual inside the output projection (see ``kernels``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from anyir.model.kernels import depthwise, depthwise_mul, pointwise, pointwise_add
from anyir.model.layers import conv1x1, dwconv3x3, rows


class GDFN(nn.Module):
    """1x1 to 2*hidden, 3x3 depthwise, GELU(x1) * x2, 1x1 back; hidden = int(C * factor)."""

    def __init__(self, channels: int, factor: float, bias: bool = False) -> None:
        super().__init__()
        self.hidden = int(channels * factor)
        self.project_in = conv1x1(channels, self.hidden * 2, bias)
        self.dw = dwconv3x3(self.hidden * 2, bias)
        self.project_out = conv1x1(self.hidden, channels, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reference path: B x C x H x W in and out."""
        x1, x2 = self.dw(self.project_in(x)).chunk(2, dim=1)
        return self.project_out(F.gelu(x1) * x2)

    def forward_bhwc(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        """Fast path: ``residual + GDFN(x)`` for BHWC tensors; equal to the reference up to rounding."""
        h = self.hidden
        x1 = depthwise(pointwise(x, *rows(self.project_in, 0, h)), *rows(self.dw, 0, h), gelu=True)
        gated = depthwise_mul(pointwise(x, *rows(self.project_in, h, 2 * h)), *rows(self.dw, h, 2 * h), other=x1)
        return pointwise_add(residual, gated, *rows(self.project_out))
