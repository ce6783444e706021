"""Parameter and multiply-accumulate (MAC) accounting, per component.

Convention (the paper's Table 11, fvcore-style): one multiply-add = 1 MAC; counted are
convolutions (out_elements x in_channels/groups x k_h x k_w) and the two attention matrix
products of MDTA (2 x heads x d^2 x H x W with d = C/heads). Norms, activations, element-wise
ops and pixel (un)shuffle are not counted (as in fvcore and FlopCounterMode).

FFTs are counted separately (``fft_macs``), by this formula: a real 2-D FFT (rfft2 or irfft2)
of one H x W channel costs N log2 N MACs with N = H x W (radix-2: a complex FFT has
(N/2) log2 N complex multiplies = 2 N log2 N real multiplies; a real transform is half of
that). Algorithm 2 runs two rfft2 and one irfft2 per channel of its C/2-wide inputs.
"""

from __future__ import annotations

import math
from collections import defaultdict

import torch
from torch import nn

from anyir.model.attention import ChannelAttention
from anyir.model.fusion import SpatialFrequencyFusion
from anyir.model.gated_da import GatedDA
from anyir.model.io import unwrap

COMPONENTS = ("attention", "gated_da", "fusion", "ffn", "resampling", "embed_out")


def component_of(name: str) -> str:
    """Which component a parameter or module name belongs to (see ``COMPONENTS``)."""
    parts = name.split(".")
    if parts[0] in ("downs", "ups", "reduces"):
        return "resampling"
    if parts[0] in ("embed", "output"):
        return "embed_out"
    for part in parts:
        if part in ("fusion", "fuse_proj"):
            return "fusion"
        if part in ("ffn", "ffn_norm"):
            return "ffn"
        if part == "attention":
            return "attention"
    return "local"  # GatedDA, or attention when the gated_da ablation is off; resolved by caller


def fft_macs_per_channel(h: int, w: int) -> int:
    """MACs of one real 2-D FFT of an h x w channel: N log2 N (see module docstring)."""
    n = h * w
    return round(n * math.log2(n)) if n > 1 else 0


def _resolve(name: str, model: nn.Module) -> str:
    comp = component_of(name)
    if comp != "local":
        return comp
    path = name.split(".")
    local = model.get_submodule(".".join(path[: path.index("local") + 1]))
    return "gated_da" if isinstance(local, GatedDA) else "attention"


def _count_params(model: nn.Module) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for name, p in model.named_parameters():
        counts[_resolve(name, model)] += p.numel()
    return counts


def _mac_hooks(model: nn.Module, macs: dict[str, int], ffts: dict[str, int]) -> list:
    """Forward hooks that add each module's MACs to its component."""

    def conv_hook(name: str):
        def hook(mod: nn.Conv2d, inp, out) -> None:
            k = mod.kernel_size[0] * mod.kernel_size[1]
            macs[_resolve(name, model)] += out.numel() * (mod.in_channels // mod.groups) * k

        return hook

    def attention_hook(name: str):
        def hook(mod: ChannelAttention, inp, out) -> None:
            b, c, h, w = out.shape
            macs[_resolve(name, model)] += 2 * b * mod.heads * (c // mod.heads) ** 2 * h * w

        return hook

    def fft_hook(name: str):
        def hook(mod: SpatialFrequencyFusion, inp, out) -> None:
            if mod.lambda_mode != "spatial" and mod.path == "faithful":
                b, c, h, w = inp[0].shape
                ffts[_resolve(name, model)] += 3 * b * c * fft_macs_per_channel(h, w)

        return hook

    handles = []
    for name, mod in model.named_modules():
        if isinstance(mod, nn.Conv2d):
            handles.append(mod.register_forward_hook(conv_hook(name)))
        elif isinstance(mod, ChannelAttention):
            handles.append(mod.register_forward_hook(attention_hook(name)))
        elif isinstance(mod, SpatialFrequencyFusion):
            handles.append(mod.register_forward_hook(fft_hook(name)))
    return handles


def count_macs(model: nn.Module, height: int, width: int) -> tuple[dict[str, int], dict[str, int]]:
    """(MACs, FFT MACs) per component for one 1 x 3 x height x width forward pass.

    Runs one inference of ``model`` on a zero image on the model's device (a model built on the
    meta device works too, but meta ops are slower than a CPU forward). The count is the network's,
    not an implementation's: it runs the reference path, where every conv is a module call.
    """
    net = unwrap(model)
    device = next(net.parameters()).device
    macs: dict[str, int] = defaultdict(int)
    ffts: dict[str, int] = defaultdict(int)
    handles = _mac_hooks(net, macs, ffts)
    kernels = net.kernels
    try:
        with torch.no_grad():
            net.set_kernels("reference")(torch.zeros(1, 3, height, width, device=device))
    finally:
        net.set_kernels(kernels)
        for handle in handles:
            handle.remove()
    return macs, ffts


def complexity_report(model: nn.Module, size: int = 224) -> dict:
    """Params, MACs at size x size (key ``macs_<size>``), FFT MACs, and a per-component breakdown."""
    net = unwrap(model)
    params = _count_params(net)
    macs, ffts = count_macs(net, size, size)
    breakdown = {
        comp: {"params": params.get(comp, 0), "macs": macs.get(comp, 0), "fft_macs": ffts.get(comp, 0)}
        for comp in COMPONENTS
    }
    return {
        "variant": net.config.variant,
        "params": sum(params.values()),
        "size": size,
        f"macs_{size}": sum(macs.values()),
        "fft_macs": sum(ffts.values()),
        "breakdown": breakdown,
        "config": net.config.to_dict(),
    }
