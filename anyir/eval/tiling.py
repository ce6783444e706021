"""Whole-image or tiled inference with blended overlaps.

Large images do not fit a restoration network's memory (Restormer OOMs above ~4 MP;
PromptIR's demo added tiling for this). With ``tile`` set, the image is cut into
``tile x tile`` windows that overlap by ``overlap`` pixels; only one window is on the device
at a time, and the outputs are accumulated on the CPU with weights that ramp down linearly
inside the overlaps, so seams are blended instead of visible.
"""

from __future__ import annotations

import torch
from torch import nn


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of windows of length ``tile`` covering ``[0, size)`` with >= ``overlap`` overlap."""
    if tile >= size:
        return [0]
    stride = tile - overlap
    starts = list(range(0, size - tile, stride))
    starts.append(size - tile)  # the last window sits flush with the border
    return starts


def blend_window(height: int, width: int, overlap: int) -> torch.Tensor:
    """1x1xHxW weights: 1 in the middle, a linear ramp over ``overlap`` pixels at each edge.

    Every weight stays positive, so dividing by the summed weights is exact at image borders.
    """

    def ramp(n: int) -> torch.Tensor:
        idx = torch.arange(n, dtype=torch.float32)
        edge = torch.minimum(idx + 1, n - idx) / (overlap + 1)
        return edge.clamp(max=1.0)

    return (ramp(height)[:, None] * ramp(width)[None, :])[None, None]


def _check_tiling(tile: int, overlap: int) -> None:
    if tile < 16:
        raise ValueError(f"tile must be >= 16 pixels, got {tile}")
    if not 0 <= overlap < tile // 2:
        raise ValueError(f"overlap must be in [0, tile/2) = [0, {tile // 2}), got {overlap} (tile={tile})")


@torch.no_grad()
def run_model(model: nn.Module, image: torch.Tensor, tile: int | None = None, overlap: int = 32,
              device: str | torch.device = "cpu") -> torch.Tensor:
    """Restore a 1x3xHxW float image in [0, 1]; return 1x3xHxW float on the CPU (not clamped).

    ``tile=None`` (or a tile at least as large as the image) runs the whole image at once.
    """
    if image.ndim != 4 or image.shape[0] != 1:
        raise ValueError(f"run_model expects a 1xCxHxW tensor, got shape {tuple(image.shape)}")
    _, _, height, width = image.shape
    if tile is None or (tile >= height and tile >= width):
        return model(image.to(device)).float().cpu()
    _check_tiling(tile, overlap)
    out = torch.zeros_like(image, dtype=torch.float32)
    weight_sum = torch.zeros((1, 1, height, width), dtype=torch.float32)
    for top in tile_starts(height, tile, overlap):
        for left in tile_starts(width, tile, overlap):
            h, w = min(tile, height), min(tile, width)
            patch = image[:, :, top:top + h, left:left + w].to(device)
            weight = blend_window(h, w, overlap)
            out[:, :, top:top + h, left:left + w] += model(patch).float().cpu() * weight
            weight_sum[:, :, top:top + h, left:left + w] += weight
    return out / weight_sum
