"""Multi-Dconv head transposed attention (Restormer's MDTA), used by the DAB's attention branch.

Attention is taken across channels (C/heads x C/heads per head), so its cost is linear in the
number of pixels. q and k are L2-normalised over pixels and scaled by a learnable per-head
temperature (Restormer's stand-in for eq. 7's 1/sqrt(d)).

``forward`` is the reference (as Restormer writes it); ``forward_bhwc`` computes the same function
with fewer passes over memory: q, k and v stay strided views of one BHWC tensor (no reshape
copies); the normalisation is applied to the small d x d score matrix
instead of to q and k (q/|q| . k/|k| = (q . k) / (|q| |k|)); and the output projection is folded
into the attention matrix (W_proj (A v) = (W_proj A) v), so v is read once and nothing of size
C x H x W is written between the softmax and the block output.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from anyir.model.kernels import batched_pointwise, depthwise, pointwise
from anyir.model.layers import conv1x1, dwconv3x3, matrix, rows

NORM_EPS = 1e-12  # F.normalize's default: x / max(|x|, eps)


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
        """Reference path: B x C x H x W in and out."""
        b, c, h, w = x.shape
        q, k, v = self.qkv_dw(self.qkv(x)).reshape(b, 3, self.heads, c // self.heads, h * w).unbind(1)
        q = F.normalize(q, dim=-1)
        k = F.normalize(k, dim=-1)
        attn = (q @ k.transpose(-2, -1)) * self.temperature
        out = attn.softmax(dim=-1) @ v
        return self.proj(out.reshape(b, c, h, w))

    def forward_bhwc(self, x: torch.Tensor) -> torch.Tensor:
        """Fast path: B x H x W x C in and out; equal to ``forward`` up to float rounding."""
        b, h, w, c = x.shape
        heads, d = self.heads, c // self.heads
        qkv = depthwise(pointwise(x, *rows(self.qkv)), *rows(self.qkv_dw)).reshape(b, h * w, 3 * c)
        q, k, v = qkv.split(c, dim=-1)  # strided views; the matrix products take them as they are
        scores = torch.bmm(q.transpose(1, 2), k)  # B x C x C; head blocks on the diagonal
        scores = scores.view(b, heads, d, heads, d).diagonal(dim1=1, dim2=3).permute(0, 3, 1, 2)
        norms = qkv[..., : 2 * c].square().sum(1).sqrt().clamp_min(NORM_EPS)  # |q|, |k| per channel
        q_norm, k_norm = norms[:, :c].view(b, heads, d, 1), norms[:, c:].view(b, heads, 1, d)
        attn = (scores / (q_norm * k_norm) * self.temperature).softmax(dim=-1)
        mix = torch.einsum("ohi,bhij->bohj", matrix(self.proj).view(c, heads, d), attn).reshape(b, c, c)
        out = batched_pointwise(v, mix).view(b, h, w, c)
        return out if self.proj.bias is None else out + self.proj.bias
