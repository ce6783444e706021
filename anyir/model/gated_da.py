"""GatedDA: gated degradation adaptation (Algorithm 1), the DAB's local branch.

Reading of Algorithm 1 used here (paper text, Sec. 3.4):
- hidden = ``expansion`` x C (C = the branch width, half the block width); split into
  gamma, beta, alpha with fractions ``abg`` (paper: alpha, beta, gamma = 1/4, 1/4, 1/2).
- The temperature statistics (per-channel mean/std of the normalised input) have C channels,
  alpha has fewer; Delta is average-pooled along channels to alpha's width (parameter-free,
  defined for every Table 8 ratio). tau is a learnable per-channel vector initialised to 1.
- Step 9: W_gate (1x1) maps concat(beta, alpha') back to C channels and is gated by GELU(gamma)
  (the prose and Fig. 3 say GELU; Algorithm 1 writes sigma). gamma therefore has C channels
  (hidden/2 at expansion 2) or is absent (Table 8's gamma = 0: no gate).
- Step 10: residual to the block input, then W_proj (1x1).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from anyir.model.layers import conv1x1, dwconv3x3
from anyir.model.norm import LayerNorm2d

STD_EPS = 1e-6  # delta in Algorithm 1, step 3


def split_widths(hidden: int, abg: tuple[float, float, float]) -> tuple[int, int, int]:
    """Channel counts (alpha, beta, gamma) of a hidden width; gamma takes the rounding rest."""
    alpha = round(abg[0] * hidden)
    beta = round(abg[1] * hidden)
    return alpha, beta, hidden - alpha - beta


class GatedDA(nn.Module):
    """Algorithm 1: norm, temperature from channel statistics, expand, split, gate, residual, project."""

    def __init__(
        self, channels: int, expansion: float, abg: tuple[float, float, float], bias: bool = False
    ) -> None:
        super().__init__()
        hidden = round(expansion * channels)
        self.widths = split_widths(hidden, abg)
        n_alpha, n_beta, n_gamma = self.widths
        if n_gamma not in (0, channels):
            raise ValueError(
                f"GatedDA gamma width {n_gamma} must equal the branch width {channels} (it gates "
                f"W_gate's output) or be 0; got expansion={expansion}, abg={abg}"
            )
        self.norm = LayerNorm2d(channels)
        self.expand = conv1x1(channels, hidden, bias)
        self.depthwise = dwconv3x3(n_alpha, bias) if n_alpha else None
        self.tau = nn.Parameter(torch.ones(n_alpha)) if n_alpha else None
        self.gate = conv1x1(n_alpha + n_beta, channels, bias)
        self.proj = conv1x1(channels, channels, bias)

    def temperature(self, f: torch.Tensor) -> torch.Tensor:
        """tau_adj = tau * sigmoid(mean + std) per channel (steps 2-5), pooled to alpha's width."""
        var, mean = torch.var_mean(f, dim=(2, 3), correction=0)
        delta = torch.sigmoid(mean + torch.sqrt(var + STD_EPS))
        delta = F.adaptive_avg_pool1d(delta.unsqueeze(1), self.widths[0]).squeeze(1)
        return (self.tau * delta)[:, :, None, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.norm(x)
        n_alpha, n_beta, n_gamma = self.widths
        gamma, beta, alpha = torch.split(self.expand(f), [n_gamma, n_beta, n_alpha], dim=1)
        parts = [beta]
        if self.depthwise is not None:
            parts.append(self.depthwise(alpha) * (1 + self.temperature(f)))
        mixed = self.gate(torch.cat(parts, dim=1) if len(parts) > 1 else parts[0])
        if n_gamma:
            mixed = F.gelu(gamma) * mixed
        return self.proj(mixed + x)
