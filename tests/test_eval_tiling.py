"""Tiled inference: coverage, exact blending for a pointwise model, close agreement for AnyIR pico."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from anyir.eval.tiling import blend_window, run_model, tile_starts


@pytest.mark.parametrize(("size", "tile", "overlap"), [(64, 32, 8), (100, 48, 16), (40, 64, 8), (97, 32, 0)])
def test_tiles_cover_the_image_with_the_requested_overlap(size, tile, overlap):
    starts = tile_starts(size, tile, overlap)
    covered = torch.zeros(size, dtype=torch.bool)
    for s in starts:
        covered[s:s + tile] = True
    assert covered.all()
    assert starts[0] == 0 and starts[-1] + min(tile, size) == size
    assert all(b - a <= tile - overlap for a, b in zip(starts, starts[1:], strict=False))


def test_blend_window_is_positive_with_linear_ramps():
    w = blend_window(32, 32, overlap=8)[0, 0]
    assert w.min() > 0 and w.max() == 1.0
    assert torch.allclose(w[16, :9], torch.arange(1, 10) / 9.0)


class Pointwise(nn.Module):
    """A per-pixel model: tiling must reproduce it exactly, whatever the blending weights."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(3 * x - 1) * 0.9 + x[:, [2, 0, 1]] * 0.1


def test_tiled_equals_untiled_for_a_pointwise_model():
    x = torch.rand(1, 3, 70, 90)
    whole = run_model(Pointwise(), x)
    tiled = run_model(Pointwise(), x, tile=32, overlap=8)
    assert torch.allclose(whole, tiled, atol=1e-6)


def test_tiled_and_untiled_pico_agree_closely():
    from anyir.model import create_model

    torch.manual_seed(0)
    model = create_model("pico").eval()
    x = torch.rand(1, 3, 96, 96)
    whole, tiled = run_model(model, x), run_model(model, x, tile=64, overlap=24)
    assert whole.shape == tiled.shape == x.shape
    mse = torch.mean((whole.clamp(0, 1) - tiled.clamp(0, 1)) ** 2).item()
    psnr_between = 10 * torch.log10(torch.tensor(1.0 / max(mse, 1e-12))).item()
    assert psnr_between > 30.0, f"tiled vs untiled differ: {psnr_between:.1f} dB"


def test_bad_tiling_arguments_name_the_value():
    x = torch.rand(1, 3, 64, 64)
    with pytest.raises(ValueError, match="overlap must be in"):
        run_model(Pointwise(), x, tile=32, overlap=16)
    with pytest.raises(ValueError, match="tile must be >= 16"):
        run_model(Pointwise(), x, tile=8, overlap=2)
