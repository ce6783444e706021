"""Haze by the atmospheric scattering model I = J t + A (1 - t), t = exp(-beta d).

There is no depth map for arbitrary images, so ``d`` is a smooth proxy: a vertical gradient
(the top of a photo is usually farther away) mixed with a heavily smoothed random field.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def depth_proxy(height: int, width: int, rng: np.random.Generator, smoothness: float = 0.25) -> np.ndarray:
    """A smooth pseudo-depth map in [0, 1], larger = farther."""
    gradient = np.linspace(1.0, 0.0, height, dtype=np.float32)[:, None].repeat(width, axis=1)
    field = rng.standard_normal((height, width)).astype(np.float32)
    field = ndimage.gaussian_filter(field, smoothness * max(height, width), mode="wrap")
    span = float(field.max() - field.min()) or 1.0
    field = (field - field.min()) / span
    return 0.6 * gradient + 0.4 * field


def add_haze(clean: np.ndarray, rng: np.random.Generator, beta: float, airlight: float) -> np.ndarray:
    """Haze a uint8 HxWx3 image. beta: scattering coefficient (about 0.5-2.0 for depth in [0, 1]);
    airlight: atmospheric light in [0, 1]."""
    depth = depth_proxy(clean.shape[0], clean.shape[1], rng)
    transmission = np.exp(-beta * depth)[..., None]
    image = clean.astype(np.float32) / 255.0
    hazy = image * transmission + airlight * (1.0 - transmission)
    return np.clip(np.rint(hazy * 255.0), 0, 255).astype(np.uint8)
