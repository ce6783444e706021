"""Degradation Adaptation Block (DAB), Sec. 3.3 and Fig. 2(b).

    att, gate = split(x)                       # eq. 6: skip-split (interleaved) or half-split
    a = MDTA(LN(att))                          # global branch
    g = GatedDA(gate)                          # local branch (own LN inside, Alg. 1)
    x = x + W_fuse(Fusion(a, g))               # Alg. 2 + eq. 9
    x = x + GDFN(LN(x))                        # eq. 8

``forward`` is the reference (B x C x H x W); ``forward_bhwc`` is the fast path on BHWC features:
each part's own fast path, and W_fuse applied as two column blocks to the two halves of F_fuse
(no concatenation), with the residual added inside the matrix product.
"""

from __future__ import annotations

import torch
from torch import nn

from anyir.model.attention import ChannelAttention
from anyir.model.config import Ablation
from anyir.model.ffn import GDFN
from anyir.model.fusion import ConcatFusion, SpatialFrequencyFusion
from anyir.model.gated_da import GatedDA
from anyir.model.kernels import pointwise_add
from anyir.model.layers import conv1x1, matrix
from anyir.model.norm import LayerNorm2d


def split_channels(x: torch.Tensor, mode: str) -> tuple[torch.Tensor, torch.Tensor]:
    """eq. 6: ``skip`` -> odd/even interleaved channels; ``half`` -> first/second half."""
    if mode == "skip":
        return x[:, 0::2], x[:, 1::2]
    return x.chunk(2, dim=1)


def split_channels_bhwc(x: torch.Tensor, mode: str) -> tuple[torch.Tensor, torch.Tensor]:
    """eq. 6 on a BHWC tensor (strided views of the last axis)."""
    if mode == "skip":
        return x[..., 0::2], x[..., 1::2]
    return x.chunk(2, dim=-1)


class NormAttention(nn.Sequential):
    """Pre-norm MDTA on one branch: LayerNorm (index 0), MDTA (index 1)."""

    def __init__(self, channels: int, heads: int, bias: bool) -> None:
        super().__init__(LayerNorm2d(channels), ChannelAttention(channels, heads, bias))

    def forward_bhwc(self, x: torch.Tensor) -> torch.Tensor:
        """Fast path on BHWC features."""
        return self[1].forward_bhwc(self[0].forward_bhwc(x))


class DAB(nn.Module):
    """One degradation adaptation block of width ``channels``."""

    def __init__(
        self,
        channels: int,
        heads: int,
        ffn_factor: float,
        gated_expansion: float,
        ablation: Ablation,
        bias: bool = False,
        frequency_path: str = "fast",
    ) -> None:
        super().__init__()
        half = channels // 2
        self.split = ablation.split
        self.attention = NormAttention(half, heads, bias)
        if ablation.gated_da:
            self.local = GatedDA(half, gated_expansion, ablation.abg, bias)
        else:  # Table 7 rows a/b: attention on the other half too, i.e. on all channels
            self.local = NormAttention(half, heads, bias)
        if ablation.fusion:
            self.fusion = SpatialFrequencyFusion(ablation.lambda_mode, ablation.lambda_value, frequency_path)
        else:
            self.fusion = ConcatFusion()
        self.fuse_proj = conv1x1(channels, channels, bias)
        self.ffn_norm = LayerNorm2d(channels)
        self.ffn = GDFN(channels, ffn_factor, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reference path: B x C x H x W in and out."""
        att, gate = split_channels(x, self.split)
        x = x + self.fuse_proj(self.fusion(self.attention(att), self.local(gate)))
        return x + self.ffn(self.ffn_norm(x))

    def forward_bhwc(self, x: torch.Tensor) -> torch.Tensor:
        """Fast path: B x H x W x C in and out; equal to ``forward`` up to float rounding."""
        att, gate = split_channels_bhwc(x, self.split)
        first, second = self.fusion.halves_bhwc(self.attention.forward_bhwc(att), self.local.forward_bhwc(gate))
        weight, bias, half = matrix(self.fuse_proj), self.fuse_proj.bias, x.shape[-1] // 2
        if second is None:  # both halves equal (frequency-only fusion): W1 f + W2 f = (W1 + W2) f
            x = pointwise_add(x, first, weight[:, :half] + weight[:, half:], bias)
        else:
            x = pointwise_add(pointwise_add(x, first, weight[:, :half], bias), second, weight[:, half:])
        return self.ffn.forward_bhwc(self.ffn_norm.forward_bhwc(x), x)
