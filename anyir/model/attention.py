"""Multi-Dconv head transposed attention (Restormer's MDTA), used by the DAB's attention branch.

Attention is taken across channels (C/heads x C/heads per head), so its cost is linear in the
number of pixels. q and k are L2-normalised over pixels and scaled by a learnable per-head
temperature (Restormer's stand-in for eq. 7's 1/sqrt(d)).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from anyir.model.layers import conv1x1, dwconv3x3


class ChannelAttention(nn.Module):
    """MDTA: 1x1 conv to q,k,v, 3x3 depthwise conv, channel attention per head, 1x1 projection."""

    def __init__(self, channels: int, heads: int, bias: bool = False) -> None:
        super().__init__()
        self.heads = heads
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.qkv = conv1x1(channels, channels * 3, bias)
        self.qkv_dw = dwconv3x3(channels * 3, bias)
        self.proj = conv1x1(channels, channels, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv_dw(self.qkv(x)).reshape(b, 3, self.heads, c // self.heads, h * w).unbind(1)
        q = F.normalize(q, dim=-1)
        k = F.normalize(k, dim=-1)
        attn = (q @ k.transpose(-2, -1)) * self.temperature
        out = attn.softmax(dim=-1) @ v
        return self.proj(out.reshape(b, c, h, w))
