"""L1 + Fourier-domain L1 loss (paper appendix A.2), computed per sample so it can be split by task.

Optionally each sample's loss is weighted by how degraded its input is (:func:`input_error_weights`,
``TrainConfig.input_error_power``; off by default, on in the CPU demo).

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


def input_error_weights(lq: torch.Tensor, gt: torch.Tensor, power: float) -> torch.Tensor:
    """Per-sample loss weights ``(0.1 / (mean |lq - gt| + 0.02)) ** power`` (shape ``B``; all 1 at power 0).

    A sample whose input is barely degraded (a 28 dB blurred crop, mean error ~0.04) weighs more
    than one far from its target (a 9 dB low-light crop, ~0.3): with the plain loss the large global
    corrections dominate the gradient and a small model applies them everywhere (docs/quickstart.md).
    0.1 is a typical input error, so weights stay near 1 on average; 0.02 caps the weight of an
    almost clean input.
    """
    if power == 0:
        return torch.ones(lq.shape[0], device=lq.device)
    error = (lq.float() - gt.float()).abs().flatten(1).mean(dim=1)
    return (0.1 / (error + 0.02)) ** power


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
