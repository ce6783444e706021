"""L1 + Fourier-domain L1 loss (paper appendix A.2), computed per sample so it can be split by task.

The FFT term follows MoCE-IR's reading (docs/training.md): ``rfft2`` of prediction and
target, real and imaginary parts stacked, L1 between them, times ``fft_weight`` (0.1 by default).
"""

from __future__ import annotations

import torch


def per_sample_loss(pred: torch.Tensor, target: torch.Tensor, fft_weight: float) -> torch.Tensor:
    """Loss of each sample (shape ``B``): mean |pred - target| + fft_weight * mean |F(pred) - F(target)|.

    Computed in float32: cuFFT has no bf16 kernels and the FFT sum over many pixels needs the range.
    """
    pred, target = pred.float(), target.float()
    spatial = (pred - target).abs().flatten(1).mean(dim=1)
    if fft_weight == 0:
        return spatial
    pred_f = torch.view_as_real(torch.fft.rfft2(pred, norm="backward"))
    target_f = torch.view_as_real(torch.fft.rfft2(target, norm="backward"))
    frequency = (pred_f - target_f).abs().flatten(1).mean(dim=1)
    return spatial + fft_weight * frequency


def task_loss_sums(
    losses: torch.Tensor, tasks: list[str], task_index: dict[str, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-task (sum of loss, sample count) vectors in ``task_index`` order, detached, for all-reducing."""
    ids = torch.tensor([task_index[t] for t in tasks], device=losses.device)
    sums = torch.zeros(len(task_index), device=losses.device, dtype=torch.float64)
    counts = torch.zeros_like(sums)
    sums.index_add_(0, ids, losses.detach().double())
    counts.index_add_(0, ids, torch.ones_like(losses, dtype=torch.float64))
    return sums, counts
