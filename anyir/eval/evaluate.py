"""Full-resolution evaluation of a model (or of the degraded input) on a shard set's test split."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from anyir.data.manifest import Manifest, load_manifest
from anyir.data.shard_reader import Sample, iter_samples
from anyir.degrade.noise import add_gaussian_noise
from anyir.degrade.seeding import rng_from_key
from anyir.eval.checkpoint import load_checkpoint
from anyir.eval.metrics import PROTOCOL, build_metrics, center_crop_to_multiple, score_pair
from anyir.eval.report import EvalReport, ImageResult, aggregate
from anyir.eval.tiling import run_model

TEST_NOISE_SEED = "test-noise"


def column_dataset(sample: Sample) -> str:
    """Dataset label of a result column: online-noise samples get their sigma (``bsd68_s25``)."""
    sigma = sample.meta.get("online_noise_sigma")
    return sample.dataset if sigma is None else f"{sample.dataset}_s{float(sigma):g}"


def eval_pair(sample: Sample) -> tuple[np.ndarray, np.ndarray]:
    """(degraded input, clean reference), both center-cropped to a multiple of 16, uint8.

    Online noise is added to the cropped clean image (as PromptIR does) with a generator
    seeded by the key, so every run and every machine sees the same noisy inputs.
    """
    gt = center_crop_to_multiple(sample.gt)
    sigma = sample.meta.get("online_noise_sigma")
    if sigma is not None:
        return add_gaussian_noise(gt, float(sigma), rng_from_key(TEST_NOISE_SEED, sample.key), rounding="truncate"), gt
    if sample.lq is None:
        raise ValueError(f"sample {sample.key!r} (task {sample.task}) has neither lq.png nor online noise")
    lq = center_crop_to_multiple(sample.lq)
    if lq.shape != gt.shape:
        raise ValueError(f"sample {sample.key!r}: lq size {lq.shape[:2]} differs from gt size {gt.shape[:2]}")
    return lq, gt


def restore_array(model: nn.Module | None, image: np.ndarray, tile: int | None = None,
                  overlap: int = 32, device: str = "cpu") -> np.ndarray:
    """Restore an HxWx3 uint8 image; float32 HxWx3 clamped to [0, 1]. ``model=None`` = identity."""
    x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float().div_(255.0)[None]
    y = x if model is None else run_model(model, x, tile=tile, overlap=overlap, device=device)
    return y[0].clamp_(0.0, 1.0).permute(1, 2, 0).numpy()


def _select_tasks(manifest: Manifest, shard_dir: Path, split: str,
                  tasks: Iterable[str] | None) -> tuple[list[str], int]:
    """The tasks to evaluate (validated against the manifest) and their number of images."""
    available = manifest.tasks(split)
    chosen = list(available) if tasks is None else list(tasks)
    unknown = sorted(set(chosen) - set(available))
    if unknown:
        raise ValueError(f"tasks: {unknown} not in the {split!r} split of {shard_dir}; available: {available}")
    counts = manifest.counts(split)
    return chosen, sum(counts.get(t, 0) for t in chosen)


def evaluate(model: nn.Module | None, shard_dir: str | Path, tasks: Iterable[str] | None = None,
             split: str = "test", tile: int | None = None, overlap: int = 32, device: str = "cpu",
             max_images: int | None = None, extra_metrics: Iterable[str] = (),
             progress: bool = True) -> EvalReport:
    """Evaluate ``model`` (None = the degraded input itself) per task and per dataset.

    Full resolution, PromptIR protocol (see :mod:`anyir.eval.metrics`); ``max_images`` caps the
    images per task (a quick look, not a comparable number: it is part of the run's signature).
    """
    start = time.perf_counter()
    shard_dir, extra_metrics = Path(shard_dir), list(extra_metrics)
    manifest = load_manifest(shard_dir)
    chosen, total = _select_tasks(manifest, shard_dir, split, tasks)
    metrics = build_metrics(extra_metrics, notify=lambda msg: tqdm.write(msg))
    was_training = model is not None and model.training
    if model is not None:
        model = model.to(device).eval()
    seen: Counter[str] = Counter()
    images: list[ImageResult] = []
    if max_images is not None:
        total = min(total, max_images * len(chosen))
    with tqdm(total=total, desc="eval", unit="img", disable=not progress) as bar:
        for sample in iter_samples(shard_dir, split, tasks=chosen):
            if max_images is not None and seen[sample.task] >= max_images:
                continue
            seen[sample.task] += 1
            lq, gt = eval_pair(sample)
            scores = score_pair(restore_array(model, lq, tile, overlap, device), gt, metrics)
            dataset = column_dataset(sample)
            images.extend(ImageResult(sample.task, dataset, sample.key, m, v) for m, v in scores.items())
            bar.update(1)
    if was_training:  # called from a training loop: hand the model back as it came
        model.train()
    protocols = {m.name: m.protocol for m in metrics}
    return EvalReport(
        rows=aggregate(images, protocols, manifest.recipe_name), images=images, split=split,
        tasks=chosen, recipe_name=manifest.recipe_name, recipe_hash=manifest.recipe_hash,
        shard_dir=str(shard_dir), protocol=PROTOCOL, metrics=[m.name for m in metrics], tile=tile,
        overlap=overlap, max_images=max_images,
        skipped_metrics=[n for n in extra_metrics if n not in protocols],
        wall_time_s=time.perf_counter() - start,
    )


def evaluate_run_dir(run_dir: str | Path, shard_dir: str | Path, tasks: Iterable[str] | None = None,
                     split: str = "test", tile: int | None = None, overlap: int = 32, device: str = "cpu",
                     max_images: int | None = None, extra_metrics: Iterable[str] = (),
                     progress: bool = True) -> EvalReport:
    """Load ``run_dir/model.safetensors`` (or a .safetensors path) and :func:`evaluate` it."""
    model = load_checkpoint(run_dir, device=device)
    return evaluate(model, shard_dir, tasks=tasks, split=split, tile=tile, overlap=overlap, device=device,
                    max_images=max_images, extra_metrics=extra_metrics, progress=progress)
