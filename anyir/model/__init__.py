"""anyir.model — the AnyIR network (Ren et al., "AnyIR"), written from the paper's text.

Files, bottom-up: ``norm`` (channel LayerNorm), ``layers`` (conv helpers), ``kernels`` (the fast
path's BHWC ops), ``attention`` (MDTA), ``gated_da`` (Algorithm 1), ``fusion`` (Algorithm 2),
``ffn`` (GDFN), ``resample``, ``dab`` (the block), ``net`` (U-net), ``registry`` (named
variants), ``io`` (safetensors), ``complexity`` (params/MACs). ``config`` holds ``AnyIRConfig`` and the ``Ablation`` switches.

Variants: ``tiny`` and ``small`` (paper, Table 11); ``nano`` (NON-PAPER demo: dim 12,
[1,1,1,2], 1 refinement block, 0.49 M params, trains on a CPU in minutes) and ``pico``
(NON-PAPER test size: dim 8, [1,1,1,1], 1 refinement block, 0.18 M params, every component).

Readings of the paper (where the text is ambiguous), chosen to match Table 11
------------------------------------------------------------------------------
- U-net: Restormer's layout, which the paper builds on: 3x3 embed, levels at C/2C/4C/8C with
  heads [1,2,4,8]; 3x3-conv + pixel-(un)shuffle resampling; 1x1 reductions after the skip
  concatenation at decoder levels 3 and 2; decoder level 1 and the refinement blocks at 2C
  (no reduction); 3x3 output conv and a global residual. No conv biases.
- DAB: skip-split (eq. 6); the attention half goes through LayerNorm + MDTA (learnable per-head
  temperature in place of eq. 7's 1/sqrt(d)); the other half through GatedDA; Algorithm 2; a 1x1
  ``W_fuse`` and the residual to the block input (eq. 9); LayerNorm + GDFN (factor 2) + residual (eq. 8).
- GatedDA: hidden = 2 x (C/2); (alpha, beta, gamma) = (hidden/4, hidden/4, hidden/2); ``W_gate``
  maps concat(beta, alpha') (C/2 channels) to C/2 and is gated by GELU(gamma) (the prose and
  Fig. 3 say GELU); ``W_proj`` is kept. The temperature statistics have C/2 channels, alpha has
  C/4: Delta is average-pooled along channels to alpha's width; tau is a learnable vector (init 1).
- Fusion: lambda is one learnable scalar per block (init 0.5, unconstrained); Repeat places the
  frequency output twice ([f, f]) to match the spatial concat [att + sig(gate), gate + sig(att)].

Resulting sizes (``anyir model info``; MACs at 1x3x224x224, one multiply-add = 1, FFTs apart):
    tiny : 6,292,855 params (Table 11: 5.74 M, +9.6%), 26.08 GMAC (26 G, +0.3%), FFT 0.78 GMAC
    small: 9,230,560 params (Table 11: 8.51 M, +8.5%), 38.92 GMAC (39 G, -0.2%), FFT 1.06 GMAC
Tiny's breakdown: GDFN 3.34 M / 14.97 GMAC (53% / 57%), resampling 1.29 M / 2.81 G, attention
0.59 M / 3.54 G, GatedDA 0.55 M / 2.36 G, fusion (W_fuse + lambda) 0.53 M / 2.28 G.
Other readings measured (tiny params / GMAC): 3x3 upsampling convs replaced by 1x1
(``up_kernel=1``) 5.24 M / 24.19 (small 7.85 M / 36.46: MACs off by 7%); conv biases on
6.35 M / 26.08; without ``W_fuse`` 5.76 M / 23.80; decoder level 1 + refinement at C 6.14 M / 17.76;
GatedDA hidden 4 x (C/2) 6.70 M / 27.87. The base reading is the only one that keeps MACs
within 1% for both variants. The remaining parameter excess (0.55 M tiny, 0.72 M small)
grows as ~700 C^2 for both, independent of depth, so it is not a per-block term; the only
depth-independent C^2 terms are the resampling convs (1646 C^2 here), which suggests the
paper's resamplers are lighter than Restormer's — no reading the text supports pins it down.

Frequency branch: ``irfft2(rfft2(a) + rfft2(g)) == a + g`` (the FFT is linear), so Algorithm 2's
frequency branch adds nothing a spatial sum would not. ``frequency_path="fast"`` (default) computes
the identical sum; ``frequency_path="faithful"`` (``create_model(v, frequency_path="faithful")``)
runs the FFTs as written, and only then are FFT MACs counted. Weights are the same for both, so a
checkpoint runs either way (``io.load_model(..., frequency_path=...)``).

Two implementations of the same function (``AnyIR(kernels=...)``, ``set_kernels``): ``reference``
runs each module's plain ``forward`` on B x C x H x W tensors; ``fast`` (default, also in training)
keeps features B x H x W x C and calls each module's ``forward_bhwc`` (1x1 convs as matrix products
split by output rows, the attention normalisation and projection folded into the d x d matrix, the
GatedDA temperature folded into W_gate, no concatenations, residuals inside the matrix products;
``kernels`` holds the ops, with oneDNN's fused epilogues for float32 CPU inference). Tests hold the
two equal, outputs and gradients, for every variant and ablation preset (tests/test_model_fast.py).

Ablations (``Ablation``; presets ``TABLE7_ROWS``, ``TABLE8_ROWS``, ``TABLE10_ROWS``,
``config.ablation_preset("table7:a")``): split skip/half; GatedDA off = attention on both halves
(all channels); fusion off = concatenation (W_fuse and eq. 9 stay); lambda learnable / spatial
(1.0) / frequency (0.0) / fixed; (alpha, beta, gamma) fractions. Table 8 rows set fusion off
("without Alg. 2").

Speed, profiles and the PromptIR comparison: docs/model.md and ``benchmarks/model_speed.py``.
"""

from anyir.model.config import TABLE7_ROWS, TABLE8_ROWS, TABLE10_ROWS, Ablation, AnyIRConfig
from anyir.model.net import AnyIR
from anyir.model.registry import create_model, list_variants, variant_config, variant_info

__all__ = [
    "TABLE7_ROWS",
    "TABLE8_ROWS",
    "TABLE10_ROWS",
    "Ablation",
    "AnyIR",
    "AnyIRConfig",
    "create_model",
    "list_variants",
    "variant_config",
    "variant_info",
]
