"""Additive white Gaussian noise, the denoising task's degradation.

Applied on the fly (training and test) rather than baked into shards, as PromptIR/AirNet do.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

Rounding = Literal["round", "truncate"]


def add_gaussian_noise(clean: np.ndarray, sigma: float, rng: np.random.Generator,
                       rounding: Rounding = "round") -> np.ndarray:
    """Return ``clean`` (uint8, HxWxC) plus N(0, sigma^2) noise on the 0-255 scale, as uint8.

    ``rounding="round"`` (training default): rounded to the nearest level, then clipped, so the
    noise has no bias. ``rounding="truncate"``: exactly PromptIR's test rule,
    ``np.clip(clean + noise * sigma, 0, 255).astype(np.uint8)`` (clip, then cut the fraction off),
    which biases the noisy image by about -0.5 levels; evaluation uses it so test inputs follow the
    published protocol. The noise draw itself is ours (a key-seeded generator), not numpy's global one.
    """
    if clean.dtype != np.uint8:
        raise TypeError(f"add_gaussian_noise expects uint8 images, got {clean.dtype}")
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    if rounding not in ("round", "truncate"):
        raise ValueError(f"rounding must be 'round' or 'truncate', got {rounding!r}")
    noise = rng.standard_normal(clean.shape, dtype=np.float32) * np.float32(sigma)
    noisy = clean.astype(np.float32) + noise
    if rounding == "round":
        noisy = np.rint(noisy)
    return np.clip(noisy, 0, 255).astype(np.uint8)
