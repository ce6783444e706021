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

``forward`` is the reference; ``forward_bhwc`` computes the same function on BHWC features with
fewer passes over memory: gamma and alpha come from their own rows of ``W_expand`` (contiguous
results, no split copies); beta's two 1x1 convs are one (W_gate[:, beta] W_expand[beta]); the
temperature scales alpha' through W_gate's alpha columns (W_gate [beta, alpha * s] =
W_gate[:, beta] beta + (W_gate[:, alpha] * s) alpha, per sample), so neither the scaled alpha nor
the concatenation is written; the channel statistics are the one-pass mean and mean of squares;
gate and residual are one ``addcmul``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from anyir.model.kernels import batched_pointwise, depthwise, pointwise
from anyir.model.layers import conv1x1, dwconv3x3, matrix, rows
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

    def _tau_adj(self, mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
        """tau * sigmoid(mean + std) (steps 2-5) from B x C statistics, pooled to alpha's width."""
        delta = torch.sigmoid(mean + torch.sqrt(var + STD_EPS))
        return self.tau * F.adaptive_avg_pool1d(delta.unsqueeze(1), self.widths[0]).squeeze(1)

    def temperature(self, f: torch.Tensor) -> torch.Tensor:
        """tau_adj per channel of a B x C x H x W input, as B x alpha x 1 x 1."""
        var, mean = torch.var_mean(f, dim=(2, 3), correction=0)
        return self._tau_adj(mean, var)[:, :, None, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reference path: B x C x H x W in and out."""
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

    def forward_bhwc(self, x: torch.Tensor) -> torch.Tensor:
        """Fast path: B x H x W x C in and out; equal to ``forward`` up to float rounding."""
        n_alpha, n_beta, n_gamma = self.widths
        f = self.norm.forward_bhwc(x)
        gate_w = matrix(self.gate)  # C x (beta + alpha) columns
        mixed = None
        if n_beta:  # W_gate[:, beta] (W_beta f + b) = (W_gate[:, beta] W_beta) f + W_gate[:, beta] b: one product
            beta_w, beta_b = rows(self.expand, n_gamma, n_gamma + n_beta)
            bias = self.gate.bias
            if beta_b is not None:
                bias = gate_w[:, :n_beta] @ beta_b + (0 if bias is None else bias)
            mixed = pointwise(f, gate_w[:, :n_beta] @ beta_w, bias)
        if self.depthwise is not None:
            mixed = self._add_alpha(f, mixed, gate_w[:, n_beta:])
        if n_gamma:
            mixed = torch.addcmul(x, pointwise(f, *rows(self.expand, 0, n_gamma), gelu=True), mixed)
        else:
            mixed = mixed + x
        return pointwise(mixed, *rows(self.proj))

    def _add_alpha(self, f: torch.Tensor, mixed: torch.Tensor | None, alpha_w: torch.Tensor) -> torch.Tensor:
        """``mixed`` + W_gate[:, alpha] (alpha' * (1 + tau_adj)), the scale folded into per-sample weights."""
        b, h, w, c = f.shape
        alpha = pointwise(f, *rows(self.expand, self.widths[2] + self.widths[1]))
        alpha = depthwise(alpha, *rows(self.depthwise)).reshape(b, h * w, -1)
        pixels = f.reshape(b, h * w, c)
        mean = pixels.mean(1)
        var = (pixels.square().mean(1) - mean.square()).clamp_min(0)
        weight = alpha_w * (1 + self._tau_adj(mean, var))[:, None, :]  # B x C x alpha
        if mixed is None:
            out = batched_pointwise(alpha, weight)
            out = out if self.gate.bias is None else out + self.gate.bias
        else:
            out = batched_pointwise(alpha, weight, residual=mixed.reshape(b, h * w, c))
        return out.view(b, h, w, c)
