"""Degradation Adaptation Block (DAB), Sec. 3.3 and Fig. 2(b).

    att, gate = split(x)                       # eq. 6: skip-split (interleaved) or half-split
    a = MDTA(LN(att))                          # global branch
    g = GatedDA(gate)                          # local branch (own LN inside, Alg. 1)
    x = x + W_fuse(Fusion(a, g))               # Alg. 2 + eq. 9
    x = x + GDFN(LN(x))                        # eq. 8
"""

from __future__ import annotations

import torch
from torch import nn

from anyir.model.attention import ChannelAttention
from anyir.model.config import Ablation
from anyir.model.ffn import GDFN
from anyir.model.fusion import ConcatFusion, SpatialFrequencyFusion
from anyir.model.gated_da import GatedDA
from anyir.model.layers import conv1x1
from anyir.model.norm import LayerNorm2d


def split_channels(x: torch.Tensor, mode: str) -> tuple[torch.Tensor, torch.Tensor]:
    """eq. 6: ``skip`` -> odd/even interleaved channels; ``half`` -> first/second half."""
    if mode == "skip":
        return x[:, 0::2], x[:, 1::2]
    return x.chunk(2, dim=1)


def norm_attention(channels: int, heads: int, bias: bool) -> nn.Sequential:
    """Pre-norm MDTA on one branch."""
    return nn.Sequential(LayerNorm2d(channels), ChannelAttention(channels, heads, bias))


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
        frequency_path: str = "faithful",
    ) -> None:
        super().__init__()
        half = channels // 2
        self.split = ablation.split
        self.attention = norm_attention(half, heads, bias)
        if ablation.gated_da:
            self.local = GatedDA(half, gated_expansion, ablation.abg, bias)
        else:  # Table 7 rows a/b: attention on the other half too, i.e. on all channels
            self.local = norm_attention(half, heads, bias)
        if ablation.fusion:
            self.fusion = SpatialFrequencyFusion(ablation.lambda_mode, ablation.lambda_value, frequency_path)
        else:
            self.fusion = ConcatFusion()
        self.fuse_proj = conv1x1(channels, channels, bias)
        self.ffn_norm = LayerNorm2d(channels)
        self.ffn = GDFN(channels, ffn_factor, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        att, gate = split_channels(x, self.split)
        x = x + self.fuse_proj(self.fusion(self.attention(att), self.local(gate)))
        return x + self.ffn(self.ffn_norm(x))
