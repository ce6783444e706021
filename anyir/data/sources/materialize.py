"""Turn a work item into a sample: read images, crop, degrade, and describe it all in metadata.

Runs in the shard writer's worker processes. Every random choice (crop position, degradation
parameters) comes from an rng seeded by (recipe seed, sample key), never from worker order.
"""

from __future__ import annotations

import numpy as np

from anyir.data.images import ImageReadError
from anyir.data.sources.base import WorkItem
from anyir.data.sources.refs import load_ref
from anyir.degrade.seeding import rng_from_key


class SampleError(ValueError):
    """An input pair cannot become a sample (e.g. sizes differ); the message says why."""


def crop_box(item: WorkItem, height: int, width: int, seed: int) -> tuple[int, int, int] | None:
    """(top, left, size) of the item's crop, or None for the full image."""
    if item.crop_size is None:
        return None
    size = min(item.crop_size, height, width)
    if item.crop_mode == "center":
        return (height - size) // 2, (width - size) // 2, size
    rng = rng_from_key(seed, item.crop_key or item.key, "crop")
    return int(rng.integers(0, height - size + 1)), int(rng.integers(0, width - size + 1)), size


def _crop(img: np.ndarray, box: tuple[int, int, int] | None) -> np.ndarray:
    if box is None:
        return img
    top, left, size = box
    return np.ascontiguousarray(img[top : top + size, left : left + size])


def materialize(item: WorkItem, seed: int) -> tuple[np.ndarray, np.ndarray | None, dict]:
    """Return (gt, lq or None, metadata) for one item. Raises ImageReadError or SampleError."""
    gt, gt_conv = load_ref(item.gt)
    lq, lq_conv = load_ref(item.lq) if item.lq is not None else (None, [])
    if lq is not None and lq.shape != gt.shape:
        raise SampleError(f"size mismatch: degraded {lq.shape[1]}x{lq.shape[0]} vs clean {gt.shape[1]}x{gt.shape[0]}")
    box = crop_box(item, gt.shape[0], gt.shape[1], seed)
    gt = _crop(gt, box)
    lq = _crop(lq, box) if lq is not None else None
    if item.degradation is not None:
        lq, degradation = item.degradation.apply(gt, rng_from_key(seed, item.key, "degrade"))
    elif item.online_noise_sigma is not None:
        degradation = {"name": "noise", "sigma": item.online_noise_sigma, "online": True}
    else:
        degradation = {"name": "real"}
    conversions = [f"gt: {c}" for c in gt_conv] + [f"lq: {c}" for c in lq_conv]
    meta = {
        "key": item.key, "task": item.task, "split": item.split, "dataset": item.dataset, "source": item.source,
        "online_noise_sigma": item.online_noise_sigma, "degradation": degradation, "files": item.files,
        "width": int(gt.shape[1]), "height": int(gt.shape[0]), "conversions": conversions,
        "crop": None if box is None else {"top": box[0], "left": box[1], "size": box[2]},
    }
    return gt, lq, meta


__all__ = ["ImageReadError", "SampleError", "crop_box", "materialize"]
