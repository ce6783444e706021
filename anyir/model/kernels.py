"""BHWC kernels of the fast path: 1x1 convs, depthwise convs and their fused epilogues.

Features are B x H x W x C (contiguous), so a 1x1 convolution is one matrix product over the
last axis and a depthwise conv runs on the channels-last view of the same memory. Each function
computes a plain formula (its docstring); two implementations give it:

- autograd ops (``F.linear``, ``torch.addmm``, ``F.conv2d``, ``F.gelu``): used whenever a gradient
  may be needed, on every device, under autocast and under ``torch.compile``;
- oneDNN's fused inference ops (``torch.ops.mkldnn._linear_pointwise`` / ``_convolution_pointwise``,
  the ones inductor emits for CPU): used for float32 CPU inference (no gradient). They run the
  GELU, the multiply or the residual add as the convolution's epilogue, so the result is written
  once instead of read and written again by a separate element-wise op. Same maths; tests hold
  both implementations equal to the reference path.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

_MKLDNN = torch.ops.mkldnn
ONEDNN = (
    torch.backends.mkldnn.is_available()
    and hasattr(_MKLDNN, "_linear_pointwise")
    and hasattr(_MKLDNN, "_convolution_pointwise")
)
_ENABLED = {"onednn": ONEDNN}
# oneDNN's fused ops cost ~0.1 ms more per call than MKL's matrix product; below this many rows
# (pixels x batch) the product itself is too short for the saved memory pass to pay for that.
FUSED_LINEAR_MIN_ROWS = 8192


def set_onednn(enabled: bool) -> None:
    """Allow (default where available) or forbid the fused oneDNN inference kernels (for tests)."""
    _ENABLED["onednn"] = ONEDNN and enabled


def onednn_enabled() -> bool:
    """Whether the fused oneDNN inference kernels may be used in this process."""
    return _ENABLED["onednn"]


def fused(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """True when the fused oneDNN kernels apply: float32 CPU inference outside compile/autocast."""
    if not _ENABLED["onednn"] or x.device.type != "cpu" or x.dtype != torch.float32:
        return False
    if torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad):
        return False
    return not torch.compiler.is_compiling() and not torch.is_autocast_enabled("cpu")


def _fused_linear(x: torch.Tensor, weight: torch.Tensor) -> bool:
    return x.numel() >= FUSED_LINEAR_MIN_ROWS * x.shape[-1] and fused(x, weight)


def pointwise(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, gelu: bool = False) -> torch.Tensor:
    """``x @ weight.T + bias`` over the last axis (a 1x1 conv), then GELU if ``gelu``."""
    if _fused_linear(x, weight):
        # a strided weight (a column block) sends oneDNN to a reference kernel hundreds of times slower: copy it
        return _MKLDNN._linear_pointwise(x, weight.contiguous(), bias, "gelu" if gelu else "none", [],
                                         "none" if gelu else "")
    out = F.linear(x, weight, bias)
    return F.gelu(out) if gelu else out


def pointwise_add(
    residual: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None
) -> torch.Tensor:
    """``residual + x @ weight.T + bias``: the residual enters the matrix product (addmm / epilogue)."""
    if _fused_linear(x, weight) and residual.is_contiguous():
        return _MKLDNN._linear_pointwise.binary(x, residual, weight.contiguous(), bias, "add")
    out = torch.addmm(residual.reshape(-1, weight.shape[0]), x.reshape(-1, weight.shape[1]), weight.t())
    out = out.view(residual.shape)
    return out if bias is None else out + bias


def _conv_args(weight: torch.Tensor) -> tuple[list[int], list[int], list[int], int]:
    pad = weight.shape[-1] // 2
    return [pad, pad], [1, 1], [1, 1], weight.shape[0]


def depthwise(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, gelu: bool = False) -> torch.Tensor:
    """kxk depthwise conv ('same' padding) of a BHWC tensor, then GELU if ``gelu``; BHWC out."""
    inp = x.permute(0, 3, 1, 2)
    if fused(x, weight):
        out = _MKLDNN._convolution_pointwise(inp, weight, bias, *_conv_args(weight), "gelu" if gelu else "none", [],
                                             "none" if gelu else "")
        return out.permute(0, 2, 3, 1)
    out = F.conv2d(inp, weight, bias, padding=weight.shape[-1] // 2, groups=weight.shape[0]).permute(0, 2, 3, 1)
    return F.gelu(out) if gelu else out


def depthwise_mul(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, other: torch.Tensor
) -> torch.Tensor:
    """``depthwise(x) * other`` for BHWC tensors (the multiply as the conv's epilogue when fused)."""
    if fused(x, weight) and other.is_contiguous():
        inp, oth = x.permute(0, 3, 1, 2), other.permute(0, 3, 1, 2)
        out = _MKLDNN._convolution_pointwise.binary(inp, oth, weight, bias, *_conv_args(weight), "mul", None, None, [], None)
        return out.permute(0, 2, 3, 1)
    return depthwise(x, weight, bias) * other


def batched_pointwise(x: torch.Tensor, weight: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
    """Per-sample 1x1 conv: ``residual + x[b] @ weight[b].T`` for B x N x C_in ``x``, B x C_out x C_in ``weight``."""
    if x.shape[0] == 1:
        if residual is None:
            return pointwise(x, weight[0])
        return pointwise_add(residual, x, weight[0])
    if residual is None:
        return torch.bmm(x, weight.transpose(1, 2))
    return torch.baddbmm(residual, x, weight.transpose(1, 2))
