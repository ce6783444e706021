"""The AnyIR U-net (Sec. 3.2, Fig. 2a): embed, 4-level encoder/decoder of DABs, refinement, residual.

Layout (Restormer's, which the paper builds on), C = ``config.dim``:
    embed 3x3 conv 3 -> C
    encoder levels 1-3 at C, 2C, 4C; latent at 8C; Downsample between levels
    decoder 3: Upsample(8C) ++ skip3 -> 1x1 8C -> 4C -> DABs at 4C
    decoder 2: Upsample(4C) ++ skip2 -> 1x1 4C -> 2C -> DABs at 2C
    decoder 1: Upsample(2C) ++ skip1 -> 2C (no reduction) -> DABs at 2C
    refinement DABs at 2C, 3x3 conv 2C -> 3, + input (global residual)
Inputs of any size are reflect-padded to a multiple of 8 and cropped back.

Two implementations of the same function share the weights (``kernels``): ``reference`` runs the
modules' plain ``forward`` on B x C x H x W tensors, as the paper's equations read; ``fast`` (the
default) keeps features B x H x W x C between the convolutions and calls each module's
``forward_bhwc`` (1x1 convs as matrix products, fewer passes over memory; see docs/model.md).
Tests hold the two equal (outputs and gradients) for every variant and ablation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from anyir.model.config import AnyIRConfig
from anyir.model.dab import DAB
from anyir.model.kernels import pointwise, pointwise_add
from anyir.model.layers import conv1x1, conv3x3, matrix, to_bchw, to_bhwc
from anyir.model.resample import Downsample, Upsample

MULTIPLE = 8  # three 2x down-samplings
KERNELS = ("fast", "reference")


def pad_to_multiple(x: torch.Tensor, multiple: int = MULTIPLE) -> torch.Tensor:
    """Pad bottom/right to a multiple; reflect where the image is large enough, else replicate."""
    h, w = x.shape[-2:]
    pad_h, pad_w = (-h) % multiple, (-w) % multiple
    if not (pad_h or pad_w):
        return x
    mode = "reflect" if pad_h < h and pad_w < w else "replicate"
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode)


class AnyIR(nn.Module):
    """All-in-one restoration network. forward: B x 3 x H x W in [0, 1] -> same shape (not clamped)."""

    def __init__(self, config: AnyIRConfig, kernels: str = "fast") -> None:
        super().__init__()
        self.config = config
        self.set_kernels(kernels)
        c = config.dim
        self.embed = conv3x3(3, c, config.bias)
        self.encoders = nn.ModuleList(self._stage(c * 2**i, config.blocks[i], config.heads[i]) for i in range(3))
        self.downs = nn.ModuleList(Downsample(c * 2**i, config.bias) for i in range(3))
        self.latent = self._stage(c * 8, config.blocks[3], config.heads[3])
        self.ups = nn.ModuleList(Upsample(c * 2**i, config.up_kernel, config.bias) for i in (3, 2, 1))
        self.reduces = nn.ModuleList(conv1x1(c * 2**i, c * 2 ** (i - 1), config.bias) for i in (3, 2))
        self.decoders = nn.ModuleList(
            self._stage(width, config.blocks[level], config.heads[level])
            for width, level in ((c * 4, 2), (c * 2, 1), (c * 2, 0))
        )
        self.refinement = self._stage(c * 2, config.refinement_blocks, config.heads[0])
        self.output = conv3x3(c * 2, 3, config.bias)

    def _stage(self, width: int, depth: int, heads: int) -> nn.Sequential:
        cfg = self.config
        return nn.Sequential(
            *(
                DAB(width, heads, cfg.ffn_factor, cfg.gated_expansion, cfg.ablation, cfg.bias, cfg.frequency_path)
                for _ in range(depth)
            )
        )

    def set_kernels(self, kernels: str) -> AnyIR:
        """Choose the implementation: ``fast`` (default) or ``reference``; returns self."""
        if kernels not in KERNELS:
            raise ValueError(f"kernels={kernels!r} is invalid: use one of {KERNELS}")
        self.kernels = kernels
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """B x 3 x H x W -> B x 3 x H x W, by the implementation ``self.kernels`` names."""
        return self.forward_reference(x) if self.kernels == "reference" else self.forward_fast(x)

    def forward_reference(self, x: torch.Tensor) -> torch.Tensor:
        """The plain implementation: every module's ``forward`` on B x C x H x W tensors."""
        h, w = x.shape[-2:]
        inp = pad_to_multiple(x)
        feat = self.embed(inp)
        skips = []
        for encoder, down in zip(self.encoders, self.downs, strict=True):
            feat = encoder(feat)
            skips.append(feat)
            feat = down(feat)
        feat = self.latent(feat)
        for i, (up, decoder) in enumerate(zip(self.ups, self.decoders, strict=True)):
            feat = torch.cat([up(feat), skips.pop()], dim=1)
            if i < len(self.reduces):
                feat = self.reduces[i](feat)
            feat = decoder(feat)
        out = self.output(self.refinement(feat)) + inp
        return out[..., :h, :w]

    def forward_fast(self, x: torch.Tensor) -> torch.Tensor:
        """The fast implementation: BHWC features, each module's ``forward_bhwc``; same function."""
        h, w = x.shape[-2:]
        inp = pad_to_multiple(x).contiguous(memory_format=torch.channels_last)
        feat = to_bhwc(self.embed(inp))
        skips = []
        for encoder, down in zip(self.encoders, self.downs, strict=True):
            feat = _stage_bhwc(encoder, feat)
            skips.append(feat)
            feat = down.forward_bhwc(feat)
        feat = _stage_bhwc(self.latent, feat)
        for i, (up, decoder) in enumerate(zip(self.ups, self.decoders, strict=True)):
            upsampled, skip = up.forward_bhwc(feat), skips.pop()
            if i < len(self.reduces):
                feat = _reduce_bhwc(self.reduces[i], upsampled, skip)
            else:
                feat = torch.cat([upsampled, skip], dim=-1)
            feat = _stage_bhwc(decoder, feat)
        out = (self.output(to_bchw(_stage_bhwc(self.refinement, feat))) + inp)[..., :h, :w]
        return out.contiguous() if x.is_contiguous() else out


def _stage_bhwc(stage: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    for block in stage:
        x = block.forward_bhwc(x)
    return x


def _reduce_bhwc(reduce: nn.Conv2d, upsampled: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
    """The 1x1 reduction of concat(upsampled, skip), as two column blocks (no concatenation)."""
    weight, split = matrix(reduce), upsampled.shape[-1]
    return pointwise_add(pointwise(upsampled, weight[:, :split], reduce.bias), skip, weight[:, split:])
