"""Additive white Gaussian noise, the denoising task's degradation.

Applied on the fly (training and test) rather than baked into shards, as PromptIR/AirNet do.
"""

from __future__ import annotations

import numpy as np


def add_gaussian_noise(clean: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Return ``clean`` (uint8, HxWxC) plus N(0, sigma^2) noise on the 0-255 scale, as uint8.

    Rounded to the nearest level and clipped to [0, 255]. PromptIR truncates instead of
    rounding (``astype(uint8)``), which biases the noisy image by about -0.5 levels; we round.
    """
    if clean.dtype != np.uint8:
        raise TypeError(f"add_gaussian_noise expects uint8 images, got {clean.dtype}")
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    noise = rng.standard_normal(clean.shape, dtype=np.float32) * np.float32(sigma)
    noisy = clean.astype(np.float32) + noise
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
