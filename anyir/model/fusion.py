"""Spatial-frequency fusion of the attention and GatedDA branches (Algorithm 2).

The frequency branch as written, ``irfft2(rfft2(a) + rfft2(g))``, is linear: it equals
``a + g`` up to float rounding. ``path="faithful"`` runs the FFTs as described; ``path="fast"``
(the default) computes the identical sum. Weights are the same for both, so a checkpoint can
switch paths freely. The FFTs run in float32 even under bf16 autocast (CPU FFTs do not take bf16).

``forward`` is the reference (Algorithm 2 literally, B x C x H x W, concatenated output);
``halves_bhwc`` returns the two halves of F_fuse for BHWC inputs, so the DAB can feed them to
W_fuse's two column blocks without writing the concatenation. With the fast frequency path the
halves are ``a + lerp(g, sigmoid(g), lambda)`` and ``g + lerp(a, sigmoid(a), lambda)``:
lambda (a + sigmoid(g)) + (1 - lambda)(a + g), rearranged.
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


def frequency_sum(
    att: torch.Tensor, gate: torch.Tensor, path: str = "faithful", dims: tuple[int, int] = (-2, -1)
) -> torch.Tensor:
    """``irfft2(rfft2(att) + rfft2(gate))`` over the spatial ``dims`` (Alg. 2 steps 10-14); ``fast``: the sum."""
    if path == "fast":
        return att + gate
    dtype, size = att.dtype, (att.shape[dims[0]], att.shape[dims[1]])
    with _no_autocast(att.device.type):
        spectrum = torch.fft.rfft2(att.float(), dim=dims) + torch.fft.rfft2(gate.float(), dim=dims)
        return torch.fft.irfft2(spectrum, s=size, dim=dims).to(dtype)


def frequency_fusion(att: torch.Tensor, gate: torch.Tensor, path: str = "faithful") -> torch.Tensor:
    """The frequency branch repeated to 2x channels (Alg. 2 step 15), B x C x H x W."""
    return frequency_sum(att, gate, path).repeat(1, 2, 1, 1)


class SpatialFrequencyFusion(nn.Module):
    """F_fuse = lambda * spatial + (1 - lambda) * frequency; lambda per Table 10's modes."""

    def __init__(self, lambda_mode: str = "learnable", lambda_value: float = 0.5, path: str = "fast"):
        super().__init__()
        self.lambda_mode = lambda_mode
        self.path = path
        self.weight = nn.Parameter(torch.tensor(lambda_value)) if lambda_mode == "learnable" else None
        self.register_buffer("fixed", torch.tensor(lambda_value), persistent=False)

    def _lambda(self) -> torch.Tensor:
        return self.weight if self.weight is not None else self.fixed

    def forward(self, att: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        """Reference path: Algorithm 2 as written, B x C x H x W inputs, 2C-channel output."""
        if self.lambda_mode == "spatial":
            return spatial_fusion(att, gate)
        freq = frequency_fusion(att, gate, self.path)
        if self.lambda_mode == "frequency":
            return freq
        lam = self._lambda()
        return lam * spatial_fusion(att, gate) + (1 - lam) * freq

    def halves_bhwc(self, att: torch.Tensor, gate: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Fast path: the two channel halves of F_fuse for BHWC inputs; (f, None) when both are f."""
        if self.lambda_mode == "spatial":
            return att + torch.sigmoid(gate), gate + torch.sigmoid(att)
        if self.path == "fast" and self.lambda_mode != "frequency":
            lam = self._lambda()
            return att + torch.lerp(gate, torch.sigmoid(gate), lam), gate + torch.lerp(att, torch.sigmoid(att), lam)
        freq = frequency_sum(att, gate, self.path, dims=(1, 2))
        if self.lambda_mode == "frequency":
            return freq, None
        lam = self._lambda()
        return torch.lerp(freq, att + torch.sigmoid(gate), lam), torch.lerp(freq, gate + torch.sigmoid(att), lam)


class ConcatFusion(nn.Module):
    """Fusion switched off (Table 7 rows a-d): the branches are concatenated."""

    def forward(self, att: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        """Reference path: B x C x H x W inputs, 2C-channel output."""
        return torch.cat([att, gate], dim=1)

    def halves_bhwc(self, att: torch.Tensor, gate: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Fast path: the halves are the branches themselves."""
        return att, gate
