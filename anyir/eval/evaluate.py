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

from anyir.data.reader import ShardError, ShardReader
from anyir.data.samples import Sample, decode_sample
from anyir.data.shardset import ShardSet, as_shard_set
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


class EvalIncompleteError(ValueError):
    """Not every test sample of the manifest could be scored; nothing is logged (one line, names the shard)."""


def _select_tasks(shards: ShardSet, split: str, tasks: Iterable[str] | None) -> list[str]:
    """The tasks to evaluate, validated against the manifest."""
    available = shards.tasks(split)
    chosen = list(available) if tasks is None else list(tasks)
    unknown = sorted(set(chosen) - set(available))
    if unknown:
        raise ValueError(f"tasks: {unknown} not in the {split!r} split of {shards.root}; available: {available}")
    return chosen


def evaluate(model: nn.Module | None, shard_dir: ShardSet | str | Path, tasks: Iterable[str] | None = None,
             split: str = "test", tile: int | None = None, overlap: int = 32, device: str = "cpu",
             max_images: int | None = None, extra_metrics: Iterable[str] = (),
             progress: bool = True, allow_incomplete: bool = False, url_prefix: str | None = None) -> EvalReport:
    """Evaluate ``model`` (None = the degraded input itself) per task and per dataset.

    Full resolution, PromptIR protocol (see :mod:`anyir.eval.metrics`); ``max_images`` caps the
    images per task (a quick look, not a comparable number: it is part of the run's signature).

    A benchmark row is complete or absent: every shard of the chosen tasks is verified against the
    manifest before it is scored, and every listed sample must be scored. Otherwise
    :class:`EvalIncompleteError` names the shard, unless ``allow_incomplete`` (then the report says
    ``complete=False`` and lists the problems).
    """
    start = time.perf_counter()
    shards, extra_metrics = as_shard_set(shard_dir, url_prefix), list(extra_metrics)
    chosen = _select_tasks(shards, split, tasks)
    counts = shards.manifest.counts(split)
    expected = {t: counts[t] if max_images is None else min(counts[t], max_images) for t in chosen}
    metrics = build_metrics(extra_metrics, notify=lambda msg: tqdm.write(msg))
    was_training = model is not None and model.training
    if model is not None:
        model = model.to(device).eval()
    seen: Counter[str] = Counter()
    images: list[ImageResult] = []
    problems: list[str] = []
    reader = ShardReader(cache_size=1)

    def incomplete(message: str) -> None:
        if not allow_incomplete:
            raise EvalIncompleteError(f"{message}; nothing was logged. Fix or rebuild the shard set "
                                      "(`anyir shards verify`), or pass --allow-incomplete to log a flagged row")
        problems.append(message)
        tqdm.write(f"warning: {message} (--allow-incomplete: the row will be flagged)")

    with tqdm(total=sum(expected.values()), desc="eval", unit="img", disable=not progress) as bar:
        for task in chosen:
            for ref in shards.refs(split, task):
                if seen[task] >= expected[task]:
                    break
                try:
                    shard = reader.shard(ref)
                except ShardError as err:
                    incomplete(f"test shard {err}")
                    continue
                for raw in shard.samples:
                    if seen[task] >= expected[task]:
                        break
                    try:
                        sample = decode_sample(raw)
                        lq, gt = eval_pair(sample)
                    except ValueError as exc:  # ImageReadError is a ValueError
                        incomplete(f"test sample {raw.key} in {ref.url}: {exc}")
                        continue
                    seen[task] += 1
                    scores = score_pair(restore_array(model, lq, tile, overlap, device), gt, metrics)
                    dataset = column_dataset(sample)
                    images.extend(ImageResult(sample.task, dataset, sample.key, m, v) for m, v in scores.items())
                    bar.update(1)
    short = {t: (seen[t], n) for t, n in expected.items() if seen[t] != n}
    if short and not problems:  # e.g. a manifest count that no shard delivered
        incomplete("scored " + ", ".join(f"{t}: {a} of {n}" for t, (a, n) in short.items()) + " test images")
    if was_training:  # called from a training loop: hand the model back as it came
        model.train()
    protocols = {m.name: m.protocol for m in metrics}
    return EvalReport(
        rows=aggregate(images, protocols, shards.manifest.recipe_name), images=images, split=split,
        tasks=chosen, recipe_name=shards.manifest.recipe_name, recipe_hash=shards.manifest.recipe_hash,
        shard_dir=str(Path(shards.root).resolve()), protocol=PROTOCOL, metrics=[m.name for m in metrics], tile=tile,
        overlap=overlap, max_images=max_images,
        skipped_metrics=[n for n in extra_metrics if n not in protocols],
        wall_time_s=time.perf_counter() - start, expected=expected, scored=dict(seen), problems=problems,
    )


def evaluate_run_dir(run_dir: str | Path, shard_dir: ShardSet | str | Path, tasks: Iterable[str] | None = None,
                     split: str = "test", tile: int | None = None, overlap: int = 32, device: str = "cpu",
                     max_images: int | None = None, extra_metrics: Iterable[str] = (),
                     progress: bool = True, allow_incomplete: bool = False,
                     url_prefix: str | None = None) -> EvalReport:
    """Load ``run_dir/model.safetensors`` (or a .safetensors path) and :func:`evaluate` it."""
    model = load_checkpoint(run_dir, device=device)
    return evaluate(model, shard_dir, tasks=tasks, split=split, tile=tile, overlap=overlap, device=device,
                    max_images=max_images, extra_metrics=extra_metrics, progress=progress,
                    allow_incomplete=allow_incomplete, url_prefix=url_prefix)
