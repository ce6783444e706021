"""Paired training augmentation: the same crop and flips on degraded and clean images.

Images smaller than the crop are padded by reflection (``BORDER_REFLECT_101``, numpy's
``reflect``), not upscaled: upscaling would change the scale of the degradation (rain streak
width, blur kernel, noise grain) that the model must learn, while reflection keeps pixel
statistics. Gaussian noise for on-the-fly denoising samples is added to the clean crop *after*
cropping (cheaper, and the noise is i.i.d. per pixel, so the order does not change its
distribution).

Two engines do the same pad + crop + flips. ``numpy`` (the default, the training stream's hot
path) slices the decoded array and copies only the crop (horizontal flips through ``cv2.flip``,
much faster than numpy for HxWx3 uint8): with raw ``.npy`` members that array is a view of the
shard's bytes, so a sample costs its crop. ``albumentations`` runs the same steps as an ``A.Compose``;
its per-call overhead (a few ms per pair, measured by ``benchmarks/loader_speed.py``) is larger
than the whole rest of a sample's path once decoding is free, so the stream does not use it. It is
kept as the place to add richer augmentations, and it is imported only when asked for (the GPU
machines run without it).

Seeding: every draw comes from ``seed_parts`` (e.g. seed, epoch, key, position). The numpy engine
takes the crop position and both flips from one 63-bit ``seed_from_key("stream-augment", *parts)``
(top = s mod (H-C+1), then left, then the flip bits from the quotient); noise comes from
``rng_from_key("stream-noise", *parts)``. The same parts always give the same crop, flips and
noise; the two engines draw differently, so they do not give the same crops.
"""

from __future__ import annotations

import os
from typing import Literal

import cv2
import numpy as np
import torch

from anyir.degrade.noise import add_gaussian_noise
from anyir.degrade.seeding import rng_from_key, seed_from_key

Engine = Literal["numpy", "albumentations"]


def reflect_pad(image: np.ndarray, crop: int) -> np.ndarray:
    """Pad ``image`` by reflection (edge pixel not repeated) to at least ``crop`` x ``crop``, centred
    as albumentations' PadIfNeeded does."""
    h, w = image.shape[:2]
    dh, dw = max(0, crop - h), max(0, crop - w)
    if not dh and not dw:
        return image
    return np.pad(image, ((dh // 2, dh - dh // 2), (dw // 2, dw - dw // 2), (0, 0)), mode="reflect")


def crop_and_flips(height: int, width: int, crop: int, seed: int) -> tuple[int, int, bool, bool]:
    """(top, left, horizontal flip, vertical flip) drawn from one 63-bit seed."""
    rows, cols = height - crop + 1, width - crop + 1
    top, rest = seed % rows, seed // rows
    left, rest = rest % cols, rest // cols
    return top, left, bool(rest & 1), bool(rest & 2)


class PairedAugment:
    """Random crop (reflect-padded when too small) + horizontal/vertical flips, seeded per call."""

    def __init__(self, crop: int = 128, flips: bool = True, engine: Engine = "numpy"):
        if crop < 8:
            raise ValueError(f"crop must be >= 8 pixels, got {crop}")
        if engine not in ("numpy", "albumentations"):
            raise ValueError(f"engine={engine!r}: use 'numpy' or 'albumentations'")
        self.crop, self.flips, self.engine = crop, flips, engine
        self._compose = _albumentations_compose(crop, flips) if engine == "albumentations" else None

    def __call__(self, gt: np.ndarray, lq: np.ndarray | None, noise_sigma: float | None,
                 *seed_parts: object) -> tuple[np.ndarray, np.ndarray]:
        """Return (lq crop, gt crop) as contiguous HxWx3 uint8. ``lq is None`` means: add noise at ``noise_sigma``.

        The inputs are never written to (they may be read-only views of a shard).
        """
        if lq is None and noise_sigma is None:
            raise ValueError("a sample without lq needs an online noise sigma")
        if lq is not None and lq.shape != gt.shape:
            raise ValueError(f"lq {lq.shape} and gt {gt.shape} differ in size")
        seed = seed_from_key("stream-augment", *seed_parts)
        if self._compose is not None:
            lq_crop, gt_crop = self._albumentations(gt, lq, seed)
        else:
            lq_crop, gt_crop = self._numpy(gt, lq, seed)
        if lq is None:
            lq_crop = add_gaussian_noise(gt_crop, float(noise_sigma), rng_from_key("stream-noise", *seed_parts))
        return lq_crop, gt_crop

    def _numpy(self, gt: np.ndarray, lq: np.ndarray | None, seed: int) -> tuple[np.ndarray | None, np.ndarray]:
        gt = reflect_pad(gt, self.crop)
        lq = None if lq is None else reflect_pad(lq, self.crop)
        top, left, hflip, vflip = crop_and_flips(gt.shape[0], gt.shape[1], self.crop, seed)

        def window(image: np.ndarray) -> np.ndarray:
            view = image[top : top + self.crop, left : left + self.crop]
            if self.flips and hflip:
                # numpy copies a horizontally reversed HxWx3 view 3 bytes at a time (~0.3 ms per
                # 128 px crop, measured); OpenCV's flip does it in ~0.02 ms, vertical flip included.
                return cv2.flip(view, -1 if vflip else 1)
            return np.ascontiguousarray(view[::-1] if self.flips and vflip else view)  # the only copy: the crop

        return (None if lq is None else window(lq)), window(gt)

    def _albumentations(self, gt: np.ndarray, lq: np.ndarray | None, seed: int) -> tuple[np.ndarray | None, np.ndarray]:
        # Compose.set_random_seed hands the SAME seed to every step, so HorizontalFlip and
        # VerticalFlip would draw alike (only "no flip" or "both flips" ever happen): seed each
        # step on its own.
        for index, step in enumerate(self._compose.transforms):
            step.set_random_seed(seed_from_key(seed, index))
        if lq is None:
            return None, self._compose(image=gt)["image"]
        out = self._compose(image=gt, lq=lq)
        return out["lq"], out["image"]


def _albumentations_compose(crop: int, flips: bool):
    """The same pad + crop + flips as an albumentations pipeline (imported only here)."""
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # albumentations phones home at import otherwise
    import albumentations as A

    steps = [A.PadIfNeeded(min_height=crop, min_width=crop, border_mode=cv2.BORDER_REFLECT_101),
             A.RandomCrop(height=crop, width=crop)]
    if flips:
        steps += [A.HorizontalFlip(p=0.5), A.VerticalFlip(p=0.5)]
    return A.Compose(steps, additional_targets={"lq": "image"})


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
