"""Synthetic rain streaks: sparse drops smeared along one direction, screen-blended onto the image."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from anyir.degrade.blur import line_kernel


def add_rain_streaks(
    clean: np.ndarray,
    rng: np.random.Generator,
    density: float,
    length: int,
    angle: float,
    intensity: float,
) -> np.ndarray:
    """Add rain streaks to a uint8 HxWx3 image.

    density: fraction of pixels that seed a drop (e.g. 0.002-0.01); length: streak length in pixels;
    angle: degrees from vertical; intensity: peak streak brightness in [0, 1].
    Screen blending (1 - (1-a)(1-b)) keeps streaks bright on dark and bright backgrounds alike.
    """
    h, w = clean.shape[:2]
    drops = (rng.random((h, w)) < density).astype(np.float32)
    drops *= rng.uniform(0.5, 1.0, size=(h, w)).astype(np.float32)  # drops differ in brightness
    streaks = ndimage.convolve(drops, line_kernel(length, 90.0 + angle), mode="wrap")
    streaks = ndimage.gaussian_filter(streaks, 0.5)
    peak = float(streaks.max()) or 1.0
    rain = np.clip(streaks / peak * intensity, 0.0, 1.0)[..., None]
    image = clean.astype(np.float32) / 255.0
    rainy = 1.0 - (1.0 - image) * (1.0 - rain)
    return np.clip(np.rint(rainy * 255.0), 0, 255).astype(np.uint8)
