"""Paired training augmentation: the same crop and flips on degraded and clean images.

Images smaller than the crop are padded by reflection (``BORDER_REFLECT_101``), not upscaled:
upscaling would change the scale of the degradation (rain streak width, blur kernel, noise
grain) that the model must learn, while reflection keeps pixel statistics. Gaussian noise for
on-the-fly denoising samples is added to the clean crop *after* cropping (cheaper, and the
noise is i.i.d. per pixel, so the order does not change its distribution).
"""

from __future__ import annotations

import os

import cv2
import numpy as np
import torch

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # albumentations phones home at import otherwise
import albumentations as A  # noqa: E402

from anyir.degrade.noise import add_gaussian_noise  # noqa: E402
from anyir.degrade.seeding import rng_from_key, seed_from_key  # noqa: E402


class PairedAugment:
    """Random crop (reflect-padded when too small) + horizontal/vertical flips, seeded per call."""

    def __init__(self, crop: int = 128, flips: bool = True):
        if crop < 8:
            raise ValueError(f"crop must be >= 8 pixels, got {crop}")
        steps = [A.PadIfNeeded(min_height=crop, min_width=crop, border_mode=cv2.BORDER_REFLECT_101),
                 A.RandomCrop(height=crop, width=crop)]
        if flips:
            steps += [A.HorizontalFlip(p=0.5), A.VerticalFlip(p=0.5)]
        self.crop = crop
        self._compose = A.Compose(steps, additional_targets={"lq": "image"})

    def __call__(self, gt: np.ndarray, lq: np.ndarray | None, noise_sigma: float | None,
                 *seed_parts: object) -> tuple[np.ndarray, np.ndarray]:
        """Return (lq crop, gt crop) as HxWx3 uint8. ``lq is None`` means: add noise at ``noise_sigma``.

        Crop/flip and noise draws are seeded from ``seed_parts`` (e.g. seed, epoch, key, position):
        the same parts always give the same crop, flips and noise.
        """
        self._compose.set_random_seed(seed_from_key("stream-augment", *seed_parts))
        if lq is None:
            if noise_sigma is None:
                raise ValueError("a sample without lq needs an online noise sigma")
            gt_crop = self._compose(image=gt)["image"]
            rng = rng_from_key("stream-noise", *seed_parts)
            return add_gaussian_noise(gt_crop, float(noise_sigma), rng), gt_crop
        if lq.shape != gt.shape:
            raise ValueError(f"lq {lq.shape} and gt {gt.shape} differ in size")
        out = self._compose(image=gt, lq=lq)
        return out["lq"], out["image"]


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """HxWx3 uint8 -> 3xHxW float32 in [0, 1]."""
    return to_batch([img])[0]


def to_batch(images: list[np.ndarray]) -> torch.Tensor:
    """A list of HxWx3 uint8 images -> Bx3xHxW float32 in [0, 1].

    Done in numpy: torch's intra-op thread pool makes these tiny ops slow when the cores are
    busy (measured ~17 ms per 128 px crop on the shared 2-core box, vs well under 1 ms here).
    """
    batch = np.stack(images).transpose(0, 3, 1, 2).astype(np.float32) / np.float32(255.0)
    return torch.from_numpy(batch)
