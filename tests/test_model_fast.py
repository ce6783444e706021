"""The fast implementation (default) computes the reference network: outputs and gradients.

The reference path is the plain one (every module's ``forward`` on B x C x H x W, Algorithm 2's
FFTs as written); the fast path keeps features B x H x W x C, folds the attention normalisation and
projection, splits the 1x1 convs by output rows and, for float32 CPU inference, runs oneDNN's fused
kernels. Weights are perturbed away from their initial values so that every term matters.
"""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest
import torch
from torch import nn

from anyir.model import (
    TABLE7_ROWS,
    TABLE8_ROWS,
    TABLE10_ROWS,
    Ablation,
    AnyIR,
    AnyIRConfig,
    create_model,
    kernels,
)
from anyir.model.config import FREQUENCY_PATHS
from anyir.model.resample import pixel_shuffle_bhwc, pixel_unshuffle_bhwc

torch.set_num_threads(1)

ABLATIONS = {f"table7:{k}": v for k, v in TABLE7_ROWS.items()}
ABLATIONS |= {f"table8:{k}": v for k, v in TABLE8_ROWS.items()}
ABLATIONS |= {f"table10:{k}": v for k, v in TABLE10_ROWS.items()}
TOL = {"atol": 2e-5, "rtol": 1e-5}


def assert_close_scaled(actual: torch.Tensor, expected: torch.Tensor, scale: float, msg: str = "") -> None:
    """Equal up to float32 rounding: |diff| <= scale * max|expected| (+ 1e-5 relative).

    Deep variants with perturbed weights reach activations of ~100, where the reference path's
    own float32 rounding (measured against float64) is ~1e-4: tolerances scale with magnitude.
    """
    atol = scale * expected.abs().max().item() + 1e-7
    torch.testing.assert_close(actual, expected, atol=atol, rtol=1e-5, msg=msg or None)


def perturbed(model: AnyIR, seed: int = 0) -> AnyIR:
    """The model with every parameter moved off its initial value (tau, lambda, norms included)."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


def pair(config: AnyIRConfig) -> tuple[AnyIR, AnyIR]:
    """(fast, reference) models with identical weights; the reference runs the FFTs as written."""
    fast = perturbed(AnyIR(config))
    reference = AnyIR(replace(config, frequency_path="faithful"), kernels="reference")
    reference.load_state_dict(fast.state_dict())
    return fast, reference


def assert_same_function(fast: AnyIR, reference: AnyIR, x: torch.Tensor) -> None:
    """Equal outputs in inference (fused kernels where available) and equal training gradients."""
    fast.eval()
    reference.eval()
    with torch.no_grad():
        assert_close_scaled(fast(x), reference(x), 3e-6)
    fast.train()
    reference.train()
    target = torch.rand_like(x)
    grads = []
    for model in (fast, reference):
        model.zero_grad(set_to_none=True)
        (model(x) - target).abs().mean().backward()
        grads.append({n: p.grad for n, p in model.named_parameters()})
    assert grads[0].keys() == grads[1].keys()
    for name in grads[1]:
        assert_close_scaled(grads[0][name], grads[1][name], 2e-5, msg=name)


@pytest.mark.parametrize("variant", ["pico", "nano", "tiny", "small"])
def test_every_variant_fast_equals_reference(variant):
    fast, reference = pair(create_model(variant).config)
    assert_same_function(fast, reference, torch.rand(1, 3, 24, 16))


@pytest.mark.parametrize("name", list(ABLATIONS))
def test_every_ablation_fast_equals_reference(name):
    fast, reference = pair(create_model("pico", ABLATIONS[name]).config)
    assert_same_function(fast, reference, torch.rand(2, 3, 20, 28))


@pytest.mark.parametrize(
    "overrides",
    [{"bias": True}, {"up_kernel": 1}, {"frequency_path": "faithful"}, {"heads": (2, 2, 4, 4)}],
    ids=["bias", "up_kernel_1", "faithful", "heads_2"],
)
def test_config_options_fast_equals_reference(overrides):
    fast, reference = pair(replace(create_model("pico").config, **overrides))
    assert_same_function(fast, reference, torch.rand(2, 3, 17, 23))


@pytest.mark.parametrize("path", FREQUENCY_PATHS)
def test_frequency_paths_agree_on_the_fast_kernels(path):
    """The faithful FFT branch and the fast sum give the same network (Algorithm 2 is linear)."""
    fast, _ = pair(create_model("pico", Ablation(lambda_mode="frequency")).config)
    other = AnyIR(replace(fast.config, frequency_path=path)).eval()
    other.load_state_dict(fast.state_dict())
    x = torch.rand(1, 3, 32, 24)
    with torch.no_grad():
        torch.testing.assert_close(other(x), fast.eval()(x), **TOL)


def _ops_run(model: AnyIR, x: torch.Tensor) -> tuple[torch.Tensor, set[str]]:
    from torch.profiler import ProfilerActivity, profile

    with torch.no_grad(), profile(activities=[ProfilerActivity.CPU]) as prof:
        out = model(x)
    return out, {event.key for event in prof.key_averages()}


@pytest.mark.skipif(not kernels.ONEDNN, reason="this torch build has no oneDNN fused CPU kernels")
def test_onednn_fused_inference_equals_plain_autograd_ops():
    model = perturbed(create_model("nano")).eval()
    x = torch.rand(2, 3, 72, 64)  # level 1 has 9216 rows: above kernels.FUSED_LINEAR_MIN_ROWS
    try:
        kernels.set_onednn(False)
        plain, plain_ops = _ops_run(model, x)
        kernels.set_onednn(True)
        fused, fused_ops = _ops_run(model, x)
    finally:
        kernels.set_onednn(True)
    torch.testing.assert_close(fused, plain, **TOL)
    assert "mkldnn::_linear_pointwise" in fused_ops and "mkldnn::_convolution_pointwise" in fused_ops
    assert not any(op.startswith("mkldnn::") for op in plain_ops)


def test_fused_kernels_only_without_gradients():
    x, w = torch.rand(1, 4, 4, 8), nn.Parameter(torch.rand(8, 8))
    assert not kernels.fused(x, w)  # grad mode on and a parameter: autograd ops
    with torch.no_grad():
        assert kernels.fused(x, w) == kernels.onednn_enabled()
        assert not kernels.fused(x.double(), w.double())
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert not kernels.fused(x, w)


def test_channels_last_input_odd_sizes_and_output_layout():
    fast, reference = pair(create_model("pico").config)
    fast.eval()
    reference.eval()
    x = torch.rand(2, 3, 19, 13)
    with torch.no_grad():
        expected = reference(x)
        out = fast(x)
        out_cl = fast(x.to(memory_format=torch.channels_last))
    assert out.is_contiguous() and out.shape == x.shape
    torch.testing.assert_close(out, expected, **TOL)
    torch.testing.assert_close(out_cl, expected, **TOL)


def test_bf16_autocast_runs_the_fast_path():
    model, x = perturbed(create_model("pico")).eval(), torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        ref = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(x)
    assert low.shape == ref.shape and torch.isfinite(low).all()
    assert (low.float() - ref).abs().mean() < 0.05


def test_pixel_shuffles_match_torch():
    x = torch.rand(2, 8, 6, 10)
    bhwc = x.permute(0, 2, 3, 1)
    torch.testing.assert_close(pixel_unshuffle_bhwc(bhwc), nn.PixelUnshuffle(2)(x).permute(0, 2, 3, 1), rtol=0, atol=0)
    torch.testing.assert_close(pixel_shuffle_bhwc(bhwc), nn.PixelShuffle(2)(x).permute(0, 2, 3, 1), rtol=0, atol=0)


def test_defaults_are_the_fast_paths_and_the_switches_work():
    model = create_model("tiny")
    assert model.config.frequency_path == "fast" and model.kernels == "fast"
    assert AnyIRConfig().frequency_path == "fast"
    slow = create_model("pico", frequency_path="faithful", kernels="reference")
    assert slow.config.frequency_path == "faithful" and slow.kernels == "reference"
    with pytest.raises(ValueError, match="kernels"):
        model.set_kernels("turbo")


def test_deep_copy_and_state_dict_keys_unchanged_by_kernels():
    fast = create_model("pico")
    reference = copy.deepcopy(fast).set_kernels("reference")
    assert list(fast.state_dict()) == list(reference.state_dict())
    assert fast.kernels == "fast"
