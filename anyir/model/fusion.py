"""Spatial-frequency fusion of the attention and GatedDA branches (Algorithm 2).

The frequency branch as written, ``irfft2(rfft2(a) + rfft2(g))``, is linear: it equals
``a + g`` up to float rounding. ``path="faithful"`` runs the FFTs as described (the default,
so the network is the paper's); ``path="fast"`` computes the identical sum. Weights are the same
for both, so a checkpoint can switch paths freely. The FFTs run in float32 even under bf16
autocast (CPU FFTs do not take bf16).
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn


def _no_autocast(device_type: str) -> contextlib.AbstractContextManager:
    """Autocast off (FFTs want float32); a no-op on devices autocast does not know (meta)."""
    if device_type in ("cpu", "cuda"):
        return torch.autocast(device_type, enabled=False)
    return contextlib.nullcontext()


def spatial_fusion(att: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
    """Cross-sigmoid enhancement, concatenated along channels (Alg. 2 steps 5-9)."""
    return torch.cat([att + torch.sigmoid(gate), gate + torch.sigmoid(att)], dim=1)


def frequency_fusion(
    att: torch.Tensor, gate: torch.Tensor, path: str = "faithful", repeat: bool = True
) -> torch.Tensor:
    """Sum in the rfft2 domain, back to pixels, repeated to 2x channels (Alg. 2 steps 10-15)."""
    if path == "fast":
        fused = att + gate
    else:
        dtype, size = att.dtype, att.shape[-2:]
        with _no_autocast(att.device.type):
            spectrum = torch.fft.rfft2(att.float()) + torch.fft.rfft2(gate.float())
            fused = torch.fft.irfft2(spectrum, s=size).to(dtype)
    return fused.repeat(1, 2, 1, 1) if repeat else fused


class SpatialFrequencyFusion(nn.Module):
    """F_fuse = lambda * spatial + (1 - lambda) * frequency; lambda per Table 10's modes."""

    def __init__(self, lambda_mode: str = "learnable", lambda_value: float = 0.5, path: str = "faithful"):
        super().__init__()
        self.lambda_mode = lambda_mode
        self.path = path
        self.weight = nn.Parameter(torch.tensor(lambda_value)) if lambda_mode == "learnable" else None
        self.register_buffer("fixed", torch.tensor(lambda_value), persistent=False)

    def forward(self, att: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        if self.lambda_mode == "spatial":
            return spatial_fusion(att, gate)
        if self.lambda_mode == "frequency":
            return frequency_fusion(att, gate, self.path)
        lam = self.weight if self.weight is not None else self.fixed
        # lambda * [s1, s2] + (1 - lambda) * [f, f], computed per half with one fused lerp each
        # instead of materialising the repeat (fewer passes over memory; same maths).
        freq = frequency_fusion(att, gate, self.path, repeat=False)
        return torch.cat(
            [torch.lerp(freq, att + torch.sigmoid(gate), lam), torch.lerp(freq, gate + torch.sigmoid(att), lam)],
            dim=1,
        )


class ConcatFusion(nn.Module):
    """Fusion switched off (Table 7 rows a-d): the branches are concatenated."""

    def forward(self, att: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        return torch.cat([att, gate], dim=1)
