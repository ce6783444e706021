"""Low light: a gamma curve and a global scale darken the image, then mild sensor noise."""

from __future__ import annotations

import numpy as np


def darken(clean: np.ndarray, rng: np.random.Generator, gamma: float, scale: float, noise_sigma: float) -> np.ndarray:
    """Return scale * (clean/255)^gamma * 255 plus N(0, noise_sigma^2) (0-255 scale), as uint8.

    gamma > 1 crushes shadows more than highlights, as under-exposure does; noise_sigma models
    the read noise that dominates dark captures.
    """
    image = clean.astype(np.float32) / 255.0
    dark = scale * np.power(image, gamma) * 255.0
    if noise_sigma > 0:
        dark = dark + rng.standard_normal(dark.shape, dtype=np.float32) * np.float32(noise_sigma)
    return np.clip(np.rint(dark), 0, 255).astype(np.uint8)
