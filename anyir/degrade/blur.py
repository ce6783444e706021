"""Motion and defocus blur: normalised kernels convolved per channel (reflect borders)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def line_kernel(length: int, angle: float) -> np.ndarray:
    """A normalised straight-line kernel of ``length`` pixels at ``angle`` degrees (0 = horizontal)."""
    length = max(int(length), 1)
    size = length if length % 2 == 1 else length + 1
    kernel = np.zeros((size, size), dtype=np.float32)
    centre = size // 2
    theta = np.deg2rad(angle)
    # Sample the segment densely so every pixel it crosses gets weight.
    for t in np.linspace(-(length - 1) / 2, (length - 1) / 2, 4 * length):
        x = int(round(centre + t * np.cos(theta)))
        y = int(round(centre - t * np.sin(theta)))
        kernel[y, x] = 1.0
    return kernel / kernel.sum()


def disk_kernel(radius: float) -> np.ndarray:
    """A normalised disk (defocus) kernel of the given radius in pixels."""
    r = max(float(radius), 0.5)
    half = int(np.ceil(r))
    yy, xx = np.mgrid[-half : half + 1, -half : half + 1]
    kernel = (xx**2 + yy**2 <= r**2).astype(np.float32)
    return kernel / kernel.sum()


def convolve_rgb(clean: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Convolve each channel of a uint8 HxWx3 image with ``kernel``; round and clip to uint8."""
    image = clean.astype(np.float32)
    out = np.stack([ndimage.convolve(image[..., c], kernel, mode="reflect") for c in range(3)], -1)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def motion_blur(clean: np.ndarray, length: int, angle: float) -> np.ndarray:
    """Linear motion blur of ``length`` pixels at ``angle`` degrees."""
    return convolve_rgb(clean, line_kernel(length, angle))


def defocus_blur(clean: np.ndarray, radius: float) -> np.ndarray:
    """Defocus (disk) blur of ``radius`` pixels."""
    return convolve_rgb(clean, disk_kernel(radius))
